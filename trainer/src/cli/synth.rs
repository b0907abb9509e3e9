//! `trainer synth`: a trained generator on one NIfTI volume, a folder or a list file, either
//! direction, either pass; writes NIfTI volumes in source units on the source grid, with the
//! source's geometry (they overlay on the input in any viewer).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use dicyc_core::format::WeightFile;
use dicyc_volume::slicewise::{
    ensure_single_channel, parse_pass, run_core_slice, scratch_for_slice, synthesize_slices,
};

use crate::data::nifti_io::{is_nifti_path, list_volumes, read_volume, write_volume};
use crate::data::preprocess::PreprocessOptions;
use crate::data::sampling::DataStats;
use crate::device::DeviceChoice;
use crate::inference::{ensure_forward_fits, latest_checkpoint, load_generator, Direction};
use crate::model::generator::Pass;

/// `trainer synth` arguments.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Run directory (config.toml + checkpoints/).
    #[arg(long, required_unless_present = "weights")]
    pub run: Option<PathBuf>,
    /// An exported weight file (`trainer export`, `.dcw`): run it through the heap-free
    /// `dicyc-core` on the CPU instead of a checkpoint, with the device's normalisation (the
    /// file's header constants; `--direction`, `--stats`, `--device` and `--batch` do not
    /// apply: the core runs one slice at a time; the progress bar counts slices).
    #[arg(long, conflicts_with_all = ["run", "checkpoint", "stats"])]
    pub weights: Option<PathBuf>,
    /// Checkpoint folder (default: the run's latest, `checkpoints/latest`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A NIfTI volume, a folder of them, or a list file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder (file names kept; must not be the input folder).
    #[arg(long)]
    pub out: PathBuf,
    /// Direction.
    #[arg(long, value_enum, default_value = "a2b")]
    pub direction: Direction,
    /// Pass: `undeformed` (offset layers bypassed: aligned with the source; docs/DESIGN.md
    /// §2.3) or `deformed` (the target domain's geometry).
    #[arg(long, value_parser = parse_pass, default_value = "undeformed")]
    pub pass: Pass,
    /// Slices per forward of a checkpoint (`--run`). Does not apply to `--weights`: the
    /// heap-free core runs one slice at a time.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Device.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Intensity maps and preprocessing of the training data (default `<run>/data-stats.json`;
    /// without it outputs use the source volume's own intensity map and default preprocessing).
    #[arg(long)]
    pub stats: Option<PathBuf>,
}

/// The output path of `input` in `out` (file name kept; `.nii.gz` added when it has no
/// NIfTI extension).
fn output_path(out: &Path, input: &Path) -> Result<PathBuf> {
    let name = input.file_name().context("input without a file name")?;
    let dest = out.join(name);
    Ok(if is_nifti_path(&dest) {
        dest
    } else {
        out.join(format!("{}.nii.gz", name.to_string_lossy()))
    })
}

/// Axial slices of the inputs, from their headers only (the bar's length; volumes are read
/// one at a time later). A header that cannot be read counts 0: reading the volume then
/// reports the error with the file's name.
fn count_slices(inputs: &[PathBuf]) -> u64 {
    inputs
        .iter()
        .map(|p| match nifti::NiftiHeader::from_file(p) {
            Ok(h) if h.dim[0] >= 3 => u64::from(h.dim[3].max(1)),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// The progress bar of both synthesis paths: slices done of `total`.
fn slice_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "synth [{bar:30}] {pos}/{len} slices ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// `trainer synth --weights`: the exported weight file through `dicyc-core`, slice by
/// slice, with the per-slice loop and normalisation of `firmware-sim run`. `--batch` does
/// not apply: the core is heap-free and runs one slice at a time in its scratch buffer.
fn run_weights(a: &SynthArgs, weights: &Path, inputs: &[PathBuf]) -> Result<()> {
    let t0 = Instant::now();
    // A device (`/dev/zero`), a pipe or a folder is refused from its metadata, before it is
    // opened, instead of being read without end.
    let meta = std::fs::metadata(weights)
        .with_context(|| format!("cannot read weight file {}", weights.display()))?;
    if !meta.is_file() {
        bail!(
            "cannot read weight file {}: not a regular file (give the path of a .dcw file \
             written by `trainer export`)",
            weights.display()
        );
    }
    let bytes = std::fs::read(weights)
        .with_context(|| format!("cannot read weight file {}", weights.display()))?;
    let file = WeightFile::new_checked(&bytes).map_err(|err| {
        anyhow::anyhow!(
            "{} is not a valid dicyc weight file: {err}",
            weights.display()
        )
    })?;
    let config = file.config();
    ensure_single_channel(&config)?;
    let pass = a.pass;
    let mut scratch = Vec::<u8>::new();
    let mut slices = 0usize;
    let pb = slice_bar(count_slices(inputs));
    for path in inputs {
        let v = read_volume(path)?;
        let (data, _) = synthesize_slices(&v, file.normalization(), |_, input, h, w, output| {
            let need = scratch_for_slice(&config, h, w)?;
            ensure_forward_fits((h, w), need as u64)?;
            if scratch.len() < need {
                scratch.resize(need, 0);
            }
            run_core_slice(&file, input, h, w, pass, &mut scratch[..need], output)?;
            slices += 1;
            pb.inc(1);
            Ok(())
        })
        .with_context(|| format!("synthesising {}", path.display()))?;
        let mut header = v.header.clone();
        let _ = header.set_description_str(format!("dicyc synth --weights {:?}", a.pass));
        write_volume(&output_path(&a.out, path)?, &data, &header)?;
    }
    pb.finish();
    eprintln!(
        "wrote {} volume(s) to {} in {:.1} s ({slices} slices through dicyc-core, weights {})",
        inputs.len(),
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        weights.display()
    );
    Ok(())
}

/// Runs `trainer synth`.
pub fn run(a: &SynthArgs) -> Result<()> {
    let t0 = Instant::now();
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inputs = list_volumes(&a.input)?;
    let out_canon = a.out.canonicalize().ok();
    for p in &inputs {
        if let (Some(o), Some(d)) = (&out_canon, p.parent().and_then(|d| d.canonicalize().ok())) {
            if *o == d {
                bail!("--out {} is the folder of input {}: choose another folder (inputs are never overwritten)", a.out.display(), p.display());
            }
        }
    }
    let run_dir = match (&a.weights, &a.run) {
        (Some(weights), _) => return run_weights(a, weights, &inputs),
        (None, Some(run)) => run,
        (None, None) => bail!("give --run (a checkpoint) or --weights (an exported weight file)"),
    };
    let stats_path = a
        .stats
        .clone()
        .unwrap_or_else(|| run_dir.join("data-stats.json"));
    let stats = if stats_path.exists() {
        Some(DataStats::load(&stats_path)?)
    } else {
        if a.stats.is_some() {
            bail!("--stats {} does not exist", stats_path.display());
        }
        eprintln!("note: {} not found: outputs use each source volume's own intensity map and default preprocessing", stats_path.display());
        None
    };
    let opts = stats
        .as_ref()
        .map_or_else(PreprocessOptions::default, |s| s.preprocess.clone());
    let device = a.device.resolve()?;
    let ckpt = match &a.checkpoint {
        Some(c) => c.clone(),
        None => latest_checkpoint(run_dir)?,
    };
    let g = load_generator(run_dir, &ckpt, a.direction, device)?;
    let pass = a.pass;
    let pb = slice_bar(count_slices(&inputs));
    for path in &inputs {
        let v = read_volume(path)?;
        let target = stats.as_ref().map(|s| match a.direction {
            Direction::A2b => s.b,
            Direction::B2a => s.a,
        });
        let data = g
            .synthesize_volume(&v, &opts, target, pass, a.batch, |n| pb.inc(n as u64))
            .with_context(|| format!("synthesising {}", path.display()))?;
        let dest = output_path(&a.out, path)?;
        let mut header = v.header.clone();
        let _ = header.set_description_str(format!("dicyc synth {:?} {:?}", a.direction, a.pass));
        write_volume(&dest, &data, &header)?;
    }
    pb.finish();
    eprintln!(
        "wrote {} volume(s) to {} in {:.1} s (checkpoint {})",
        inputs.len(),
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        ckpt.display()
    );
    Ok(())
}
