//! `trainer export`: a run's checkpoint → one weight file per direction (fp16, through the
//! core's writer) with a per-tensor quantization report, and a golden bundle per direction:
//! real input slices with libtorch's fp32 outputs of both passes, for `firmware-sim verify`.
//!
//! A value fp16 cannot hold fails the export, never a clamp: both generators are measured
//! first, and when any tensor of either fails, `export.json` lists them and no weight file
//! is written, so a deployment never gets one direction of a model (docs/FIRMWARE.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dicyc_core::format::{Normalization, WeightFile};
use dicyc_volume::atomic::StagedOutputs;
use dicyc_volume::golden::BundleWriter;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::data::nifti_io::{list_volumes, read_volume};
use crate::data::preprocess::{pad_to_multiple_of_4, prepare, PreprocessOptions};
use crate::data::sampling::DataStats;
use crate::device::DeviceChoice;
use crate::export::{core_config, quantize_generator, tensor_values, TensorQuantization};
use crate::inference::{batch_that_fits, latest_checkpoint, load_generator, Direction};
use crate::model::generator::Pass;
use crate::train::config::DataConfig;
use crate::train::TrainConfig;

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
    /// Domain-A volumes (folder, list file or one volume) to take golden input slices from
    /// (default: the run's domain-A training volumes, when its config.toml records them).
    #[arg(long)]
    pub golden_a: Option<PathBuf>,
    /// Domain-B volumes to take golden input slices from (default: the run's domain-B
    /// training volumes, when recorded).
    #[arg(long)]
    pub golden_b: Option<PathBuf>,
    /// Golden slices per direction (the slices with the most foreground); 0 writes no golden
    /// bundle.
    #[arg(long, default_value_t = 4)]
    pub golden_slices: usize,
    /// Device for the libtorch reference outputs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// `export.json`: what was checked and what was written, per direction.
#[derive(Debug, Serialize)]
struct ExportReport {
    checkpoint: String,
    /// `ok`, or `failed` when a tensor holds values the weight file cannot store; then no
    /// weight file was written.
    status: &'static str,
    /// Every tensor, of either direction, that stops the export.
    unrepresentable: Vec<Unrepresentable>,
    directions: Vec<DirectionReport>,
}

#[derive(Debug, Serialize)]
struct Unrepresentable {
    direction: &'static str,
    tensor: String,
    out_of_range: usize,
    non_finite: usize,
    max_abs_value: f32,
}

#[derive(Debug, Serialize)]
struct DirectionReport {
    direction: &'static str,
    parameters: u64,
    normalization: [f32; 4],
    max_abs_quantization_error: f32,
    /// Absent when the export failed.
    #[serde(flatten)]
    written: Option<WrittenFiles>,
    /// One entry per tensor of the generator, in file order.
    quantization: Vec<TensorQuantization>,
}

#[derive(Debug, Serialize)]
struct WrittenFiles {
    weight_file: String,
    bytes: usize,
    crc32c: String,
    /// The golden bundle's folder, when one was written.
    golden_bundle: Option<String>,
    golden_slices: usize,
}

/// Where one direction's golden input slices come from.
#[derive(Debug, Clone, PartialEq)]
enum GoldenSource {
    /// `--golden-a` / `--golden-b`.
    Given(PathBuf),
    /// The run's training volumes of the source domain (config.toml `[data]`).
    Recorded(PathBuf),
    /// No bundle, and why.
    Missing(String),
}

/// The golden inputs of `direction`: the flag, else the source domain's training volumes
/// that the run's configuration records (a run on synthetic data records none).
fn golden_source(given: Option<&Path>, data: &DataConfig, direction: Direction) -> GoldenSource {
    if let Some(path) = given {
        return GoldenSource::Given(path.to_owned());
    }
    let field = match direction {
        Direction::A2b => "a",
        Direction::B2a => "b",
    };
    match data {
        DataConfig::Nifti { a, b, .. } => {
            let path = match direction {
                Direction::A2b => a,
                Direction::B2a => b,
            };
            if path.exists() {
                GoldenSource::Recorded(path.clone())
            } else {
                GoldenSource::Missing(format!(
                    "the run's training data {} (config.toml [data].{field}) is not there any more",
                    path.display()
                ))
            }
        }
        DataConfig::Synthetic(_) => GoldenSource::Missing(
            "the run trained on synthetic data, so its config.toml records no volumes".into(),
        ),
    }
}

/// A compact per-tensor table: shape, largest |w|, largest fp16 error, relative L2.
fn quantization_table(tensors: &[TensorQuantization]) -> String {
    let name_width = tensors
        .iter()
        .map(|q| q.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let shape = |q: &TensorQuantization| {
        q.dims
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("x")
    };
    let shape_width = tensors
        .iter()
        .map(|q| shape(q).len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "  {:<name_width$} {:<shape_width$} {:>5} {:>9} {:>9} {:>9}\n",
        "tensor", "shape", "dtype", "max|w|", "max err", "rel L2"
    );
    for q in tensors {
        out.push_str(&format!(
            "  {:<name_width$} {:<shape_width$} {:>5} {:>9.2e} {:>9.2e} {:>9.2e}",
            q.name,
            shape(q),
            q.dtype,
            q.max_abs_value,
            q.max_abs_error,
            q.rel_l2_error
        ));
        if !q.representable() {
            out.push_str(&format!(
                "  CANNOT STORE: {} out of fp16 range, {} non-finite",
                q.out_of_range, q.non_finite
            ));
        }
        out.push('\n');
    }
    out
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::A2b => "a2b",
        Direction::B2a => "b2a",
    }
}

fn write_report(path: &Path, report: &ExportReport) -> Result<()> {
    dicyc_volume::atomic::write_atomic(path, serde_json::to_string_pretty(report)?.as_bytes())
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

/// Named, normalised golden input slices (`volume:slice`, `H × W`).
type GoldenInputs = Vec<(String, ndarray::Array2<f32>)>;

/// The golden inputs of `direction` (`tag` `ab`/`ba`) as [`golden_source`] finds them, read
/// and normalised; `None` (with a warning saying how to get a bundle) when there are none.
fn read_golden_inputs(
    a: &ExportArgs,
    data: &DataConfig,
    direction: Direction,
    tag: &str,
    opts: &PreprocessOptions,
) -> Result<Option<GoldenInputs>> {
    let (given, flag) = match direction {
        Direction::A2b => (a.golden_a.as_deref(), "--golden-a"),
        Direction::B2a => (a.golden_b.as_deref(), "--golden-b"),
    };
    if a.golden_slices == 0 {
        println!(
            "export g_{tag}: no golden bundle (--golden-slices 0): `firmware-sim verify` needs one"
        );
        return Ok(None);
    }
    let source = match golden_source(given, data, direction) {
        GoldenSource::Given(path) => path,
        GoldenSource::Recorded(path) => {
            println!(
                "export g_{tag}: golden inputs from the run's training data {} (pass {flag} for held-out volumes)",
                path.display()
            );
            path
        }
        GoldenSource::Missing(why) => {
            eprintln!(
                "warning: export g_{tag}: no golden bundle written: {why}; pass {flag} VOLUMES (a folder, list file or volume of the source domain) to write one for `firmware-sim verify`"
            );
            return Ok(None);
        }
    };
    let inputs = golden_inputs(&source, opts, a.golden_slices)
        .with_context(|| format!("reading the golden inputs of g_{tag} ({flag})"))?;
    if inputs.is_empty() {
        bail!(
            "no slices found in {} for the golden bundle of g_{tag}",
            source.display()
        );
    }
    Ok(Some(inputs))
}

/// Up to `n` normalised, ×4-padded slices with the most foreground from `source`'s volumes.
fn golden_inputs(source: &Path, opts: &PreprocessOptions, n: usize) -> Result<GoldenInputs> {
    let mut candidates = Vec::new();
    for path in list_volumes(source)? {
        let volume = read_volume(&path)?;
        let prepared =
            prepare(&volume, opts).with_context(|| format!("preparing {}", path.display()))?;
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

/// Runs `trainer export`: checks every tensor of both generators, and only when all can be
/// stored writes both weight files, the golden bundles and `export.json`.
pub fn run(a: &ExportArgs) -> Result<()> {
    let checkpoint = match &a.checkpoint {
        Some(c) => c.clone(),
        None => latest_checkpoint(&a.run)?,
    };
    let device = a.device.resolve()?;
    let train_config = TrainConfig::load(&a.run.join("config.toml"))?;
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
        status: "ok",
        unrepresentable: Vec::new(),
        directions: Vec::new(),
    };

    // Every tensor of both directions is measured before anything is written.
    let mut generators = Vec::new();
    for (direction, tag) in [(Direction::A2b, "ab"), (Direction::B2a, "ba")] {
        let loaded = load_generator(&a.run, &checkpoint, direction, device)?;
        let config = core_config(loaded.generator.config())?;
        let norm = header_normalization(stats.as_ref(), direction);
        let quantized = quantize_generator(&loaded.vs.variables(), "", &config)
            .with_context(|| format!("exporting g_{tag} of {}", checkpoint.display()))?;
        println!(
            "export g_{tag}: {} tensors, {} parameters (fp16; biases f32):\n{}",
            quantized.quantization.len(),
            config.parameter_count(),
            quantization_table(&quantized.quantization)
        );
        for q in quantized.unrepresentable() {
            report.unrepresentable.push(Unrepresentable {
                direction: direction_name(direction),
                tensor: q.name.clone(),
                out_of_range: q.out_of_range,
                non_finite: q.non_finite,
                max_abs_value: q.max_abs_value,
            });
        }
        report.directions.push(DirectionReport {
            direction: direction_name(direction),
            parameters: config.parameter_count(),
            normalization: [
                norm.input_offset,
                norm.input_scale,
                norm.output_offset,
                norm.output_scale,
            ],
            max_abs_quantization_error: quantized
                .quantization
                .iter()
                .map(|q| q.max_abs_error)
                .fold(0f32, f32::max),
            written: None,
            quantization: quantized.quantization.clone(),
        });
        generators.push((direction, tag, loaded, config, norm, quantized));
    }
    let json = a.out.join("export.json");
    if !report.unrepresentable.is_empty() {
        report.status = "failed";
        write_report(&json, &report)?;
        let listed: Vec<String> = generators
            .iter()
            .flat_map(|(_, tag, _, _, _, q)| {
                q.unrepresentable()
                    .map(move |t| format!("g_{tag} {}", t.describe_unrepresentable()))
            })
            .collect();
        bail!(
            "{} tensor(s) of {} hold values an fp16 weight file cannot store (they are never clamped), so no weight file was written (report in {}): {}",
            listed.len(),
            checkpoint.display(),
            json.display(),
            listed.join("; ")
        );
    }

    // Both pass: build both files and read both directions' golden inputs in memory (any of
    // which can fail), and only then write anything, so a deployment never gets one direction.
    let mut exported = Vec::new();
    for (direction, tag, loaded, config, norm, quantized) in generators {
        let file = quantized
            .write(&norm)
            .with_context(|| format!("exporting g_{tag} of {}", checkpoint.display()))?;
        let golden = read_golden_inputs(a, &train_config.data, direction, tag, &opts)?;
        for (name, slice) in golden.iter().flatten() {
            batch_that_fits(loaded.generator.config(), slice.dim(), 1)
                .with_context(|| format!("golden input {name} of g_{tag}"))?;
        }
        exported.push((direction, tag, loaded, config, file, golden));
    }
    // Everything is written into a staging folder and moved into place at the end, the report
    // last: a failure on the way (a full disk) leaves the output folder as it was.
    let mut staged = StagedOutputs::create(&a.out, "export.json")?;
    for (i, (_, tag, loaded, config, exported, golden)) in exported.iter().enumerate() {
        let name = format!("g_{tag}.dcw");
        let path = staged.final_path(&name);
        dicyc_volume::atomic::write_atomic(&staged.path(&name), &exported.bytes)?;
        let file = WeightFile::new_checked(&exported.bytes)
            .map_err(|e| anyhow::anyhow!("re-reading {}: {e}", path.display()))?;
        println!(
            "export g_{tag}: {} ({} bytes, crc32c {:08x}); largest fp16 rounding error {:.2e}",
            path.display(),
            exported.bytes.len(),
            file.crc32c(),
            report.directions[i].max_abs_quantization_error
        );
        let mut golden_bundle = None;
        let mut golden_slices = 0;
        let bundle_name = format!("golden-{tag}");
        if golden.is_none() {
            staged.remove_stale(&bundle_name);
        }
        if let Some(inputs) = golden {
            let dir = staged.final_path(&bundle_name);
            let (cin, cout) = (config.in_channels as usize, config.out_channels as usize);
            let mut bundle =
                BundleWriter::create(&staged.path(&bundle_name), file.crc32c(), cin, cout)?;
            for (name, slice) in inputs {
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
            golden_slices = inputs.len();
            println!(
                "export g_{tag}: golden bundle of {golden_slices} slices in {}",
                dir.display()
            );
            golden_bundle = Some(dir.display().to_string());
        }
        report.directions[i].written = Some(WrittenFiles {
            weight_file: path.display().to_string(),
            bytes: exported.bytes.len(),
            crc32c: format!("{:08x}", file.crc32c()),
            golden_bundle,
            golden_slices,
        });
    }
    write_report(&staged.path("export.json"), &report)?;
    staged.commit()?;
    println!("export: report in {}", json.display());
    Ok(())
}
