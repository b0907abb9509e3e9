//! The full training configuration: one TOML file (`config.toml` in every run directory,
//! re-usable with `--config`). Every [ours] choice of docs/DESIGN.md §2 is a field here, with the
//! default given there; [`TrainConfig::paper`] and [`TrainConfig::small`] are the presets.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::data::PreprocessOptions;
use crate::device::DeviceChoice;
use crate::loss::NmiConfig;
use crate::model::{DiscriminatorConfig, GeneratorConfig, InitConfig};

/// DicycleGAN or the CycleGAN baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Offset layers, deformed + undeformed passes, NMI alignment and dicyc losses.
    #[default]
    Dicyclegan,
    /// The plain baseline: no offset layers, CycleGAN losses only.
    Cyclegan,
}

/// Named starting points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The paper: ngf 64, 9 blocks, 4 offset layers, 128×128, 100 + 100 epochs.
    Paper,
    /// Trains a visible result on 2 CPU cores in minutes (synthetic data, 32×32, ngf 8).
    Small,
}

/// Loss weights (docs/DESIGN.md §2.5 defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the GAN loss (on the deformed outputs).
    pub gan: f64,
    /// λ_cyc: undeformed cycle loss.
    pub cycle: f64,
    /// λ_dicyc: deformation-invariant cycle loss (DicycleGAN only).
    pub dicycle: f64,
    /// λ_A: NMI alignment loss on the undeformed outputs (DicycleGAN only).
    pub alignment: f64,
    /// λ_idt, CycleGAN's convention: the identity L1 is weighted `identity · cycle`
    /// (0 = off; CycleGAN used 0.5). Needs in_channels == out_channels.
    pub identity: f64,
    /// [ours] Weight of a GAN loss on the *undeformed* outputs as well (DicycleGAN only;
    /// 0 = off, the paper's form). Without it only the deformed pass is asked to look like
    /// the target domain, so the offset layers may carry part of the appearance mapping.
    pub gan_undeformed: f64,
    /// [ours] Weight of the mean squared offset (feature-map pixels², every offset layer,
    /// both generators, deformed pass; 0 = off): keeps displacements small.
    pub offset_magnitude: f64,
    /// [ours] Weight of the offsets' roughness: mean squared difference between neighbouring
    /// pixels' offsets (0 = off): favours smooth displacement fields.
    pub offset_smoothness: f64,
    /// The Parzen-window NMI.
    pub nmi: NmiConfig,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            gan: 1.0,
            cycle: 10.0,
            dicycle: 10.0,
            alignment: 0.9,
            identity: 0.0,
            gan_undeformed: 0.0,
            offset_magnitude: 0.0,
            offset_smoothness: 0.0,
            nmi: NmiConfig::default(),
        }
    }
}

/// Adam settings (CycleGAN / docs/DESIGN.md §2.6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Initial learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The learning-rate schedule and early stop (docs/DESIGN.md §2.6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Epochs at the fixed learning rate (at most; early stop may end the stage sooner).
    pub epochs: u32,
    /// Epochs of linear decay to 0 after that.
    pub epochs_decay: u32,
    /// Whether the paper's early-stop rule applies.
    pub early_stop: bool,
    /// Fixed stage: move to the decay stage after this many epochs without a new best
    /// total generator loss.
    pub patience: u32,
    /// Decay stage: stop after this many epochs without a new best.
    pub patience_decay: u32,
    /// Optimisation steps per epoch; 0 = the data source's slices per epoch ÷ batch size.
    pub steps_per_epoch: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            epochs: 100,
            epochs_decay: 100,
            early_stop: true,
            patience: 10,
            patience_decay: 20,
            steps_per_epoch: 0,
        }
    }
}

/// Where the slices come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataConfig {
    /// Generated blobs (domain A) and their intensity-remapped, deformed versions (domain B).
    Synthetic(SyntheticConfig),
    /// Two folders (or list files) of NIfTI volumes, read by the data pipeline
    /// ([`crate::data::NiftiSlices`]).
    Nifti {
        /// Domain A volumes.
        a: PathBuf,
        /// Domain B volumes.
        b: PathBuf,
        /// Resampling, slice size, normalisation and augmentation.
        #[serde(default)]
        preprocess: PreprocessOptions,
    },
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic(SyntheticConfig::default())
    }
}

/// Settings of the synthetic source (see [`super::synthetic`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Slice side in pixels (a multiple of 4).
    pub size: i64,
    /// Number of slices generated per domain.
    pub slices: usize,
    /// Peak displacement of domain B's fixed deformation, in pixels.
    pub deformation: f64,
    /// Seed of the generated images and of the deformation field.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            size: 32,
            slices: 256,
            deformation: 3.0,
            seed: 1,
        }
    }
}

/// Output of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Write a checkpoint every this many steps as well as at each epoch's end (0 = only at
    /// epoch ends).
    pub checkpoint_every: u64,
    /// Number of slices per domain in the sample grids.
    pub samples: i64,
    /// Write the sample grid and loss curves every this many epochs (0 = never).
    pub plot_every: u32,
    /// Checkpoints kept (the newest ones); at least 1.
    pub keep_checkpoints: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            checkpoint_every: 0,
            samples: 4,
            plot_every: 1,
            keep_checkpoints: 2,
        }
    }
}

/// Most libtorch CPU threads a run may ask for: beyond any machine's cores (libtorch aborts
/// on a stack overflow when asked for ~100 000).
pub const MAX_THREADS: u32 = 1024;

/// Everything a run needs, saved as `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// DicycleGAN or CycleGAN.
    pub model: ModelKind,
    /// Seed of tch's initialisation and of the host RNG (pool, data draws).
    pub seed: u64,
    /// Where to compute.
    pub device: DeviceChoice,
    /// libtorch CPU threads (0 = libtorch's default, one per core). Tiny models run faster
    /// on 1 thread, especially on a shared machine (OpenMP threads spin while they wait).
    /// Results on the CPU are reproducible for a fixed thread count.
    pub threads: u32,
    /// Slices per optimisation step.
    pub batch_size: usize,
    /// Image pool size per domain (0 = no pool).
    pub pool_size: usize,
    /// Stop after this many optimisation steps in total (0 = no limit): for short runs.
    pub max_steps: u64,
    /// Generator shape (offset layers are dropped for `cyclegan`).
    pub generator: GeneratorConfig,
    /// Discriminator shape.
    pub discriminator: DiscriminatorConfig,
    /// Weight initialisation.
    pub init: InitConfig,
    /// Loss weights.
    pub loss: LossConfig,
    /// Adam.
    pub optim: OptimConfig,
    /// Learning-rate schedule and early stop.
    pub schedule: ScheduleConfig,
    /// Data source.
    pub data: DataConfig,
    /// Checkpoints, plots.
    pub output: OutputConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::paper()
    }
}

/// The fields a resumed run may change (dotted TOML keys; a table stands for every field in
/// it): where it computes, how long it goes on (the schedule's length and early-stop rule) and
/// what it writes (checkpoints, sample grids, plots). Everything else decides what a step
/// computes from the checkpointed state, so a resume refuses a change to it
/// ([`TrainConfig::fixed_differences`]).
pub const RESUMABLE_FIELDS: [&str; 9] = [
    "device",
    "threads",
    "max_steps",
    "schedule.epochs",
    "schedule.epochs_decay",
    "schedule.early_stop",
    "schedule.patience",
    "schedule.patience_decay",
    "output",
];

/// One field in which two configurations differ: its dotted key and both values as TOML
/// (`(absent)` where a configuration has no such field, e.g. another data kind's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    /// Dotted key, e.g. `optim.lr`.
    pub key: String,
    /// The value in the configuration compared against (the recorded one).
    pub before: String,
    /// The value in this configuration.
    pub after: String,
}

/// Every leaf of a TOML value as `(dotted key, value)`; arrays are leaves.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

impl TrainConfig {
    /// The configuration's fields as `dotted key → TOML value`.
    fn fields(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let value = toml::Value::try_from(self).context("serialising the configuration to TOML")?;
        let mut out = std::collections::BTreeMap::new();
        flatten("", &value, &mut out);
        Ok(out)
    }

    /// The fields outside [`RESUMABLE_FIELDS`] in which this configuration differs from
    /// `recorded` (the one a checkpoint was trained with), in key order: what a resume must
    /// refuse.
    pub fn fixed_differences(&self, recorded: &TrainConfig) -> anyhow::Result<Vec<FieldChange>> {
        let resumable = |key: &str| {
            RESUMABLE_FIELDS.iter().any(|f| {
                key == *f
                    || key
                        .strip_prefix(f)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        let (before, after) = (recorded.fields()?, self.fields()?);
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let absent = || "(absent)".to_string();
        Ok(keys
            .into_iter()
            .filter(|k| !resumable(k))
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| FieldChange {
                key: k.clone(),
                before: before.get(k).cloned().unwrap_or_else(absent),
                after: after.get(k).cloned().unwrap_or_else(absent),
            })
            .collect())
    }

    /// The paper's setting (docs/DESIGN.md §2), on synthetic 128×128 data until real data is given.
    pub fn paper() -> TrainConfig {
        TrainConfig {
            model: ModelKind::Dicyclegan,
            seed: 0,
            device: DeviceChoice::Auto,
            threads: 0,
            batch_size: 1,
            pool_size: 50,
            max_steps: 0,
            generator: GeneratorConfig::default(),
            discriminator: DiscriminatorConfig::default(),
            init: InitConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            data: DataConfig::Synthetic(SyntheticConfig {
                size: 128,
                ..SyntheticConfig::default()
            }),
            output: OutputConfig::default(),
        }
    }

    /// Small and fast: a visible result on 2 CPU cores in minutes.
    pub fn small() -> TrainConfig {
        TrainConfig {
            generator: GeneratorConfig {
                ngf: 8,
                n_blocks: 2,
                ..GeneratorConfig::default()
            },
            discriminator: DiscriminatorConfig {
                ndf: 16,
                n_layers: 3,
            },
            threads: 1,
            optim: OptimConfig {
                lr: 1e-3,
                ..OptimConfig::default()
            },
            schedule: ScheduleConfig {
                epochs: 6,
                epochs_decay: 4,
                patience: 3,
                patience_decay: 3,
                steps_per_epoch: 100,
                ..ScheduleConfig::default()
            },
            data: DataConfig::Synthetic(SyntheticConfig {
                size: 32,
                slices: 256,
                deformation: 2.0,
                seed: 1,
            }),
            ..TrainConfig::paper()
        }
    }

    /// The preset's configuration.
    pub fn preset(preset: Preset) -> TrainConfig {
        match preset {
            Preset::Paper => TrainConfig::paper(),
            Preset::Small => TrainConfig::small(),
        }
    }

    /// Reads a TOML configuration (fields it omits take the paper defaults).
    pub fn load(path: &Path) -> anyhow::Result<TrainConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("parsing the configuration file {}", path.display()))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("serialising the configuration to TOML")
    }

    /// The generator actually built: `cyclegan` has no offset layers.
    pub fn effective_generator(&self) -> GeneratorConfig {
        match self.model {
            ModelKind::Dicyclegan => self.generator.clone(),
            ModelKind::Cyclegan => GeneratorConfig {
                offset_layers: Vec::new(),
                ..self.generator.clone()
            },
        }
    }

    /// The generator in the B → A direction (channels swapped).
    pub fn effective_generator_ba(&self) -> GeneratorConfig {
        let ab = self.effective_generator();
        GeneratorConfig {
            in_channels: ab.out_channels,
            out_channels: ab.in_channels,
            ..ab
        }
    }

    /// Checks everything that does not need the data, naming the bad field.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.generator
            .validate()
            .context("invalid [generator] configuration")?;
        self.loss
            .nmi
            .validate()
            .context("invalid [loss.nmi] configuration")?;
        anyhow::ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(
            self.threads <= MAX_THREADS,
            "threads = {} is more than {MAX_THREADS}: give at most one per core (0 = libtorch's \
             default, one per core)",
            self.threads
        );
        anyhow::ensure!(
            self.output.keep_checkpoints >= 1,
            "output.keep_checkpoints must be at least 1"
        );
        anyhow::ensure!(
            self.output.samples >= 1,
            "output.samples must be at least 1"
        );
        let o = &self.optim;
        anyhow::ensure!(
            o.lr > 0.0 && o.lr.is_finite(),
            "optim.lr must be positive, got {}",
            o.lr
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&o.beta1) && (0.0..1.0).contains(&o.beta2),
            "optim.beta1 and optim.beta2 must be in [0, 1), got {} and {}",
            o.beta1,
            o.beta2
        );
        anyhow::ensure!(o.eps > 0.0, "optim.eps must be positive, got {}", o.eps);
        let l = &self.loss;
        for (name, w) in [
            ("gan", l.gan),
            ("cycle", l.cycle),
            ("dicycle", l.dicycle),
            ("alignment", l.alignment),
            ("identity", l.identity),
            ("gan_undeformed", l.gan_undeformed),
            ("offset_magnitude", l.offset_magnitude),
            ("offset_smoothness", l.offset_smoothness),
        ] {
            anyhow::ensure!(
                w >= 0.0 && w.is_finite(),
                "loss.{name} must be a finite weight >= 0, got {w}"
            );
        }
        anyhow::ensure!(
            l.identity == 0.0 || self.generator.in_channels == self.generator.out_channels,
            "loss.identity needs in_channels == out_channels (got {} and {})",
            self.generator.in_channels,
            self.generator.out_channels
        );
        anyhow::ensure!(
            self.schedule.epochs + self.schedule.epochs_decay >= 1,
            "schedule.epochs + schedule.epochs_decay must be at least 1"
        );
        if let DataConfig::Synthetic(s) = &self.data {
            anyhow::ensure!(
                s.size >= 8 && s.size % 4 == 0,
                "data.size must be a multiple of 4 and at least 8, got {}",
                s.size
            );
            anyhow::ensure!(s.slices >= 1, "data.slices must be at least 1");
        }
        if let DataConfig::Nifti { preprocess, .. } = &self.data {
            let (h, w) = preprocess.size;
            anyhow::ensure!(
                h >= 8 && w >= 8 && h % 4 == 0 && w % 4 == 0,
                "data.preprocess.size must be multiples of 4 and at least 8, got {h}×{w}"
            );
        }
        Ok(())
    }
}
