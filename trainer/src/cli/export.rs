//! `trainer export`: a run's checkpoint → one weight file per direction (fp16, through the
//! core's writer) with a quantization report, and a golden bundle per direction: real
//! input slices with libtorch's fp32 outputs of both passes, for `firmware-sim verify`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dicyc_core::format::{Normalization, WeightFile};
use dicyc_firmware_sim::golden::BundleWriter;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::cli::synth::{latest_checkpoint, load_generator, Direction};
use crate::data::nifti_io::{list_volumes, read_volume};
use crate::data::preprocess::{pad_to_multiple_of_4, prepare, PreprocessOptions};
use crate::data::sampling::DataStats;
use crate::device::DeviceChoice;
use crate::export::{core_config, export_generator, tensor_values, TensorQuantization};
use crate::model::generator::Pass;

/// `trainer export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run directory (config.toml + checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint folder (default: the run's latest).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Output folder: g_ab.dcw, g_ba.dcw, export.json, golden-ab/, golden-ba/.
    #[arg(long)]
    pub out: PathBuf,
    /// Domain-A volumes (folder, list file or one volume) to take golden input slices from.
    #[arg(long)]
    pub golden_a: Option<PathBuf>,
    /// Domain-B volumes to take golden input slices from.
    #[arg(long)]
    pub golden_b: Option<PathBuf>,
    /// Golden slices per direction (the slices with the most foreground).
    #[arg(long, default_value_t = 4)]
    pub golden_slices: usize,
    /// Device for the libtorch reference outputs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// `export.json`: what was written, per direction.
#[derive(Debug, Serialize)]
struct ExportReport {
    checkpoint: String,
    directions: Vec<DirectionReport>,
}

#[derive(Debug, Serialize)]
struct DirectionReport {
    direction: &'static str,
    weight_file: String,
    bytes: usize,
    crc32c: String,
    parameters: u64,
    normalization: [f32; 4],
    max_abs_quantization_error: f32,
    quantization: Vec<TensorQuantization>,
    golden_slices: usize,
}

/// Header constants: per-volume `(x − mean)/sd` standardisation divided by `sd_range` on the
/// way in; the target domain's typical intensity map on the way out (DESIGN §3).
fn header_normalization(stats: Option<&DataStats>, direction: Direction) -> Normalization {
    let sd_range = stats.map_or(PreprocessOptions::default().sd_range, |s| {
        s.preprocess.sd_range
    });
    let target = stats.map(|s| match direction {
        Direction::A2b => s.b,
        Direction::B2a => s.a,
    });
    Normalization {
        input_offset: 0.0,
        input_scale: 1.0 / sd_range,
        output_offset: target.map_or(0.0, |t| t.mean),
        output_scale: target.map_or(1.0, |t| t.scale),
    }
}

/// Up to `n` normalised, ×4-padded slices with the most foreground from `source`'s volumes.
fn golden_inputs(
    source: &Path,
    opts: &PreprocessOptions,
    n: usize,
) -> Result<Vec<(String, ndarray::Array2<f32>)>> {
    let mut candidates = Vec::new();
    for path in list_volumes(source)? {
        let volume = read_volume(&path)?;
        let prepared = prepare(&volume, opts);
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for (k, slice) in prepared.slices.iter().enumerate() {
            let padded = pad_to_multiple_of_4(&slice.view(), prepared.fill);
            candidates.push((prepared.foreground[k], format!("{name} z={k}"), padded));
        }
        if candidates.len() >= 16 * n.max(1) {
            break;
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(candidates
        .into_iter()
        .take(n)
        .map(|(_, name, s)| (name, s))
        .collect())
}

/// Runs `trainer export`.
pub fn run(a: &ExportArgs) -> Result<()> {
    let checkpoint = match &a.checkpoint {
        Some(c) => c.clone(),
        None => latest_checkpoint(&a.run)?,
    };
    let device = a.device.resolve()?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let stats_path = a.run.join("data-stats.json");
    let stats = if stats_path.exists() {
        Some(DataStats::load(&stats_path)?)
    } else {
        None
    };
    let opts = stats
        .as_ref()
        .map_or_else(PreprocessOptions::default, |s| s.preprocess.clone());
    let mut report = ExportReport {
        checkpoint: checkpoint.display().to_string(),
        directions: Vec::new(),
    };
    for (direction, tag, golden_source) in [
        (Direction::A2b, "ab", &a.golden_a),
        (Direction::B2a, "ba", &a.golden_b),
    ] {
        let loaded = load_generator(&a.run, &checkpoint, direction, device)?;
        let config = core_config(loaded.generator.config())?;
        let norm = header_normalization(stats.as_ref(), direction);
        let exported = export_generator(&loaded.vs.variables(), "", &config, &norm)
            .with_context(|| format!("exporting g_{tag} of {}", checkpoint.display()))?;
        let path = a.out.join(format!("g_{tag}.dcw"));
        dicyc_firmware_sim::cli::write_atomically(&path, &exported.bytes)?;
        let file = WeightFile::new_checked(&exported.bytes)
            .map_err(|e| anyhow::anyhow!("re-reading {}: {e}", path.display()))?;
        let worst = exported
            .quantization
            .iter()
            .map(|q| q.max_abs_error)
            .fold(0f32, f32::max);
        println!(
            "export g_{tag}: {} ({} bytes, {} parameters, crc32c {:08x}); largest fp16 rounding error {worst:.2e}",
            path.display(),
            exported.bytes.len(),
            config.parameter_count(),
            file.crc32c()
        );
        let mut golden_count = 0;
        if let Some(source) = golden_source {
            let inputs = golden_inputs(source, &opts, a.golden_slices)?;
            if inputs.is_empty() {
                bail!(
                    "no slices found in {} for the golden bundle",
                    source.display()
                );
            }
            let dir = a.out.join(format!("golden-{tag}"));
            let (cin, cout) = (config.in_channels as usize, config.out_channels as usize);
            let mut bundle = BundleWriter::create(&dir, file.crc32c(), cin, cout)?;
            for (name, slice) in &inputs {
                let (h, w) = slice.dim();
                let values: Vec<f32> = slice.iter().copied().collect();
                let x = Tensor::from_slice(&values)
                    .view([1, 1, h as i64, w as i64])
                    .to_kind(Kind::Float)
                    .to_device(device);
                let deformed = tensor_values(&tch::no_grad(|| {
                    loaded.generator.forward(&x, Pass::Deformed)
                }))?;
                let undeformed = tensor_values(&tch::no_grad(|| {
                    loaded.generator.forward(&x, Pass::Undeformed)
                }))?;
                bundle.add(name, h, w, &values, &deformed, &undeformed)?;
            }
            bundle.finish()?;
            golden_count = inputs.len();
            println!(
                "export g_{tag}: golden bundle of {golden_count} slices in {}",
                dir.display()
            );
        }
        report.directions.push(DirectionReport {
            direction: match direction {
                Direction::A2b => "a2b",
                Direction::B2a => "b2a",
            },
            weight_file: path.display().to_string(),
            bytes: exported.bytes.len(),
            crc32c: format!("{:08x}", file.crc32c()),
            parameters: config.parameter_count(),
            normalization: [
                norm.input_offset,
                norm.input_scale,
                norm.output_offset,
                norm.output_scale,
            ],
            max_abs_quantization_error: worst,
            quantization: exported.quantization,
            golden_slices: golden_count,
        });
    }
    let json = a.out.join("export.json");
    dicyc_firmware_sim::cli::write_atomically(
        &json,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!("export: report in {}", json.display());
    Ok(())
}
