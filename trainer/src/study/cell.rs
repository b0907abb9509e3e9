//! One cell of a study: train to each evaluation point in turn (resuming the cell's run from
//! its latest checkpoint), evaluate there, record `eval-<step>.json`.
//!
//! ```text
//! cells/<cell>/config.toml         the cell's training configuration
//! cells/<cell>/run/                its run directory (checkpoints, logs, plots; not committed)
//! cells/<cell>/eval-<step>.json    the evaluation at each point (small; committed)
//! cells/<cell>/failed.json         why the last attempt failed (removed when it succeeds)
//! cells/<cell>/log.txt             the cell process's output
//! cells/<cell>/taken-from.txt      the study that trained it, when `--undeformed-from` took it
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::evaluate::{evaluate_checkpoint, EvalRecord};
use super::plan::{cell_config, data_dir, Cell, StudyPlan};
use crate::cli::train::{run as train, TrainArgs};
use crate::train::checkpoint::{Checkpoints, RunState};
use dicyc_volume::atomic::write_atomic;

/// `cells/<cell>` of a study.
pub fn cell_dir(study: &Path, cell: &Cell) -> PathBuf {
    study.join("cells").join(cell.name())
}

/// Names the study directory a cell's records were taken from (`--undeformed-from`).
pub const TAKEN_FROM: &str = "taken-from.txt";

/// `eval-<step>.json` of a cell folder.
pub fn eval_path(cell_dir: &Path, step: u64) -> PathBuf {
    cell_dir.join(format!("eval-{step:09}.json"))
}

/// Reads a cell's evaluation at `step`, if it was recorded.
pub fn load_eval(cell_dir: &Path, step: u64) -> Result<Option<EvalRecord>> {
    let path = eval_path(cell_dir, step);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a study evaluation record", path.display()))
}

/// Whether every evaluation point of the cell is recorded.
pub fn is_done(study: &Path, plan: &StudyPlan, cell: &Cell) -> bool {
    let dir = cell_dir(study, cell);
    plan.spec
        .points
        .iter()
        .all(|&p| eval_path(&dir, p).exists())
}

/// Runs the cell to completion (the points already recorded are skipped).
pub fn run_cell(study: &Path, plan: &StudyPlan, cell: &Cell) -> Result<()> {
    let dir = cell_dir(study, cell);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    tch::set_num_threads(1);
    let config = cell_config(&plan.spec, cell, study)?;
    let config_path = dir.join("config.toml");
    write_atomic(&config_path, config.to_toml()?.as_bytes())?;
    let run = dir.join("run");
    for &point in &plan.spec.points {
        if eval_path(&dir, point).exists() {
            continue;
        }
        let checkpoint = train_to(&run, &config_path, point)
            .with_context(|| format!("training cell {} to step {point}", cell.name()))?;
        let record = evaluate_checkpoint(
            &run,
            &checkpoint,
            point,
            &data_dir(study, cell.setting),
            cell.setting,
        )
        .with_context(|| format!("evaluating cell {} at step {point}", cell.name()))?;
        write_atomic(
            &eval_path(&dir, point),
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )?;
        eprintln!(
            "cell {}: step {point} evaluated in {:.1} s",
            cell.name(),
            record.seconds
        );
    }
    let _ = std::fs::remove_file(dir.join("failed.json"));
    Ok(())
}

/// The global step of a checkpoint folder (its `state.json`).
fn checkpoint_step(checkpoint: &Path) -> Result<u64> {
    let path = checkpoint.join("state.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: RunState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(state.global_step)
}

/// Brings the run to exactly `point` steps and returns the checkpoint there: a new run from
/// `config` when none has a checkpoint yet (a run killed before its first checkpoint is
/// started again), otherwise a resume of the latest checkpoint.
fn train_to(run: &Path, config: &Path, point: u64) -> Result<PathBuf> {
    let latest = if run.join("config.toml").exists() {
        Checkpoints::new(run)?.latest()?
    } else {
        None
    };
    match latest {
        Some(latest) => {
            let step = checkpoint_step(&latest)?;
            if step == point {
                return Ok(latest);
            }
            if step > point {
                let at = run.join("checkpoints").join(format!("step-{point:09}"));
                if at.is_dir() {
                    return Ok(at);
                }
                bail!(
                    "{} is at step {step}, past the evaluation point {point}, and holds no checkpoint \
                     at {point}: delete {} to train this cell again",
                    run.display(),
                    run.display()
                );
            }
            train(&TrainArgs {
                resume: Some(run.to_path_buf()),
                max_steps: Some(point),
                quiet: true,
                ..TrainArgs::default()
            })?;
        }
        None => {
            if run.exists() {
                std::fs::remove_dir_all(run).with_context(|| {
                    format!("removing {} (a run with no checkpoint yet)", run.display())
                })?;
            }
            train(&TrainArgs {
                config: Some(config.to_path_buf()),
                run_dir: Some(run.to_path_buf()),
                max_steps: Some(point),
                quiet: true,
                ..TrainArgs::default()
            })?;
        }
    }
    let latest = Checkpoints::new(run)?
        .latest()?
        .with_context(|| format!("{} wrote no checkpoint", run.display()))?;
    let step = checkpoint_step(&latest)?;
    anyhow::ensure!(
        step == point,
        "{} stopped at step {step}, not at the evaluation point {point}",
        run.display()
    );
    Ok(latest)
}
