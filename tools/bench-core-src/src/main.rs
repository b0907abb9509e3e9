//! `tools/bench-core`: the core's speed as a ratio against libtorch, in one run, on the same
//! weights and the same input, single-threaded; plus its scratch against the layer-by-layer
//! minimum and its agreement with libtorch.
//!
//! Prints, among other lines:
//! `core_vs_libtorch_speed deformed=0.62 undeformed=0.58` (libtorch time / core time) and
//! `core_scratch_mib=13.2 min_mib=12.0`.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use dicyc_core::format::{Normalization, WeightFile};
use dicyc_core::{
    layer_by_layer_minimum_bytes, required_scratch_bytes, synthesize, Pass as CorePass,
};
use dicyc_trainer::export::{core_config, export_generator, tensor_values};
use dicyc_trainer::model::generator::{parse_form, Generator, GeneratorConfig, OffsetSite, Pass};
use dicyc_trainer::model::init::InitConfig;
use dicyc_trainer::model::OffsetForm;
use dicyc_volume::golden::BundleWriter;
use tch::{nn, Device, Kind, Tensor};

/// Core vs libtorch, single thread.
#[derive(Debug, Parser)]
struct Args {
    /// Small and fast: 64×64, ngf 16, 3 blocks.
    #[arg(long)]
    quick: bool,
    /// Image side (default 256, or 64 with --quick).
    #[arg(long)]
    size: Option<i64>,
    /// Base width (default 64, or 16 with --quick).
    #[arg(long)]
    ngf: Option<i64>,
    /// Residual blocks (default 9, or 3 with --quick).
    #[arg(long)]
    blocks: Option<i64>,
    /// Timed repetitions per pass and engine (the median is reported; at least 1).
    #[arg(long, default_value_t = 3,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    reps: usize,
    /// The offset layers' fields: `shared` (the trainer's default) or `per-channel`.
    #[arg(long, value_name = "FORM", default_value = "shared",
          value_parser = |name: &str| parse_form(name).map_err(|err| err.to_string()))]
    offset_form: OffsetForm,
    /// Random seed of weights and input.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Also write the benchmarked weight file here (e.g. to try `firmware-sim flash`).
    #[arg(long)]
    save_weights: Option<std::path::PathBuf>,
    /// Also write the input and libtorch's outputs of both passes as a golden bundle here
    /// (for `firmware-sim verify` at this size).
    #[arg(long)]
    save_golden: Option<std::path::PathBuf>,
}

/// The median of `times` (never empty: `--reps` is at least 1).
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let size = args.size.unwrap_or(if args.quick { 64 } else { 256 });
    let config = GeneratorConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: args.ngf.unwrap_or(if args.quick { 16 } else { 64 }),
        n_blocks: args.blocks.unwrap_or(if args.quick { 3 } else { 9 }),
        offset_layers: OffsetSite::ALL.to_vec(),
        offset_form: args.offset_form,
    };
    let core = core_config(&config)?;
    tch::set_num_threads(1);
    tch::manual_seed(args.seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let generator = Generator::new(&vs.root(), &config, &InitConfig::default())?;
    let exported = export_generator(&vs.variables(), "", &core, &Normalization::IDENTITY)?;
    if let Some(path) = &args.save_weights {
        std::fs::write(path, &exported.bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let weights = WeightFile::new_checked(&exported.bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let input =
        Tensor::randn([1, 1, size, size], (Kind::Float, Device::Cpu)).clamp(-1.0, 1.0) * 0.8;
    let input_values = tensor_values(&input)?;
    let (h, w) = (size as usize, size as usize);
    let scratch_bytes = required_scratch_bytes(&core, h, w).map_err(|e| anyhow::anyhow!("{e}"))?;
    let minimum = layer_by_layer_minimum_bytes(&core, h, w).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut scratch = vec![0u8; scratch_bytes];
    let mut output = vec![0f32; h * w];
    let gmac = {
        // 2 FLOP per MAC; MACs of the undeformed pass from the layer shapes.
        let hw = (size * size) as f64;
        let n = config.ngf as f64;
        let b = config.n_blocks as f64;
        (49.0 * n * hw
            + 9.0 * 2.0 * n * n * hw / 4.0
            + 9.0 * 8.0 * n * n * hw / 16.0
            + b * 2.0 * 9.0 * 16.0 * n * n * hw / 16.0
            + 9.0 * 8.0 * n * n * hw / 16.0
            + 9.0 * 2.0 * n * n * hw / 4.0
            + 49.0 * n * hw)
            / 1e9
    };
    println!(
        "bench-core: {size}x{size}, ngf {}, {} blocks, 4 offset layers ({}), {} parameters; {:.2} GMAC undeformed; one thread each; core kernel {}",
        config.ngf,
        config.n_blocks,
        config.offset_form.name(),
        core.parameter_count(),
        gmac,
        dicyc_core::gemm::KERNEL_NAME
    );

    let mut golden_outputs = Vec::new();
    let mut ratios = Vec::new();
    for (pass, core_pass, name) in [
        (Pass::Deformed, CorePass::Deformed, "deformed"),
        (Pass::Undeformed, CorePass::Undeformed, "undeformed"),
    ] {
        let reference = tch::no_grad(|| generator.forward(&input, pass));
        let reference_values = tensor_values(&reference)?;
        golden_outputs.push(reference_values.clone());
        let mut libtorch_times = Vec::new();
        let mut core_times = Vec::new();
        for rep in 0..=args.reps {
            let t = Instant::now();
            let _ = tch::no_grad(|| generator.forward(&input, pass));
            let libtorch = t.elapsed();
            let t = Instant::now();
            synthesize(
                &weights,
                &input_values,
                h,
                w,
                core_pass,
                &mut scratch,
                &mut output,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let core_time = t.elapsed();
            if rep > 0 {
                // Repetition 0 warms caches and libtorch's kernel selection.
                libtorch_times.push(libtorch);
                core_times.push(core_time);
            }
        }
        let (lt, ct) = (median(libtorch_times), median(core_times));
        let (mut diff_sq, mut ref_sq, mut max_abs) = (0f64, 0f64, 0f64);
        for (&c, &r) in output.iter().zip(&reference_values) {
            let d = f64::from(c) - f64::from(r);
            diff_sq += d * d;
            ref_sq += f64::from(r) * f64::from(r);
            max_abs = max_abs.max(d.abs());
        }
        println!(
            "{name:<10} libtorch {:>8.1} ms   core {:>8.1} ms   core {:.1} GFLOP/s (undeformed-equivalent)   rel_l2 {:.2e}  max_abs {:.2e}",
            lt.as_secs_f64() * 1e3,
            ct.as_secs_f64() * 1e3,
            2.0 * gmac / ct.as_secs_f64(),
            (diff_sq / ref_sq.max(f64::MIN_POSITIVE)).sqrt(),
            max_abs
        );
        ratios.push(lt.as_secs_f64() / ct.as_secs_f64());
    }
    println!(
        "core_vs_libtorch_speed deformed={:.2} undeformed={:.2}",
        ratios[0], ratios[1]
    );
    const MIB: f64 = 1024.0 * 1024.0;
    println!(
        "core_scratch_mib={:.2} min_mib={:.2}",
        scratch_bytes as f64 / MIB,
        minimum as f64 / MIB
    );
    if let Some(dir) = &args.save_golden {
        let mut bundle = BundleWriter::create(dir, weights.crc32c(), 1, 1)?;
        bundle.add(
            "bench input",
            h,
            w,
            &input_values,
            &golden_outputs[0],
            &golden_outputs[1],
        )?;
        bundle.finish()?;
    }
    std::hint::black_box(&output)
        .first()
        .context("empty output")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reps_must_be_at_least_one() {
        assert!(Args::try_parse_from(["bench-core", "--reps", "0"]).is_err());
        let args = Args::try_parse_from(["bench-core", "--reps", "1"]).unwrap();
        assert_eq!(args.reps, 1);
        assert_eq!(Args::try_parse_from(["bench-core"]).unwrap().reps, 3);
    }
}
