//! Evaluation: per-volume metrics of synthesized volumes against source-aligned ground
//! truths, paper-style tables and example-slice figures.

pub mod alignment;
pub mod canvas;
pub mod figure;
pub mod metrics;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::{Array3, Axis};

use crate::data::nifti_io::{list_volumes, read_volume, stem};

pub use alignment::{alignment_metrics, AlignmentMetrics};
pub use metrics::{volume_metrics, VolumeMetrics};
pub use table::DirectionResult;

/// One direction to evaluate: predictions and ground truths matched by file name (stem).
#[derive(Debug, Clone)]
pub struct DirectionSpec {
    /// Label, e.g. "PD→T2".
    pub name: String,
    /// Folder (or list file) of synthesized volumes.
    pub pred: PathBuf,
    /// Folder of ground truths aligned with the source.
    pub truth: PathBuf,
    /// Folder of source volumes (figure only).
    pub source: Option<PathBuf>,
    /// Folder of masks (ROI): metrics only inside (> 0.5).
    pub mask: Option<PathBuf>,
}

fn by_stem(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    Ok(list_volumes(dir)?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect())
}

/// Middle slice of a volume with the most foreground (for figures): the index of the axial
/// slice with the largest sum of |values|.
fn best_slice(v: &Array3<f32>) -> usize {
    (0..v.len_of(Axis(2)))
        .max_by(|&a, &b| {
            let s = |k: usize| {
                v.index_axis(Axis(2), k)
                    .iter()
                    .map(|x| f64::from(x.abs()))
                    .sum::<f64>()
            };
            s(a).total_cmp(&s(b))
        })
        .unwrap_or(0)
}

/// Example slices kept for the figure: one volume's best slice.
#[derive(Debug, Clone)]
pub struct Example {
    /// The volume's file stem.
    pub subject: String,
    /// The axial slice index.
    pub slice: usize,
    /// The source's slice, when the source is given and on the same grid.
    pub source: Option<ndarray::Array2<f32>>,
    /// The synthesized slice.
    pub synth: ndarray::Array2<f32>,
    /// The ground truth's slice.
    pub truth: ndarray::Array2<f32>,
}

/// Evaluates one direction: every ground truth must have a prediction of the same name and
/// shape. Returns the results and up to `examples` example slices.
pub fn evaluate(
    spec: &DirectionSpec,
    examples: usize,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(DirectionResult, Vec<Example>)> {
    let truths = by_stem(&spec.truth).with_context(|| format!("ground truths of {}", spec.name))?;
    let preds = by_stem(&spec.pred).with_context(|| format!("predictions of {}", spec.name))?;
    let masks = match &spec.mask {
        Some(m) => Some(by_stem(m).with_context(|| format!("masks of {}", spec.name))?),
        None => None,
    };
    let missing: Vec<&String> = truths.keys().filter(|k| !preds.contains_key(*k)).collect();
    if !missing.is_empty() {
        bail!(
            "{}: {} ground truth(s) in {} have no prediction in {} (first: {}); synthesize them first",
            spec.name,
            missing.len(),
            spec.truth.display(),
            spec.pred.display(),
            missing[0]
        );
    }
    let mut vols = Vec::new();
    let mut ex = Vec::new();
    for (name, tpath) in &truths {
        let truth = read_volume(tpath)?;
        let pred = read_volume(&preds[name])?;
        if pred.dim() != truth.dim() {
            bail!(
                "{} is {:?} but its ground truth {} is {:?}: not on the same grid",
                preds[name].display(),
                pred.dim(),
                tpath.display(),
                truth.dim()
            );
        }
        let mask = match &masks {
            Some(m) => {
                let p = m.get(name).with_context(|| {
                    format!(
                        "no mask named {name} in {}",
                        spec.mask
                            .as_ref()
                            .map_or(String::new(), |d| d.display().to_string())
                    )
                })?;
                let mv = read_volume(p)?;
                if mv.dim() != truth.dim() {
                    bail!(
                        "mask {} is {:?}, ground truth {} is {:?}",
                        p.display(),
                        mv.dim(),
                        tpath.display(),
                        truth.dim()
                    );
                }
                Some(mv.data)
            }
            None => None,
        };
        let m = volume_metrics(
            &pred.data.view(),
            &truth.data.view(),
            mask.as_ref().map(|m| m.view()).as_ref(),
        );
        if ex.len() < examples {
            let k = best_slice(&truth.data);
            let src = match &spec.source {
                Some(d) => {
                    let p = list_volumes(d)?.into_iter().find(|p| stem(p) == *name);
                    match p {
                        Some(p) => {
                            let s = read_volume(&p)?;
                            (s.dim() == truth.dim())
                                .then(|| s.data.index_axis(Axis(2), k).to_owned())
                        }
                        None => None,
                    }
                }
                None => None,
            };
            ex.push(Example {
                subject: name.clone(),
                slice: k,
                source: src,
                synth: pred.data.index_axis(Axis(2), k).to_owned(),
                truth: truth.data.index_axis(Axis(2), k).to_owned(),
            });
        }
        vols.push((name.clone(), m));
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
    Ok((DirectionResult::new(&spec.name, vols), ex))
}
