//! Helpers shared by the trainer's integration tests (each test file is its own crate and
//! pulls this in with `mod common;`).
//!
//! Not every test file uses every helper, hence the crate-level `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;

use clap::Parser;
use dicyc_trainer::cli::Cli;
use dicyc_trainer::model::{DiscriminatorConfig, GeneratorConfig, OffsetSite};
use dicyc_trainer::train::config::{DataConfig, SyntheticConfig};
use dicyc_trainer::train::{ModelKind, TrainConfig};

/// Runs `trainer <args>` in-process, through the same clap parser as the binary, so a test
/// exercises exactly what a user types; a parse error comes back as an `Err` too.
pub fn trainer(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("trainer").chain(args.iter().copied());
    Cli::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .run()
}

/// A test path as a command-line argument (test folders are always UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// A tiny run of `model` that trains in seconds: ngf 4, one block, offset layers at every
/// site, a 4-filter PatchGAN, 8 synthetic 32×32 slices, 2 epochs of 3 steps (one of them
/// in decay), pools of 2, on the CPU.
pub fn tiny_train_config(model: ModelKind) -> TrainConfig {
    let mut c = TrainConfig::small();
    c.model = model;
    c.generator = GeneratorConfig {
        ngf: 4,
        n_blocks: 1,
        offset_layers: OffsetSite::ALL.to_vec(),
        ..c.generator
    };
    c.discriminator = DiscriminatorConfig {
        ndf: 4,
        n_layers: 3,
    };
    c.data = DataConfig::Synthetic(SyntheticConfig {
        size: 32,
        slices: 8,
        deformation: 2.0,
        seed: 3,
    });
    c.schedule.epochs = 2;
    c.schedule.epochs_decay = 1;
    c.schedule.steps_per_epoch = 3;
    c.pool_size = 2;
    c.output.samples = 2;
    c.device = dicyc_trainer::device::DeviceChoice::Cpu;
    c
}
