//! Training: configuration and presets, the networks, the objective, the loop, the
//! optimizer, image pools, the schedule, checkpoints, run directories, plots, the run's
//! page (`index.html`) and a synthetic data source.

pub mod adam;
pub mod checkpoint;
pub mod config;
pub mod finite;
pub mod html;
pub mod models;
pub mod objective;
pub mod plots;
pub mod pool;
pub mod run;
pub mod run_dir;
pub mod run_page;
pub mod schedule;
pub mod synthetic;

pub use config::{ModelKind, Preset, TrainConfig};
pub use models::Models;
pub use run::{RunSummary, StopReason, Trainer};
pub use run_dir::{RunDir, RunLock, StepLosses};
pub use synthetic::SyntheticSlices;
