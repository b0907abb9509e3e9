//! What the cross-crate tests share: the real command lines of `trainer` and `firmware-sim`,
//! run in-process (their `Cli` parsed from the arguments, then run).

use clap::Parser;

/// `trainer ARGS`, in-process.
pub fn trainer(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("trainer").chain(args.iter().copied());
    dicyc_trainer::cli::Cli::try_parse_from(argv)?.run()
}

/// `firmware-sim ARGS`, in-process.
pub fn firmware(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("firmware-sim").chain(args.iter().copied());
    dicyc_firmware_sim::cli::Cli::try_parse_from(argv)?.run()
}
