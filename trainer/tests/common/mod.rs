//! Helpers shared by the trainer's integration tests (each test file is its own crate and
//! pulls this in with `mod common;`).

use std::path::Path;

use clap::Parser;
use dicyc_trainer::cli::Cli;

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
