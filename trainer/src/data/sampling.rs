//! [`UnpairedSlices`] for NIfTI data: two folders (or list files) of volumes, domain A and
//! domain B, unpaired. Every volume is preprocessed once at open time (see
//! [`crate::data::preprocess`]); draws pick a random slice of A and, independently, one of B,
//! and augment each while cropping/padding it to the training size.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::augment::augment_to_size;
use super::nifti_io::{list_volumes, read_volume};
use super::preprocess::{prepare, Normalization, PreprocessOptions};
use crate::source::UnpairedSlices;

/// The slices of one domain.
#[derive(Debug, Clone, Default)]
pub struct DomainSlices {
    /// Normalised slices at the working spacing, with their volume's background value.
    pub slices: Vec<(Array2<f32>, f32)>,
    /// Per-volume normalisations (file, map).
    pub norms: Vec<(PathBuf, Normalization)>,
}

impl DomainSlices {
    /// Loads and preprocesses every volume of a folder or list file.
    pub fn open(source: &Path, opts: &PreprocessOptions) -> Result<Self> {
        let files = list_volumes(source)?;
        let mut out = DomainSlices::default();
        for f in files {
            let v = read_volume(&f)?;
            let p = prepare(&v, opts).with_context(|| format!("preparing {}", f.display()))?;
            for (s, fg) in p.slices.into_iter().zip(&p.foreground) {
                if *fg >= opts.min_foreground {
                    out.slices.push((s, p.fill));
                }
            }
            out.norms.push((f, p.norm));
        }
        if out.slices.is_empty() {
            bail!(
                "{}: no slice has at least {:.0} % foreground; lower min_foreground",
                source.display(),
                opts.min_foreground * 100.0
            );
        }
        Ok(out)
    }

    /// The domain's average normalisation (used to write synthesized volumes of this domain
    /// in its source units).
    pub fn typical_norm(&self) -> Normalization {
        Normalization::average(&self.norms.iter().map(|(_, n)| *n).collect::<Vec<_>>()).unwrap_or(
            Normalization {
                mean: 0.0,
                scale: 1.0,
            },
        )
    }
}

/// Each domain's typical intensity map, saved beside a model (`data-stats.json`) so that
/// `trainer synth` writes outputs in the target domain's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    /// Domain A's average normalisation.
    pub a: Normalization,
    /// Domain B's average normalisation.
    pub b: Normalization,
    /// The preprocessing the model was trained with (synthesis uses the same).
    #[serde(default)]
    pub preprocess: PreprocessOptions,
}

impl DataStats {
    /// Writes the stats as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads stats written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self> {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&t)
            .with_context(|| format!("{} is not a dicyc data-stats file", path.display()))
    }
}

/// Unpaired NIfTI slices of two domains.
#[derive(Debug, Clone)]
pub struct NiftiSlices {
    /// Domain A.
    pub a: DomainSlices,
    /// Domain B.
    pub b: DomainSlices,
    /// The preprocessing used.
    pub opts: PreprocessOptions,
}

impl NiftiSlices {
    /// Opens domain A and domain B (folders or list files of `.nii`/`.nii.gz`).
    pub fn open(dir_a: &Path, dir_b: &Path, opts: &PreprocessOptions) -> Result<Self> {
        if opts.size.0 % 4 != 0 || opts.size.1 % 4 != 0 || opts.size.0 == 0 || opts.size.1 == 0 {
            bail!(
                "training slice size {:?} must be positive multiples of 4",
                opts.size
            );
        }
        let a = DomainSlices::open(dir_a, opts)
            .with_context(|| format!("domain A ({})", dir_a.display()))?;
        let b = DomainSlices::open(dir_b, opts)
            .with_context(|| format!("domain B ({})", dir_b.display()))?;
        Ok(Self {
            a,
            b,
            opts: opts.clone(),
        })
    }

    /// The typical intensity maps of both domains.
    pub fn stats(&self) -> DataStats {
        DataStats {
            a: self.a.typical_norm(),
            b: self.b.typical_norm(),
            preprocess: self.opts.clone(),
        }
    }

    fn draw(&self, dom: &DomainSlices, batch: usize, rng: &mut ChaCha8Rng) -> Tensor {
        let (h, w) = self.opts.size;
        let mut buf: Vec<f32> = Vec::with_capacity(batch * h * w);
        for _ in 0..batch {
            let (s, fill) = &dom.slices[rng.gen_range(0..dom.slices.len())];
            let t = augment_to_size(&s.view(), (h, w), *fill, &self.opts.augment, rng);
            buf.extend(t.iter());
        }
        Tensor::from_slice(&buf).view([batch as i64, 1, h as i64, w as i64])
    }
}

impl UnpairedSlices for NiftiSlices {
    fn next_batch(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> Result<(Tensor, Tensor)> {
        let a = self.draw(&self.a, batch, rng);
        let b = self.draw(&self.b, batch, rng);
        Ok((a, b))
    }

    fn slices_per_epoch(&self) -> usize {
        self.a.slices.len().max(self.b.slices.len())
    }

    fn channels(&self) -> (i64, i64) {
        (1, 1)
    }

    fn slice_size(&self) -> (i64, i64) {
        (self.opts.size.0 as i64, self.opts.size.1 as i64)
    }
}
