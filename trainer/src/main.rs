//! The `trainer` binary: see `trainer --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    dicyc_trainer::cli::Cli::parse().run()
}
