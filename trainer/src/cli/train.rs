//! `trainer train`: trains DicycleGAN (or `--model cyclegan`) into a run directory, or
//! continues one with `--resume`.
//!
//! The configuration is resolved as: `--config FILE` (a full TOML, e.g. a previous run's
//! `config.toml`) or `--preset` (default `paper`), then the command-line overrides; it is
//! saved as `config.toml` in the run directory.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::data::sampling::DataStats;
use crate::data::{NiftiSlices, PreprocessOptions};
use crate::device::DeviceChoice;
use crate::model::OffsetForm;
use crate::source::UnpairedSlices;
use crate::train::checkpoint::{recorded_config, Checkpoints, CHECKPOINT_CONFIG};
use crate::train::config::{DataConfig, SyntheticConfig};
use crate::train::{
    ModelKind, Preset, RunDir, RunLock, RunSummary, SyntheticSlices, TrainConfig, Trainer,
};
use dicyc_volume::atomic::write_atomic;

/// Where the training slices come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DataChoice {
    /// Generated blobs with a domain-specific deformation (no download needed).
    Synthetic,
}

/// Options of `trainer train`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainArgs {
    /// A full configuration file (TOML; e.g. a previous run's config.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Start from a preset: `paper` (ngf 64, 9 blocks, 4 offset layers) or `small` (CPU, minutes).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// DicycleGAN or the CycleGAN baseline.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Run directory to create (default: runs/<model>-<unix time>).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint (its config.toml is used; only
    /// --epochs, --epochs-decay, --max-steps, --device, --threads, --checkpoint-every,
    /// --keep-checkpoints and --early-stop may change; an edit of config.toml that changes
    /// anything else since the checkpoint is refused). A run stopped before its first
    /// checkpoint starts over from step 0.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Where to compute.
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Epochs at the fixed learning rate.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Epochs of linear decay.
    #[arg(long)]
    pub epochs_decay: Option<u32>,
    /// Optimisation steps per epoch (0 = one pass over the data).
    #[arg(long)]
    pub steps_per_epoch: Option<u64>,
    /// Stop after this many steps in total (0 = no limit).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Checkpoint every N steps as well as at epoch ends.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// How many of the newest checkpoints to keep (at least 1).
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// The paper's early-stop rule (`true`/`false`): `false` runs exactly `--epochs` +
    /// `--epochs-decay` epochs, e.g. to give two models the same number of steps.
    #[arg(long, value_name = "BOOL")]
    pub early_stop: Option<bool>,
    /// Slices per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of initialisation and of all host randomness.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Initial learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Generator base width.
    #[arg(long)]
    pub ngf: Option<i64>,
    /// Residual blocks.
    #[arg(long)]
    pub blocks: Option<i64>,
    /// Which offset layers (comma-separated: input,down1,down2,block0; `none` for none;
    /// default: all four).
    #[arg(long, value_delimiter = ',', value_name = "SITES")]
    pub offset_layers: Option<Vec<String>>,
    /// The offset layers' fields: `per-channel` (one per feature channel) or `shared` (one
    /// per layer for all channels: it can only move features, not re-colour them).
    #[arg(long, value_name = "FORM", value_parser = parse_offset_form)]
    pub offset_form: Option<OffsetForm>,
    /// Data source (`synthetic`; NIfTI data is chosen with --data-a/--data-b).
    #[arg(long, value_enum, conflicts_with_all = ["data_a", "data_b"])]
    pub data: Option<DataChoice>,
    /// Domain A: a folder (or list file) of NIfTI volumes.
    #[arg(long, value_name = "DIR", requires = "data_b")]
    pub data_a: Option<PathBuf>,
    /// Domain B: a folder (or list file) of NIfTI volumes.
    #[arg(long, value_name = "DIR", requires = "data_a")]
    pub data_b: Option<PathBuf>,
    /// Training slice side (synthetic data, or the NIfTI crop/pad size).
    #[arg(long)]
    pub size: Option<i64>,
    /// libtorch CPU threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<u32>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `--offset-form`'s parser (clap wants a `String` error).
fn parse_offset_form(name: &str) -> Result<OffsetForm, String> {
    crate::model::generator::parse_form(name).map_err(|err| err.to_string())
}

impl TrainArgs {
    /// The configuration of a new run: base (file or preset) plus overrides.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut config = match &self.config {
            Some(path) => TrainConfig::load(path)?,
            None => TrainConfig::preset(self.preset.unwrap_or(Preset::Paper)),
        };
        if let Some(v) = self.model {
            config.model = v;
        }
        if let Some(v) = self.batch_size {
            config.batch_size = v;
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.lr {
            config.optim.lr = v;
        }
        if let Some(v) = self.ngf {
            config.generator.ngf = v;
        }
        if let Some(v) = self.blocks {
            config.generator.n_blocks = v;
        }
        if let Some(v) = self.steps_per_epoch {
            config.schedule.steps_per_epoch = v;
        }
        if let Some(sites) = &self.offset_layers {
            config.generator.offset_layers = sites
                .iter()
                .filter(|s| s.as_str() != "none" && !s.is_empty())
                .map(|s| crate::model::generator::parse_site(s))
                .collect::<anyhow::Result<_>>()
                .context("--offset-layers")?;
        }
        if let Some(form) = self.offset_form {
            config.generator.offset_form = form;
        }
        if let Some(DataChoice::Synthetic) = self.data {
            if !matches!(config.data, DataConfig::Synthetic(_)) {
                config.data = DataConfig::Synthetic(SyntheticConfig::default());
            }
        }
        if let (Some(a), Some(b)) = (&self.data_a, &self.data_b) {
            let preprocess = match &config.data {
                DataConfig::Nifti { preprocess, .. } => preprocess.clone(),
                DataConfig::Synthetic(s) => {
                    let side = s.size.max(0) as usize;
                    PreprocessOptions {
                        size: (side, side),
                        ..PreprocessOptions::default()
                    }
                }
            };
            config.data = DataConfig::Nifti {
                a: a.clone(),
                b: b.clone(),
                preprocess,
            };
        }
        if let Some(size) = self.size {
            match &mut config.data {
                DataConfig::Synthetic(s) => s.size = size,
                DataConfig::Nifti { preprocess, .. } => {
                    preprocess.size = (size.max(0) as usize, size.max(0) as usize)
                }
            }
        }
        self.apply_resumable(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// The overrides a resumed run accepts.
    fn apply_resumable(&self, config: &mut TrainConfig) {
        if let Some(v) = self.device {
            config.device = v;
        }
        if let Some(v) = self.threads {
            config.threads = v;
        }
        if let Some(v) = self.epochs {
            config.schedule.epochs = v;
        }
        if let Some(v) = self.epochs_decay {
            config.schedule.epochs_decay = v;
        }
        if let Some(v) = self.max_steps {
            config.max_steps = v;
        }
        if let Some(v) = self.checkpoint_every {
            config.output.checkpoint_every = v;
        }
        if let Some(v) = self.keep_checkpoints {
            config.output.keep_checkpoints = v;
        }
        if let Some(v) = self.early_stop {
            config.schedule.early_stop = v;
        }
    }

    fn check_resume_overrides(&self) -> anyhow::Result<()> {
        let fixed = [
            ("--config", self.config.is_some()),
            ("--preset", self.preset.is_some()),
            ("--model", self.model.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--seed", self.seed.is_some()),
            ("--lr", self.lr.is_some()),
            ("--ngf", self.ngf.is_some()),
            ("--blocks", self.blocks.is_some()),
            ("--offset-layers", self.offset_layers.is_some()),
            ("--offset-form", self.offset_form.is_some()),
            ("--steps-per-epoch", self.steps_per_epoch.is_some()),
            ("--data", self.data.is_some()),
            ("--data-a", self.data_a.is_some()),
            ("--data-b", self.data_b.is_some()),
            ("--size", self.size.is_some()),
        ];
        for (flag, given) in fixed {
            anyhow::ensure!(
                !given,
                "{flag} cannot change when resuming (it would not continue the same run); edit a copy of the \
                 run's config.toml and start a new run with --config instead"
            );
        }
        Ok(())
    }
}

/// Builds the data source the configuration names, with the domains' intensity maps for
/// NIfTI data (saved as `data-stats.json` in the run directory, used by `trainer synth`).
pub fn open_source(
    config: &TrainConfig,
) -> anyhow::Result<(Box<dyn UnpairedSlices>, Option<DataStats>)> {
    match &config.data {
        DataConfig::Synthetic(s) => Ok((Box::new(SyntheticSlices::new(s)?), None)),
        DataConfig::Nifti { a, b, preprocess } => {
            let slices =
                NiftiSlices::open(a, b, preprocess).context("opening the training data")?;
            let stats = slices.stats();
            Ok((Box::new(slices), Some(stats)))
        }
    }
}

fn default_run_dir(model: ModelKind) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = match model {
        ModelKind::Dicyclegan => "dicyclegan",
        ModelKind::Cyclegan => "cyclegan",
    };
    PathBuf::from("runs").join(format!("{name}-{secs}"))
}

/// Runs `trainer train`; returns the run directory and what the run did.
pub fn run(args: &TrainArgs) -> anyhow::Result<(PathBuf, RunSummary)> {
    // Everything that can fail on bad input (configuration, data, shapes) is checked before
    // a new run directory is created.
    let (dir, mut trainer, mut source, stats, mut run_dir) = match &args.resume {
        Some(dir) => {
            let (trainer, run_dir, changed) = resume(args, dir)?;
            let (source, stats) = open_source(&trainer.config)?;
            trainer.check_source(source.as_ref())?;
            trainer.check_pools(source.as_ref())?;
            // Only a resume that will really run records its new overrides.
            if changed {
                write_atomic(
                    &dir.join("config.toml"),
                    trainer.config.to_toml()?.as_bytes(),
                )?;
            }
            (dir.clone(), trainer, source, stats, run_dir)
        }
        None => {
            let mut config = args.resolve()?;
            // Recorded absolute, so that a resume from another working directory reads the
            // same data, not whatever lies under the same relative path there.
            if let DataConfig::Nifti { a, b, .. } = &mut config.data {
                for p in [a, b] {
                    *p = std::path::absolute(&*p)
                        .with_context(|| format!("resolving the data path {}", p.display()))?;
                }
            }
            let device = config.device.resolve()?;
            let dir = args
                .run_dir
                .clone()
                .unwrap_or_else(|| default_run_dir(config.model));
            let (source, stats) = open_source(&config)?;
            let trainer = Trainer::new(config, device)?;
            trainer.check_source(source.as_ref())?;
            let run_dir = RunDir::create(&dir, &trainer.config)?;
            (dir, trainer, source, stats, run_dir)
        }
    };
    if trainer.config.threads > 0 {
        tch::set_num_threads(trainer.config.threads as i32);
    }
    if let Some(stats) = stats {
        stats.save(&dir.join("data-stats.json"))?;
    }
    if !args.quiet {
        eprintln!(
            "training {:?} on {:?} into {} (step {}, epoch {})",
            trainer.config.model,
            trainer.device,
            dir.display(),
            trainer.state.global_step,
            trainer.state.epoch
        );
    }
    let summary = trainer.run(source.as_mut(), &mut run_dir, !args.quiet)?;
    Ok((dir, summary))
}

/// Loads the run in `dir` with the resumable overrides applied and its latest checkpoint;
/// also says whether the overrides changed the configuration (the caller saves it once the
/// data has been checked too, so a resume that fails leaves `config.toml` as it was).
///
/// The directory is locked first (another process training into it is refused), and
/// `config.toml` is checked against the configuration the checkpoint was trained with: a
/// change outside [`RESUMABLE_FIELDS`](crate::train::config::RESUMABLE_FIELDS) is refused,
/// naming each field. A run with no checkpoint yet (stopped before its first one) starts over
/// from step 0 with its `config.toml`, saying so.
fn resume(args: &TrainArgs, dir: &Path) -> anyhow::Result<(Trainer, RunDir, bool)> {
    args.check_resume_overrides()?;
    let config_path = dir.join("config.toml");
    anyhow::ensure!(
        config_path.exists(),
        "--resume {}: no config.toml there (not a run directory)",
        dir.display()
    );
    let lock = RunLock::acquire(dir)?;
    let mut config = TrainConfig::load(&config_path)?;
    let before = config.clone();
    args.apply_resumable(&mut config);
    config.validate()?;
    let changed = config != before;
    let latest = Checkpoints::new(dir)?.latest()?;
    if let Some(latest) = &latest {
        check_recorded_config(&config_path, latest, &config)?;
    }
    let device = config.device.resolve()?;
    let mut trainer = Trainer::new(config, device)?;
    match &latest {
        Some(latest) => trainer
            .load_checkpoint(latest)
            .with_context(|| format!("resuming from {}", latest.display()))?,
        None => eprintln!(
            "--resume {}: the run has no checkpoint yet (it was stopped before its first one): \
             starting it over from step 0 with its config.toml",
            dir.display()
        ),
    }
    let run_dir = RunDir::open_locked(lock, trainer.state.global_step)?;
    Ok((trainer, run_dir, changed))
}

/// Refuses a resume whose configuration (`config.toml` plus the resumable flags) differs from
/// the one the checkpoint was trained with in a field that cannot change, listing each.
fn check_recorded_config(
    config_path: &Path,
    checkpoint: &Path,
    config: &TrainConfig,
) -> anyhow::Result<()> {
    let Some(recorded) = recorded_config(checkpoint)? else {
        eprintln!(
            "note: {} records no configuration (it was written by an older trainer), so {} cannot \
             be checked against it; resuming with {} as it is",
            checkpoint.display(),
            config_path.display(),
            config_path.display()
        );
        return Ok(());
    };
    let changes = config.fixed_differences(&recorded)?;
    if changes.is_empty() {
        return Ok(());
    }
    let list: String = changes
        .iter()
        .map(|c| {
            format!(
                "\n  {}: {} (checkpoint) -> {} (config.toml)",
                c.key, c.before, c.after
            )
        })
        .collect();
    anyhow::bail!(
        "cannot resume: {} differs from the configuration its checkpoint {} was trained with, in \
         fields a resume cannot change (it would not continue the same run):{list}\n\
         Put them back as they were in {} (the checkpoint's own copy is {}), or start a new run \
         from the edited file: trainer train --config {} --run-dir NEW_DIR",
        config_path.display(),
        checkpoint.display(),
        config_path.display(),
        checkpoint.join(CHECKPOINT_CONFIG).display(),
        config_path.display()
    )
}

/// One line describing a finished call.
pub fn describe(dir: &Path, summary: &RunSummary) -> String {
    let last = summary
        .last
        .map(|l| {
            format!(
                ", last G loss {:.4}, D {:.4}/{:.4}",
                l.g_total, l.d_a, l.d_b
            )
        })
        .unwrap_or_default();
    format!(
        "{:?} after step {} ({} steps this call, {:.2} steps/s{last}); run directory {}, checkpoint {}",
        summary.reason,
        summary.global_step,
        summary.steps_this_call,
        summary.steps_per_second(),
        dir.display(),
        summary.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into())
    )
}
