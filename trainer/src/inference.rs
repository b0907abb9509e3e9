//! A trained generator on whole volumes, in memory: loading `g_ab`/`g_ba` from a run's
//! checkpoint and synthesising a volume slice-batch by slice-batch with the training
//! preprocessing. `trainer synth --run`, `trainer export` and `trainer study` share it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ndarray::Array3;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::preprocess::{
    pad_to_multiple_of_4, prepare, restore, runnable_padded_shape, PreprocessOptions,
};
use crate::data::Volume;
use crate::model::generator::{Generator, GeneratorConfig, Pass};
use crate::train::TrainConfig;
use dicyc_volume::nifti_io::{human_bytes, parse_byte_count};
use dicyc_volume::preprocess::Normalization;

/// Environment variable holding the most memory one forward of the generator may take in
/// [`LoadedGenerator::synthesize_volume`] ([`forward_bytes`]): a byte count with an optional
/// binary suffix, as `DICYC_MAX_VOLUME_BYTES` takes.
pub const MAX_FORWARD_BYTES_ENV: &str = "DICYC_MAX_FORWARD_BYTES";

/// Default of [`MAX_FORWARD_BYTES_ENV`]: 2 GiB, the volume reader's default limit. The
/// paper's generator (ngf 64) then runs slices up to about 1090 × 1090 pixels, and batches
/// of 4 at 512 × 512 (a larger `--batch` shrinks to fit).
pub const DEFAULT_MAX_FORWARD_BYTES: u64 = 2 << 30;

/// Peak memory of a forward without gradients, in bytes per padded slice pixel and per unit
/// of `ngf`: the full-resolution layers hold about six float32 tensors of `ngf` channels at
/// once. Measured as the growth of peak RSS (`/usr/bin/time -f %M trainer synth --run …
/// --batch 1`) from a 1024² to a 2048² slice, both passes: 24.4 at ngf 64 (9 blocks),
/// 24.6 at ngf 8 (2 blocks); 28 leaves a margin.
pub const FORWARD_BYTES_PER_PIXEL_PER_NGF: u64 = 28;

/// Estimated peak memory of one forward of `config` on `batch` slices of `(h, w)` pixels
/// (padded), beyond the process's fixed cost (libtorch itself takes about 0.5 GB).
pub fn forward_bytes(config: &GeneratorConfig, (h, w): (usize, usize), batch: usize) -> u64 {
    (batch as u64)
        .saturating_mul(h as u64)
        .saturating_mul(w as u64)
        .saturating_mul(config.ngf.max(1) as u64)
        .saturating_mul(FORWARD_BYTES_PER_PIXEL_PER_NGF)
}

/// How many `(h, w)` slices (before padding to multiples of 4) one forward of `config` may
/// take, at most `batch`: an error when the slice is too small for the generator or when even
/// one slice would need more than [`max_forward_bytes`]. Checked before anything is allocated,
/// so that a small file declaring huge slices is an error, not an exhausted machine.
pub fn batch_that_fits(
    config: &GeneratorConfig,
    (h, w): (usize, usize),
    batch: usize,
) -> Result<usize> {
    let padded = runnable_padded_shape((h, w))?;
    let one = forward_bytes(config, padded, 1);
    let limit = ensure_forward_fits((h, w), one)?;
    Ok(batch.clamp(1, (limit / one.max(1)).max(1) as usize))
}

/// An error when one forward on an `h × w` slice needs `bytes`, more than
/// [`max_forward_bytes`] (which it returns otherwise); the message says how to raise the limit.
pub fn ensure_forward_fits((h, w): (usize, usize), bytes: u64) -> Result<u64> {
    let limit = max_forward_bytes()?;
    anyhow::ensure!(
        bytes <= limit,
        "its axial slices are {h}×{w} voxels at the working spacing: one forward of this \
         generator on such a slice needs about {} of memory, over the limit of {} (set \
         {MAX_FORWARD_BYTES_ENV}, e.g. {MAX_FORWARD_BYTES_ENV}=16G, if the machine has the \
         memory; or crop or resample the volume)",
        human_bytes(bytes),
        human_bytes(limit)
    );
    Ok(limit)
}

/// The forward limit: [`MAX_FORWARD_BYTES_ENV`] when set, else [`DEFAULT_MAX_FORWARD_BYTES`].
pub fn max_forward_bytes() -> Result<u64> {
    let Some(v) = std::env::var_os(MAX_FORWARD_BYTES_ENV) else {
        return Ok(DEFAULT_MAX_FORWARD_BYTES);
    };
    let text = v.to_string_lossy();
    parse_byte_count(&text).with_context(|| {
        format!(
            "{MAX_FORWARD_BYTES_ENV} = {text:?} is not a byte count: set it to e.g. 8G or \
             8589934592, or unset it for the default of {}",
            human_bytes(DEFAULT_MAX_FORWARD_BYTES)
        )
    })
}

/// Which generator of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// Domain A → B (`g_ab`), e.g. PD → T2.
    A2b,
    /// Domain B → A (`g_ba`).
    B2a,
}

/// The checkpoint folder `checkpoints/latest` points to.
pub fn latest_checkpoint(run: &Path) -> Result<PathBuf> {
    let pointer = run.join("checkpoints").join("latest");
    let name = std::fs::read_to_string(&pointer).with_context(|| {
        format!(
            "{} has no checkpoint ({} missing): train first, or pass --checkpoint",
            run.display(),
            pointer.display()
        )
    })?;
    Ok(run.join("checkpoints").join(name.trim()))
}

/// A generator loaded from a run's checkpoint.
pub struct LoadedGenerator {
    /// Keeps the weights alive.
    pub vs: VarStore,
    /// The network.
    pub generator: Generator,
    /// Where it runs.
    pub device: Device,
}

/// Loads `g_ab` or `g_ba` of a run (config.toml) from a checkpoint folder.
pub fn load_generator(
    run: &Path,
    checkpoint: &Path,
    direction: Direction,
    device: Device,
) -> Result<LoadedGenerator> {
    let config = TrainConfig::load(&run.join("config.toml"))?;
    let gcfg = match direction {
        Direction::A2b => config.effective_generator(),
        Direction::B2a => config.effective_generator_ba(),
    };
    let mut vs = VarStore::new(device);
    let generator = Generator::new(&vs.root(), &gcfg, &config.init)?;
    let file = checkpoint.join(match direction {
        Direction::A2b => "g_ab.safetensors",
        Direction::B2a => "g_ba.safetensors",
    });
    vs.load(&file).with_context(|| {
        format!(
            "loading {} (does it match {}?)",
            file.display(),
            run.join("config.toml").display()
        )
    })?;
    Ok(LoadedGenerator {
        vs,
        generator,
        device,
    })
}

impl LoadedGenerator {
    /// Synthesises one volume: its axial slices are normalised and resampled as `opts` says
    /// (the training preprocessing), padded to multiples of 4, run `batch` at a time through
    /// `pass`, and mapped back onto the source grid in `target`'s units (the output domain's
    /// intensity map; `None` = the source volume's own). `progress` is called with the
    /// number of slices done after each batch.
    pub fn synthesize_volume(
        &self,
        v: &Volume,
        opts: &PreprocessOptions,
        target: Option<Normalization>,
        pass: Pass,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Array3<f32>> {
        let prep = prepare(v, opts)?;
        let batch = match prep.slices.first() {
            Some(s) => batch_that_fits(self.generator.config(), s.dim(), batch)?,
            None => 1,
        };
        let target = target.unwrap_or(prep.norm);
        let padded: Vec<_> = prep
            .slices
            .iter()
            .map(|s| pad_to_multiple_of_4(&s.view(), prep.fill))
            .collect();
        let mut outputs = Vec::with_capacity(padded.len());
        for chunk in padded.chunks(batch) {
            let (h, w) = chunk[0].dim();
            let buf: Vec<f32> = chunk.iter().flat_map(|s| s.iter().copied()).collect();
            let x = Tensor::from_slice(&buf)
                .view([chunk.len() as i64, 1, h as i64, w as i64])
                .to_device(self.device);
            let y = tch::no_grad(|| self.generator.forward(&x, pass))
                .to_kind(Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            let flat =
                Vec::<f32>::try_from(y.flatten(0, -1)).context("reading the generator's output")?;
            for i in 0..chunk.len() {
                outputs.push(ndarray::Array2::from_shape_vec(
                    (h, w),
                    flat[i * h * w..(i + 1) * h * w].to_vec(),
                )?);
            }
            progress(chunk.len());
        }
        Ok(restore(&outputs, &prep, &target))
    }
}
