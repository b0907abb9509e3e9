//! What a study runs: its scale (model size, crop, steps, evaluation points, data), the
//! DicycleGAN variants, the two settings and the cells of the grid.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::PreprocessOptions;
use crate::model::{DiscriminatorConfig, OffsetForm, OffsetSite};
use crate::train::config::{DataConfig, OutputConfig, ScheduleConfig};
use crate::train::{ModelKind, TrainConfig};

/// How big a study is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// A few steps on a phantom (no download): for tests of the machinery only.
    Tiny,
    /// The whole grid with 3 seeds on 2 CPU cores in about 3 hours (small model, whole slices).
    Quick,
    /// The paper's model (ngf 64, 9 blocks) and length on the 1 mm benchmark: for a GPU.
    Paper,
    /// The quick scale's model and benchmark, 400 steps, one seed, and by default only the
    /// comparison that shows the method: CycleGAN against the default DicycleGAN in the
    /// deformed setting (the main job, `tools/demo.sh`; about 10 minutes on 2 CPU cores).
    Demo,
}

/// The parameters a scale fixes (recorded in `study.json`, printed on the page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleSpec {
    /// Generator base width.
    pub ngf: i64,
    /// Residual blocks.
    pub blocks: i64,
    /// PatchGAN width.
    pub ndf: i64,
    /// Training crop side (pixels; the benchmark's slices are 96×112 at 2 mm).
    pub crop: usize,
    /// Optimisation steps per cell.
    pub steps: u64,
    /// Steps at which every cell is evaluated (ascending; the last is `steps`).
    pub points: Vec<u64>,
    /// Steps per "epoch" (the lr schedule: half the epochs fixed, half linear decay).
    pub steps_per_epoch: u64,
    /// Initial learning rate.
    pub lr: f64,
    /// Checkpoint interval (steps): what a killed cell loses at most.
    pub checkpoint_every: u64,
    /// Simulated benchmark: voxel size (mm), training and test subjects, slices per volume.
    pub voxel_mm: usize,
    /// Training subjects.
    pub train_subjects: usize,
    /// Test subjects.
    pub test_subjects: usize,
    /// Axial slices per volume (`None` = the simulator's 64 mm slab).
    pub slices: Option<usize>,
    /// Synthetic sphere anatomy instead of the MNI template (tests).
    pub phantom: bool,
    /// Largest displacement of the domain-specific field (mm).
    pub field_mm: f64,
    /// Seeds run when `--seeds` is not given.
    pub default_seeds: u32,
}

/// The shared field's largest displacement for the quick and paper scales. Calibrated so
/// that copying the deformation costs a model what it cost in the paper (there CycleGAN's
/// MSE rose about 3× from Table 1 to Table 2): the deformed T2 itself scores a PD→T2 z-unit
/// MSE of 1.49 at 16 mm against 0.96 at 8 mm, and the quick CycleGAN reaches about 0.48
/// without the field (docs/STUDY.md, "Calibrating the field").
pub const CALIBRATED_FIELD_MM: f64 = 16.0;

impl Scale {
    /// The scale's parameters.
    pub fn spec(self) -> ScaleSpec {
        match self {
            Scale::Tiny => ScaleSpec {
                ngf: 4,
                blocks: 1,
                ndf: 8,
                crop: 32,
                steps: 4,
                points: vec![2, 4],
                steps_per_epoch: 2,
                lr: 1e-3,
                checkpoint_every: 1,
                voxel_mm: 2,
                train_subjects: 2,
                test_subjects: 2,
                slices: Some(4),
                phantom: true,
                field_mm: 8.0,
                default_seeds: 1,
            },
            Scale::Quick => ScaleSpec {
                ngf: 8,
                blocks: 2,
                ndf: 16,
                crop: 112,
                steps: 1200,
                points: vec![400, 800, 1200],
                steps_per_epoch: 100,
                lr: 1e-3,
                checkpoint_every: 200,
                voxel_mm: 2,
                train_subjects: 38,
                test_subjects: 28,
                slices: None,
                phantom: false,
                field_mm: CALIBRATED_FIELD_MM,
                default_seeds: 3,
            },
            Scale::Demo => ScaleSpec {
                steps: 400,
                points: vec![400],
                default_seeds: 1,
                test_subjects: 10,
                ..Scale::Quick.spec()
            },
            Scale::Paper => ScaleSpec {
                ngf: 64,
                blocks: 9,
                ndf: 64,
                crop: 128,
                steps: 400_000,
                points: vec![133_400, 266_800, 400_000],
                steps_per_epoch: 2000,
                lr: 2e-4,
                checkpoint_every: 2000,
                voxel_mm: 1,
                train_subjects: 38,
                test_subjects: 28,
                slices: None,
                phantom: false,
                field_mm: CALIBRATED_FIELD_MM,
                default_seeds: 3,
            },
        }
    }
}

/// The two settings of the paper's experiment.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// Table 1: T2 aligned with PD.
    Undeformed,
    /// Table 2: every T2 warped by one shared smooth field.
    Deformed,
}

impl Setting {
    /// Both, in page order.
    pub const ALL: [Setting; 2] = [Setting::Deformed, Setting::Undeformed];

    /// Lower-case name used in cell names.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Undeformed => "undeformed",
            Setting::Deformed => "deformed",
        }
    }
}

/// A model variant of the grid: CycleGAN or one way to configure DicycleGAN's offset layers.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Name in cell names and on the page.
    pub name: &'static str,
    /// What it is, for the page.
    pub description: &'static str,
    /// Changes the quick/paper base configuration into this variant.
    pub apply: fn(&mut TrainConfig),
}

fn four_sites(c: &mut TrainConfig) {
    c.model = ModelKind::Dicyclegan;
    c.generator.offset_layers = OffsetSite::ALL.to_vec();
    c.generator.offset_form = OffsetForm::PerChannel;
}

/// Every variant the study knows, baseline first; the first four are the default grid.
pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "cyclegan",
        description: "CycleGAN baseline: no offset layers, CycleGAN losses",
        apply: |c| {
            c.model = ModelKind::Cyclegan;
            // Unused without offset layers, but recorded in the cell's config: fixed, so
            // that a study's cells do not change with the trainer's default form.
            c.generator.offset_form = OffsetForm::PerChannel;
        },
    },
    Variant {
        name: "dicyc-4pc",
        description: "DicycleGAN, offset layers at all four sites, one (dy, dx) per channel",
        apply: four_sites,
    },
    Variant {
        name: "dicyc-input",
        description: "DicycleGAN, one offset layer at the input only",
        apply: |c| {
            four_sites(c);
            c.generator.offset_layers = vec![OffsetSite::Input];
        },
    },
    Variant {
        name: "dicyc-shared",
        description: "DicycleGAN, four sites, one (dy, dx) field per site shared by all channels",
        apply: |c| {
            four_sites(c);
            c.generator.offset_form = OffsetForm::Shared;
        },
    },
    Variant {
        name: "dicyc-4pc-smooth",
        description:
            "DicycleGAN, four per-channel sites, offset penalties (magnitude 0.01, roughness 1)",
        apply: |c| {
            four_sites(c);
            c.loss.offset_magnitude = 0.01;
            c.loss.offset_smoothness = 1.0;
        },
    },
    Variant {
        name: "dicyc-4pc-ganund",
        description:
            "DicycleGAN, four per-channel sites, GAN loss on the undeformed pass too (weight 0.1)",
        apply: |c| {
            four_sites(c);
            c.loss.gan_undeformed = 0.1;
        },
    },
    Variant {
        name: "dicyc-input-align2",
        description: "DicycleGAN, input site only, alignment weight λ_A = 2 (default 0.9)",
        apply: |c| {
            four_sites(c);
            c.generator.offset_layers = vec![OffsetSite::Input];
            c.loss.alignment = 2.0;
        },
    },
];

/// The variants of the default grid: the first four, or for the demo scale CycleGAN and
/// the default DicycleGAN (`dicyc-shared`).
pub fn default_variants(scale: Scale) -> Vec<&'static Variant> {
    match scale {
        Scale::Demo => VARIANTS
            .iter()
            .filter(|v| matches!(v.name, "cyclegan" | "dicyc-shared"))
            .collect(),
        _ => VARIANTS.iter().take(4).collect(),
    }
}

/// The settings of the default grid: both, or for the demo scale the deformed one only.
pub fn default_settings(scale: Scale) -> Vec<Setting> {
    match scale {
        Scale::Demo => vec![Setting::Deformed],
        _ => Setting::ALL.to_vec(),
    }
}

/// A variant by name, with the list of valid names in the error.
pub fn variant(name: &str) -> Result<&'static Variant> {
    VARIANTS.iter().find(|v| v.name == name).with_context(|| {
        format!(
            "unknown variant {name:?}: expected one of {}",
            VARIANTS
                .iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// One cell of the grid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// Variant name.
    pub variant: String,
    /// Setting.
    pub setting: Setting,
    /// Training seed.
    pub seed: u64,
}

impl Cell {
    /// `<variant>.<setting>.s<seed>`, the folder name under `cells/`.
    pub fn name(&self) -> String {
        format!("{}.{}.s{}", self.variant, self.setting.name(), self.seed)
    }

    /// Parses a [`Cell::name`].
    pub fn parse(name: &str) -> Result<Cell> {
        let parts: Vec<&str> = name.split('.').collect();
        let bad = || {
            anyhow::anyhow!(
                "cell {name:?}: expected <variant>.<undeformed|deformed>.s<seed>, e.g. dicyc-input.deformed.s0"
            )
        };
        if parts.len() != 3 {
            return Err(bad());
        }
        let variant = variant(parts[0])?.name.to_string();
        let setting = match parts[1] {
            "undeformed" => Setting::Undeformed,
            "deformed" => Setting::Deformed,
            _ => return Err(bad()),
        };
        let seed = parts[2]
            .strip_prefix('s')
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        Ok(Cell {
            variant,
            setting,
            seed,
        })
    }
}

/// `study.json`: the scale, its parameters and every cell ever asked for in this directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyPlan {
    /// The scale's name.
    pub scale: Scale,
    /// Its parameters.
    pub spec: ScaleSpec,
    /// The grid (sorted, no duplicates).
    pub cells: Vec<Cell>,
    /// The command lines that ran this study, oldest first.
    pub commands: Vec<String>,
}

impl StudyPlan {
    /// `study.json` in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("study.json")
    }

    /// Reads `dir/study.json` when present.
    pub fn load(dir: &Path) -> Result<Option<StudyPlan>> {
        let path = Self::path(dir);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let plan = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a dicyc study plan (delete it to start over)",
                path.display()
            )
        })?;
        Ok(Some(plan))
    }

    /// Writes `dir/study.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        dicyc_volume::atomic::write_atomic(
            &Self::path(dir),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    /// Adds cells (keeping the grid sorted and unique) and the command line.
    pub fn extend(&mut self, cells: &[Cell], command: String) -> Result<()> {
        self.cells.extend(cells.iter().cloned());
        self.cells.sort();
        self.cells.dedup();
        if self.commands.last() != Some(&command) {
            self.commands.push(command);
        }
        Ok(())
    }

    /// Checks that a rerun asks for the scale and parameters the directory holds.
    pub fn check_spec(&self, scale: Scale, spec: &ScaleSpec, dir: &Path) -> Result<()> {
        if self.scale != scale {
            bail!(
                "{} holds a study at scale {:?}; a {:?} study needs another --dir",
                dir.display(),
                self.scale,
                scale
            );
        }
        if self.spec != *spec {
            bail!(
                "{} holds a study with other parameters (study.json: field {} mm; asked: {} mm): \
                 use another --dir, or the same options as before",
                dir.display(),
                self.spec.field_mm,
                spec.field_mm
            );
        }
        Ok(())
    }
}

/// Where a study keeps its data.
pub fn data_dir(study: &Path, setting: Setting) -> PathBuf {
    match setting {
        Setting::Undeformed => study.join("data"),
        Setting::Deformed => study.join("data-deformed"),
    }
}

/// The training configuration of a cell.
pub fn cell_config(spec: &ScaleSpec, cell: &Cell, study: &Path) -> Result<TrainConfig> {
    let mut c = TrainConfig::small();
    c.seed = cell.seed;
    c.threads = 1;
    c.generator.ngf = spec.ngf;
    c.generator.n_blocks = spec.blocks;
    c.discriminator = DiscriminatorConfig {
        ndf: spec.ndf,
        n_layers: 3,
    };
    c.optim.lr = spec.lr;
    let epochs = spec.steps.div_ceil(spec.steps_per_epoch).max(2) as u32;
    c.schedule = ScheduleConfig {
        epochs: epochs / 2,
        epochs_decay: epochs - epochs / 2,
        early_stop: false,
        steps_per_epoch: spec.steps_per_epoch,
        ..ScheduleConfig::default()
    };
    c.max_steps = spec.steps;
    c.output = OutputConfig {
        checkpoint_every: spec.checkpoint_every,
        keep_checkpoints: 2,
        plot_every: 4,
        ..OutputConfig::default()
    };
    let data = data_dir(study, cell.setting);
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    c.data = DataConfig::Nifti {
        a: abs(data.join("train").join("pd")),
        b: abs(data.join("train").join("t2")),
        preprocess: PreprocessOptions {
            size: (spec.crop, spec.crop),
            ..PreprocessOptions::default()
        },
    };
    (variant(&cell.variant)?.apply)(&mut c);
    c.validate()?;
    Ok(c)
}
