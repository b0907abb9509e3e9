//! The `trainer` command line: one subcommand per job, each in its own module.

use clap::{Parser, Subcommand};

pub mod data;
pub mod eval;
pub mod export;
pub mod page;
pub mod smoke;
pub mod study;
pub mod synth;
pub mod train;

/// Trains and evaluates DicycleGAN / CycleGAN and exports weights for the edge core.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what libtorch offers on this machine (version, CUDA, threads).
    Info,
    /// One Adam step of a tiny offset layer (conv + grid_sampler_2d): proves libtorch works.
    Smoke(smoke::SmokeArgs),
    /// Train DicycleGAN (or --model cyclegan) into a run directory, or --resume one.
    Train(train::TrainArgs),
    /// Build data sets: the simulated IXI-like benchmark, the deformation experiment.
    Data(data::DataArgs),
    /// Metrics (MSE, PSNR, SSIM) of synthesized volumes against ground truths: paper-style table.
    Eval(eval::EvalArgs),
    /// Synthesize NIfTI volumes with a trained generator (either direction, either pass).
    Synth(synth::SynthArgs),
    /// Quantize a checkpoint into the core's weight files (fp16) and write golden bundles.
    Export(export::ExportArgs),
    /// The paper's experiment grid (variants × settings × seeds), resumable and parallel,
    /// with the results page.
    Study(study::StudyArgs),
    /// Rebuild a run directory's page (index.html) from its files; `trainer train` and
    /// `trainer eval --run` keep it up to date on their own.
    Page(page::PageArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Info => {
                println!("{}", crate::device::describe());
                Ok(())
            }
            Command::Smoke(args) => smoke::run(&args).map(|report| println!("{report}")),
            Command::Train(args) => train::run(&args)
                .map(|(dir, summary)| println!("{}", train::describe(&dir, &summary))),
            Command::Data(args) => data::run(&args),
            Command::Eval(args) => eval::run(&args),
            Command::Synth(args) => synth::run(&args),
            Command::Export(args) => export::run(&args),
            Command::Study(args) => study::run(&args),
            Command::Page(args) => page::run(&args),
        }
    }
}
