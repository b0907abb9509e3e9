//! The `firmware-sim` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::inspect::Inspection;

/// Simulates the scanner-attached device that runs the dicyc generator.
#[derive(Debug, Parser)]
#[command(name = "firmware-sim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a weight file and print its header, configuration, tensor table and
    /// checksums; exits non-zero with the exact error for a bad file.
    Inspect {
        /// The weight file.
        file: PathBuf,
        /// Print JSON instead of the human-readable report.
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Inspect { file, json } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read weight file {}", file.display()))?;
                let inspection = Inspection::of(&bytes).with_context(|| {
                    format!("{} is not a valid dicyc weight file", file.display())
                })?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&inspection)?);
                } else {
                    print!("{inspection}");
                }
                Ok(())
            }
        }
    }
}
