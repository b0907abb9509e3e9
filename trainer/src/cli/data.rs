//! `trainer data …`: build the simulated IXI-like benchmark and the deformation experiment,
//! fetch the template and the real scans.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::data::deform_dataset::{deform_dataset, DeformOptions};
use crate::data::simulate::{self, Anatomy, SimOptions};
use crate::data::template;
use crate::data::{read_volume, real};

/// `trainer data` arguments.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to build.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `trainer data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Fetch the MNI ICBM152 2009a template (nilearn wheel via pip) into the cache.
    FetchTemplate,
    /// Fetch the real scans for MR→CT from Debian's archive into the cache (pinned SHA-256):
    /// Colin27 T1 MR (mricron-data) and a clinical head CT (invesalius-examples, converted to
    /// NIfTI). Never committed: see docs/DATA.md, "Real scans".
    FetchReal(FetchRealArgs),
    /// Simulate the IXI-like PD/T2 benchmark from the MNI ICBM152 2009a anatomy.
    Simulate(SimulateArgs),
    /// Apply one seeded, smooth, domain-specific deformation to a domain of a dataset and
    /// write the source-aligned ground truths (the paper's Table 2 experiment).
    Deform(DeformArgs),
}

/// `trainer data fetch-real`.
#[derive(Debug, Args)]
pub struct FetchRealArgs {
    /// Convert the CT to NIfTI again even when the cache holds it.
    #[arg(long)]
    pub reconvert: bool,
}

/// `trainer data simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder (created; must not already hold a benchmark unless --force).
    #[arg(long, default_value = "data/ixi-sim")]
    pub out: PathBuf,
    /// Template folder (default: the cache, ${DICYC_CACHE:-~/.cache/dicyc}/mni_icbm152_2009a).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Do not download the template when it is not cached: fail instead.
    #[arg(long)]
    pub no_fetch: bool,
    /// Seed of all randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training subjects.
    #[arg(long, default_value_t = 38)]
    pub train: usize,
    /// Test subjects.
    #[arg(long, default_value_t = 28)]
    pub test: usize,
    /// Voxel size in mm: 2 (the template's 1 mm maps block-averaged 2×2×2; 96×112 in-plane)
    /// or 1 (the template at full resolution, as the paper's IXI; 192×224 in-plane). The
    /// same seed gives the same subjects at either size.
    #[arg(long, default_value_t = 2, value_parser = parse_voxel_mm)]
    pub voxel_mm: usize,
    /// Axial slices per volume, centred on the brain (default: a 64 mm slab, i.e. 32 at 2 mm,
    /// 64 at 1 mm).
    #[arg(long)]
    pub slices: Option<usize>,
    /// A quick demo/test set: 4 train, 2 test, a 24 mm slab (12 slices at 2 mm; overrides
    /// --train/--test/--slices).
    #[arg(long)]
    pub small: bool,
    /// Use a synthetic sphere phantom instead of the template (no download; for tests).
    #[arg(long)]
    pub phantom: bool,
    /// Overwrite an existing benchmark in --out.
    #[arg(long)]
    pub force: bool,
}

/// `trainer data deform`.
#[derive(Debug, Args)]
pub struct DeformArgs {
    /// Dataset to deform (layout `<data>/{train,test}/<domain>/*.nii.gz`, e.g. from `data simulate`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output dataset folder (a new folder; the input is never modified).
    #[arg(long)]
    pub out: PathBuf,
    /// Domain whose volumes are deformed (the target domain B).
    #[arg(long, default_value = "t2")]
    pub domain: String,
    /// The other domain (A), copied unchanged.
    #[arg(long, default_value = "pd")]
    pub other: String,
    /// Seed of the field (and of the jitter).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest displacement of the shared field, in mm.
    #[arg(long, default_value_t = 8.0)]
    pub max_displacement_mm: f64,
    /// Highest in-plane frequency of the field (cycles per field of view).
    #[arg(long, default_value_t = 1.0)]
    pub max_freq: f64,
    /// Per-volume jitter as a fraction of the shared field's strength (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub jitter: f64,
    /// Overwrite an existing output folder's files.
    #[arg(long)]
    pub force: bool,
}

/// Runs `trainer data …`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::FetchTemplate => {
            let d = template::locate(None, true)?;
            println!("template ready: {}", d.display());
            Ok(())
        }
        DataCommand::FetchReal(a) => fetch_real_cmd(a),
        DataCommand::Simulate(a) => simulate_cmd(a),
        DataCommand::Deform(a) => deform_cmd(a),
    }
}

fn fetch_real_cmd(a: &FetchRealArgs) -> Result<()> {
    let r = real::fetch_real(a.reconvert)?;
    let fmt3 = |v: [f32; 3]| format!("{}×{}×{}", v[0], v[1], v[2]);
    for (path, what) in [
        (
            &r.colin27,
            "Colin27 T1 MR, with skull and scalp (mricron-data)",
        ),
        (
            &r.colin27_bet,
            "Colin27 T1 MR, brain extracted (mricron-data)",
        ),
    ] {
        let v = read_volume(path)?;
        let (lo, hi) = v
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        let (x, y, z) = v.dim();
        println!(
            "{}\n  {what}: {x}×{y}×{z} voxels at {} mm, values {lo}..{hi}",
            path.display(),
            fmt3(v.spacing())
        );
    }
    let ct = &r.ct;
    let (x, y, z) = ct.volume.dim();
    let window = match (ct.info.window_level, ct.info.window_width) {
        (Some(l), Some(w)) => format!(", saved window level {l} / width {w}"),
        _ => String::new(),
    };
    println!(
        "{}\n  the InVesalius project as shipped (invesalius-examples, GPL-2; modality {}, orientation {})",
        r.cranium_inv3.display(),
        ct.info.modality.as_deref().unwrap_or("?"),
        ct.info.orientation.as_deref().unwrap_or("?"),
    );
    println!(
        "{}\n  clinical head CT as NIfTI (RAS+, float32 of the stored int16 HU): {x}×{y}×{z} voxels at {} mm, HU {}..{}{window}",
        r.cranium_ct.display(),
        fmt3(ct.volume.spacing()),
        ct.range[0],
        ct.range[1],
    );
    Ok(())
}

fn bar(n: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Default slab thickness (mm) of `data simulate`, and of `--small`.
const SLAB_MM: usize = 64;
const SMALL_SLAB_MM: usize = 24;

/// `--voxel-mm`: 1 or 2 (the template is 1 mm; other sizes are not integer block means).
pub fn parse_voxel_mm(s: &str) -> Result<usize, String> {
    match s.trim() {
        "1" | "1.0" => Ok(1),
        "2" | "2.0" => Ok(2),
        _ => Err(format!(
            "{s:?} is not a supported voxel size: use 1 (the template's own 1 mm grid) or 2 (2×2×2 block means)"
        )),
    }
}

fn simulate_cmd(a: &SimulateArgs) -> Result<()> {
    let t0 = Instant::now();
    let v = a.voxel_mm;
    let (train, test, slices) = if a.small {
        (4, 2, SMALL_SLAB_MM / v)
    } else {
        (a.train, a.test, a.slices.unwrap_or(SLAB_MM / v))
    };
    if a.phantom && v != 2 {
        bail!("--phantom is a 2 mm anatomy: it cannot be combined with --voxel-mm {v}");
    }
    if train + test == 0 || slices == 0 {
        bail!("--train + --test and --slices must be positive");
    }
    if a.out.join("benchmark.json").exists() && !a.force {
        bail!(
            "{} already holds a benchmark (benchmark.json): choose another --out or pass --force",
            a.out.display()
        );
    }
    // The 2 mm grid is the reference: a 1 mm benchmark covers exactly its field of view
    // (192×224 mm in-plane, the slab centred where the 2 mm one is).
    let (anatomy, name, (dims, offset)) = if a.phantom {
        let anatomy = Anatomy::phantom([48, 56, 40]);
        let grid = simulate::centred_grid(&anatomy, [48, 56], slices.min(anatomy.dims()[2]));
        (anatomy, "sphere phantom".to_string(), grid)
    } else {
        let dir = template::locate(a.template.as_deref(), !a.no_fetch)?;
        eprintln!("anatomy: {}", dir.display());
        let name = format!("MNI ICBM152 2009a (nilearn 0.14.1), {v} mm");
        let reference = Anatomy::from_template(&dir, 2)?;
        if v == 2 {
            let grid =
                simulate::centred_grid(&reference, [96, 112], slices.min(reference.dims()[2]));
            (reference, name, grid)
        } else {
            let anatomy = Anatomy::from_template(&dir, v)?;
            let xy = [96 * 2 / v, 112 * 2 / v];
            let slices = slices.min(anatomy.dims()[2]);
            let grid = simulate::matching_grid(&reference, &anatomy, xy, slices);
            (anatomy, name, grid)
        }
    };
    let opts = SimOptions::ixi_like(a.seed, dims, offset);
    let pb = bar((train + test) as u64, "simulating subjects");
    simulate::write_benchmark(&anatomy, &opts, train, test, &a.out, &name, &pb)?;
    pb.finish();
    println!(
        "wrote {train} train + {test} test subjects ({}×{}×{} at {} mm, PD TE {} / T2 TE {} ms, TR {} ms) to {} in {:.1} s",
        dims[0],
        dims[1],
        dims[2],
        anatomy.voxel_mm(),
        opts.te_pd,
        opts.te_t2,
        opts.tr,
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn deform_cmd(a: &DeformArgs) -> Result<()> {
    deform_dataset(
        &DeformOptions {
            data: a.data.clone(),
            out: a.out.clone(),
            domain: a.domain.clone(),
            other: a.other.clone(),
            seed: a.seed,
            max_displacement_mm: a.max_displacement_mm,
            max_freq: a.max_freq,
            jitter: a.jitter,
            force: a.force,
        },
        bar(0, "deforming"),
    )
}
