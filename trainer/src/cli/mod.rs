//! The `trainer` command line: one subcommand per job, each in its own module.

use clap::{Parser, Subcommand};

pub mod smoke;

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
        }
    }
}
