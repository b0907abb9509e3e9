//! `trainer study`: the paper's experiment grid as one resumable, parallel command.
//!
//! A study is a directory: `study.json` (the scale's parameters and the grid), the data it
//! made (`data/`, `data-deformed/`), one folder per cell under `cells/` and the results page.
//! A cell is one training run — a model variant × a setting (undeformed T2, the paper's
//! Table 1; domain-deformed T2, Table 2) × a seed — evaluated at several points of its
//! training (`eval-<step>.json`). Finished evaluations are never redone, an unfinished cell
//! resumes from its run's latest checkpoint, and the page is rebuilt from whatever is on disk,
//! so a killed study continues where it stopped, also in a later session from the committed
//! `eval-*.json` files alone.
//!
//! Modules: [`plan`] (scales, variants, settings, cells), [`cell`] (training and evaluating
//! one cell), [`evaluate`] (a checkpoint on a test set, in memory), [`page`] (aggregation,
//! `results.json`, the Markdown page), [`figure`] (Fig. 4 and the per-seed plot).

pub mod cell;
pub mod evaluate;
pub mod figure;
pub mod page;
pub mod plan;

pub use plan::{Cell, Scale, ScaleSpec, Setting, StudyPlan, Variant};
