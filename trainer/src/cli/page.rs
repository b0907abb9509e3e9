//! `trainer page --run DIR`: rebuilds a run's `index.html` from the files in it (e.g. for a
//! run trained before runs had pages, or copied from elsewhere).

use std::path::PathBuf;

use clap::Args;

use crate::train::run_page;

/// `trainer page` arguments.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
}

/// Runs `trainer page`.
pub fn run(a: &PageArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.run.join("config.toml").is_file(),
        "{} holds no run (no config.toml)",
        a.run.display()
    );
    let page = run_page::write(&a.run)?;
    println!("{}", page.display());
    Ok(())
}
