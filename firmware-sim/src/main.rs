//! The `firmware-sim` binary: see `firmware-sim --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match dicyc_firmware_sim::cli::Cli::parse().run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("firmware-sim: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
