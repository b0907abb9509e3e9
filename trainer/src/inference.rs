//! A trained generator on whole volumes, in memory: loading `g_ab`/`g_ba` from a run's
//! checkpoint and synthesising a volume slice-batch by slice-batch with the training
//! preprocessing. `trainer synth --run`, `trainer export` and `trainer study` share it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ndarray::Array3;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::preprocess::{
    pad_to_multiple_of_4, padded_shape, prepare, restore, PreprocessOptions,
};
use crate::data::Volume;
use crate::model::generator::{Generator, Pass};
use crate::train::TrainConfig;
use dicyc_volume::preprocess::Normalization;

/// Smallest slice side the generator runs on (after padding to a multiple of 4).
pub const MIN_SIDE: usize = 8;

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
        let prep = prepare(v, opts);
        // Two stride-2 down-samplings and the reflection paddings need at least 8 pixels a
        // side after padding to a multiple of 4 (libtorch would panic on less).
        if let Some(s) = prep.slices.first() {
            let (h, w) = s.dim();
            let (ph, pw) = padded_shape((h, w));
            anyhow::ensure!(
                ph >= MIN_SIDE && pw >= MIN_SIDE,
                "its axial slices are {h}×{w} voxels at the working spacing: the generator needs \
                 at least {MIN_SIDE}×{MIN_SIDE} (pad or resample the volume first)"
            );
        }
        let target = target.unwrap_or(prep.norm);
        let padded: Vec<_> = prep
            .slices
            .iter()
            .map(|s| pad_to_multiple_of_4(&s.view(), prep.fill))
            .collect();
        let mut outputs = Vec::with_capacity(padded.len());
        for chunk in padded.chunks(batch.max(1)) {
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
