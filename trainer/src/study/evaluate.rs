//! A checkpoint on a setting's test set, in memory: both directions synthesized with the
//! undeformed pass and scored against the source-aligned ground truth, per volume.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::plan::Setting;
use crate::data::nifti_io::{list_volumes, read_volume, stem};
use crate::data::sampling::DataStats;
use crate::eval::{alignment_metrics, volume_metrics, AlignmentMetrics, VolumeMetrics};
use crate::inference::{load_generator, Direction};
use crate::model::Pass;

/// The two directions' labels, in record order.
pub const DIRECTIONS: [&str; 2] = ["PD→T2", "T2→PD"];

/// One volume's scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeScore {
    /// File stem.
    pub volume: String,
    /// The paper's metrics in source units.
    pub metrics: VolumeMetrics,
    /// z-units, alignment and sharpness.
    pub alignment: AlignmentMetrics,
}

/// Every volume of one direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectionScores {
    /// "PD→T2" or "T2→PD".
    pub direction: String,
    /// Per test volume, sorted by name.
    pub volumes: Vec<VolumeScore>,
}

/// `eval-<step>.json`: a cell evaluated at one point of its training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The checkpoint's global step.
    pub step: u64,
    /// Both directions.
    pub directions: Vec<DirectionScores>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// Source, ground truth and mask folders of each direction of a setting's test set.
pub fn test_folders(data: &Path, setting: Setting) -> [(Direction, [std::path::PathBuf; 3]); 2] {
    let t = data.join("test");
    match setting {
        Setting::Undeformed => [
            (Direction::A2b, [t.join("pd"), t.join("t2"), t.join("mask")]),
            (Direction::B2a, [t.join("t2"), t.join("pd"), t.join("mask")]),
        ],
        Setting::Deformed => [
            (
                Direction::A2b,
                [t.join("pd"), t.join("gt-t2"), t.join("mask")],
            ),
            (
                Direction::B2a,
                [t.join("t2"), t.join("gt-pd"), t.join("mask-t2")],
            ),
        ],
    }
}

/// Scores one prediction against its truth and source (same grid), inside the mask.
pub fn score(
    name: &str,
    pred: &ndarray::Array3<f32>,
    truth: &crate::data::Volume,
    source: &ndarray::Array3<f32>,
    mask: &ndarray::Array3<f32>,
) -> Result<VolumeScore> {
    anyhow::ensure!(
        pred.dim() == truth.data.dim()
            && source.dim() == truth.data.dim()
            && mask.dim() == truth.data.dim(),
        "{name}: prediction {:?}, truth {:?}, source {:?} and mask {:?} are not on one grid",
        pred.dim(),
        truth.data.dim(),
        source.dim(),
        mask.dim()
    );
    let m = Some(mask.view());
    let voxel_mm = f64::from(truth.spacing()[0]);
    Ok(VolumeScore {
        volume: name.to_string(),
        metrics: volume_metrics(&pred.view(), &truth.data.view(), m.as_ref()),
        alignment: alignment_metrics(
            &pred.view(),
            &truth.data.view(),
            &source.view(),
            m.as_ref(),
            voxel_mm,
        ),
    })
}

/// Synthesizes and scores the test set of `data` (a study's data folder for `setting`) with
/// the checkpoint `checkpoint` of `run`.
pub fn evaluate_checkpoint(
    run: &Path,
    checkpoint: &Path,
    step: u64,
    data: &Path,
    setting: Setting,
) -> Result<EvalRecord> {
    let t0 = Instant::now();
    let stats = DataStats::load(&run.join("data-stats.json"))?;
    let mut directions = Vec::new();
    for (label, (direction, [source_dir, truth_dir, mask_dir])) in
        DIRECTIONS.iter().zip(test_folders(data, setting))
    {
        let g = load_generator(run, checkpoint, direction, Device::Cpu)?;
        let target = match direction {
            Direction::A2b => stats.b,
            Direction::B2a => stats.a,
        };
        let mut volumes = Vec::new();
        for source_path in list_volumes(&source_dir)? {
            let name = stem(&source_path);
            let truth_path = truth_dir.join(format!("{name}.nii.gz"));
            if !truth_path.exists() {
                continue; // e.g. a T2 without a PD of the same subject has no gt-pd
            }
            let source = read_volume(&source_path)?;
            let truth = read_volume(&truth_path)?;
            let mask = read_volume(&mask_dir.join(format!("{name}.nii.gz")))?;
            let pred = g
                .synthesize_volume(
                    &source,
                    &stats.preprocess,
                    Some(target),
                    Pass::Undeformed,
                    8,
                    |_| {},
                )
                .with_context(|| format!("synthesizing {}", source_path.display()))?;
            volumes.push(score(&name, &pred, &truth, &source.data, &mask.data)?);
        }
        anyhow::ensure!(
            !volumes.is_empty(),
            "no test volume with a ground truth in {} (expected {}/<name>.nii.gz for each source)",
            source_dir.display(),
            truth_dir.display()
        );
        directions.push(DirectionScores {
            direction: label.to_string(),
            volumes,
        });
    }
    Ok(EvalRecord {
        step,
        directions,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What merely copying the target domain's geometry scores in the deformed setting: the
/// deformed T2 itself as the "synthesis" of PD→T2, and the undeformed PD as that of T2→PD.
pub fn copy_baseline(data_deformed: &Path) -> Result<EvalRecord> {
    let t0 = Instant::now();
    let t = data_deformed.join("test");
    let mut directions = Vec::new();
    for (label, copy, truth_dir, source_dir, mask_dir) in [
        (
            DIRECTIONS[0],
            t.join("t2"),
            t.join("gt-t2"),
            t.join("pd"),
            t.join("mask"),
        ),
        (
            DIRECTIONS[1],
            t.join("pd"),
            t.join("gt-pd"),
            t.join("t2"),
            t.join("mask-t2"),
        ),
    ] {
        let mut volumes = Vec::new();
        for truth_path in list_volumes(&truth_dir)? {
            let name = stem(&truth_path);
            let at = |d: &Path| d.join(format!("{name}.nii.gz"));
            if !at(&copy).exists() || !at(&source_dir).exists() {
                continue;
            }
            let truth = read_volume(&truth_path)?;
            let pred = read_volume(&at(&copy))?;
            let source = read_volume(&at(&source_dir))?;
            let mask = read_volume(&at(&mask_dir))?;
            volumes.push(score(&name, &pred.data, &truth, &source.data, &mask.data)?);
        }
        directions.push(DirectionScores {
            direction: label.to_string(),
            volumes,
        });
    }
    Ok(EvalRecord {
        step: 0,
        directions,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
