//! Writing a whole benchmark: subjects of both echoes, masks and the manifest.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{simulate_subject, Anatomy, SimOptions};
use crate::data::nifti_io;

/// Benchmark layout and split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkManifest {
    /// Simulation settings.
    pub options: SimOptions,
    /// Subjects in `train/`.
    pub train: usize,
    /// Subjects in `test/`.
    pub test: usize,
    /// Where the anatomy came from.
    pub anatomy: String,
    /// Voxel size (mm, isotropic) of the volumes.
    pub voxel_mm: f64,
    /// Domains: A = `pd`, B = `t2`.
    pub domains: [String; 2],
}

/// Writes a benchmark: `<out>/{train,test}/{pd,t2,mask}/subject-XXX.nii.gz` and
/// `<out>/benchmark.json`. Subjects `0..train` go to train, the next `test` to test.
pub fn write_benchmark(
    anatomy: &Anatomy,
    opts: &SimOptions,
    train: usize,
    test: usize,
    out: &Path,
    anatomy_name: &str,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    for i in 0..(train + test) {
        let split = if i < train { "train" } else { "test" };
        let sub = simulate_subject(anatomy, opts, i as u64);
        let name = format!("subject-{i:03}.nii.gz");
        for (dom, v) in [("pd", &sub.pd), ("t2", &sub.t2), ("mask", &sub.mask)] {
            nifti_io::write(&out.join(split).join(dom).join(&name), v)?;
        }
        progress.inc(1);
    }
    let manifest = BenchmarkManifest {
        options: opts.clone(),
        train,
        test,
        anatomy: anatomy_name.to_string(),
        voxel_mm: anatomy.voxel_mm(),
        domains: ["pd".into(), "t2".into()],
    };
    let path = out.join("benchmark.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
