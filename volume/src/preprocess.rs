//! Preprocessing of volumes into 2D axial slices for the generator, and back.
//!
//! Per volume: in-plane resampling to a target spacing (optional), per-volume mean/std
//! normalisation mapped into the generator's tanh range, `y = clamp((x − mean) / (k·sd), −1, 1)`
//! with k = `sd_range` (default 3: ±3 sd fill the range), and the inverse recorded
//! (`x = y·k·sd + mean`) so that outputs are written back in source units. Training slices are
//! then centre-cropped or padded to the training size (see the trainer's `data::sampling`);
//! inference runs on whole slices padded to a multiple of 4 (the generator is fully
//! convolutional) and is mapped back onto the source grid.

use anyhow::{bail, Result};
use ndarray::{Array2, Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::augment::AugmentOptions;
use crate::nifti_io::{human_bytes, ReadLimits, MAX_VOLUME_BYTES_ENV};
use crate::resample::{crop_or_pad, resample_slice, resample_slice_to_shape, resampled_shape};
use crate::volume::Volume;

/// Which voxels the normalisation statistics are taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormRegion {
    /// Every voxel of the volume.
    #[default]
    Volume,
    /// Voxels above the volume's minimum (the non-background of skull-stripped data).
    Foreground,
}

/// A per-volume affine intensity map into the generator's range and its inverse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Subtracted first (source units).
    pub mean: f32,
    /// Divisor (source units per generator unit): `sd_range · sd`.
    pub scale: f32,
}

impl Normalization {
    /// Statistics of `v` over `region`, with ±`sd_range` sd mapped to ±1.
    pub fn of(v: &Array3<f32>, region: NormRegion, sd_range: f32) -> Self {
        let min = v.iter().copied().fold(f32::INFINITY, f32::min);
        let sel: Vec<f64> = match region {
            NormRegion::Volume => v.iter().map(|&x| f64::from(x)).collect(),
            NormRegion::Foreground => v
                .iter()
                .filter(|&&x| x > min)
                .map(|&x| f64::from(x))
                .collect(),
        };
        let n = sel.len().max(1) as f64;
        let mean = sel.iter().sum::<f64>() / n;
        let var = sel.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        let sd = if sd > 1e-12 { sd } else { 1.0 };
        Self {
            mean: mean as f32,
            scale: (f64::from(sd_range) * sd) as f32,
        }
    }

    /// Source units → generator range (clamped to [−1, 1]).
    pub fn forward(&self, x: f32) -> f32 {
        self.standardize(x).clamp(-1.0, 1.0)
    }

    /// `(x − mean) / scale`, unclamped: with `sd_range` 1 the z-score the weight file's
    /// constants take (`slicewise::DeviceMap`).
    pub fn standardize(&self, x: f32) -> f32 {
        (x - self.mean) / self.scale
    }

    /// Generator range → source units.
    pub fn inverse(&self, y: f32) -> f32 {
        y * self.scale + self.mean
    }

    /// The mean of several normalisations (a domain's typical intensity map).
    pub fn average(ns: &[Normalization]) -> Option<Normalization> {
        if ns.is_empty() {
            return None;
        }
        let n = ns.len() as f32;
        Some(Normalization {
            mean: ns.iter().map(|x| x.mean).sum::<f32>() / n,
            scale: ns.iter().map(|x| x.scale).sum::<f32>() / n,
        })
    }
}

/// Preprocessing settings shared by training and synthesis.
///
/// `#[serde(default, deny_unknown_fields)]`: a partial table (e.g. `[data.preprocess]` with
/// only `size`) takes the defaults below for every field it leaves out; a misspelt key is an
/// error, not a silent default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessOptions {
    /// Target in-plane voxel size (mm); `None` keeps each volume's own.
    pub spacing: Option<[f32; 2]>,
    /// Training slice size `(height, width)` = (first, second voxel axis); multiples of 4.
    pub size: (usize, usize),
    /// Which voxels the mean/sd are taken over.
    pub norm_region: NormRegion,
    /// ±`sd_range` standard deviations map to ±1.
    pub sd_range: f32,
    /// Slices with less than this fraction of voxels above the volume's minimum are not
    /// used for training (empty slices at the ends of a volume).
    pub min_foreground: f32,
    /// Training augmentation.
    pub augment: AugmentOptions,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            spacing: None,
            size: (128, 128),
            norm_region: NormRegion::Volume,
            sd_range: 3.0,
            min_foreground: 0.05,
            augment: AugmentOptions::default(),
        }
    }
}

/// A volume prepared for the generator: normalised axial slices at the working spacing.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Normalised slices `[nx', ny']` at the working spacing.
    pub slices: Vec<Array2<f32>>,
    /// The normalisation used (its inverse maps back to source units).
    pub norm: Normalization,
    /// The normalised value of the volume's minimum (the background; used for padding).
    pub fill: f32,
    /// Fraction of voxels above the volume's minimum, per slice.
    pub foreground: Vec<f32>,
    /// The source volume's in-plane grid `(nx, ny)` and spacing.
    pub source_shape: (usize, usize),
    /// Source in-plane spacing (mm).
    pub source_spacing: [f32; 2],
    /// Working in-plane spacing (mm).
    pub work_spacing: [f32; 2],
}

/// Normalises and (optionally) resamples a volume's axial slices. The resampled volume must
/// fit the reader's volume limit ([`ReadLimits::from_env`]): a tiny volume with a huge voxel
/// size would otherwise grow without bound on a fine working grid.
pub fn prepare(v: &Volume, opts: &PreprocessOptions) -> Result<Prepared> {
    let sp = v.spacing();
    let from = [sp[0], sp[1]];
    let to = opts.spacing.unwrap_or(from);
    let resample = (to[0] - from[0]).abs() > 1e-4 || (to[1] - from[1]).abs() > 1e-4;
    let (nx, ny, nz) = v.dim();
    if resample {
        let (ox, oy) = resampled_shape((nx, ny), from, to);
        let limit = ReadLimits::from_env()?.max_volume_bytes;
        let bytes = (ox as u64)
            .saturating_mul(oy as u64)
            .saturating_mul(nz as u64)
            .saturating_mul(4);
        if bytes > limit {
            bail!(
                "resampling its {nx}×{ny} axial slices from {:.4}×{:.4} mm to the working \
                 spacing of {:.4}×{:.4} mm gives {ox}×{oy} voxels a slice, {} in all, over the \
                 volume limit of {} (check the file's voxel size, pixdim; or set \
                 {MAX_VOLUME_BYTES_ENV})",
                from[0],
                from[1],
                to[0],
                to[1],
                human_bytes(bytes),
                human_bytes(limit)
            );
        }
    }
    let norm = Normalization::of(&v.data, opts.norm_region, opts.sd_range);
    let min = v.data.iter().copied().fold(f32::INFINITY, f32::min);
    let mut slices = Vec::with_capacity(nz);
    let mut foreground = Vec::with_capacity(nz);
    for k in 0..nz {
        let s = v.data.index_axis(Axis(2), k);
        foreground.push(s.iter().filter(|&&x| x > min).count() as f32 / s.len().max(1) as f32);
        let s = if resample {
            resample_slice(&s, from, to)
        } else {
            s.to_owned()
        };
        slices.push(s.mapv(|x| norm.forward(x)));
    }
    Ok(Prepared {
        slices,
        norm,
        fill: norm.forward(min),
        foreground,
        source_shape: (nx, ny),
        source_spacing: from,
        work_spacing: to,
    })
}

/// The shape a slice of shape `(nx, ny)` is padded to for the generator: the next multiples
/// of 4 (its two stride-2 down-samplings must divide the sides exactly).
pub fn padded_shape((nx, ny): (usize, usize)) -> (usize, usize) {
    (nx.div_ceil(4) * 4, ny.div_ceil(4) * 4)
}

/// The smallest side, in pixels after [`padded_shape`], the generator runs on: its two
/// stride-2 down-samplings leave a quarter, and the reflection paddings there need 2 pixels.
pub const MIN_SIDE: usize = 8;

/// [`padded_shape`] of an `(nx, ny)` slice, or an error saying what to do when the generator
/// cannot run a slice that small (libtorch would panic, the core refuses): one check, one
/// wording, for every command that runs whole volumes.
pub fn runnable_padded_shape((nx, ny): (usize, usize)) -> Result<(usize, usize)> {
    let padded = padded_shape((nx, ny));
    if padded.0 < MIN_SIDE || padded.1 < MIN_SIDE {
        bail!(
            "its axial slices (the planes of the third voxel axis) are {nx}×{ny} voxels at the \
             working spacing: the generator needs at least {MIN_SIDE}×{MIN_SIDE}; give a 3-D \
             volume whose axial slices are along its third axis, or pad or resample it first"
        );
    }
    Ok(padded)
}

/// Pads a slice to [`padded_shape`] (bottom/right, with `fill`) for the generator.
pub fn pad_to_multiple_of_4(s: &ArrayView2<'_, f32>, fill: f32) -> Array2<f32> {
    let (nx, ny) = s.dim();
    let (px, py) = padded_shape((nx, ny));
    Array2::from_shape_fn(
        (px, py),
        |(i, j)| if i < nx && j < ny { s[[i, j]] } else { fill },
    )
}

/// Maps generator outputs (one per prepared slice, possibly padded) back onto the source
/// grid: crop the padding, resample to the source spacing and shape, apply `target`'s inverse
/// normalisation (source units of the output domain).
pub fn restore(
    outputs: &[Array2<f32>],
    prepared: &Prepared,
    target: &Normalization,
) -> Array3<f32> {
    let (nx, ny) = prepared.source_shape;
    let mut out = Array3::<f32>::zeros((nx, ny, outputs.len()));
    for (k, (o, s)) in outputs.iter().zip(&prepared.slices).enumerate() {
        let work = crop_top_left(&o.view(), s.dim());
        let back = if prepared.work_spacing != prepared.source_spacing {
            resample_slice_to_shape(
                &work.view(),
                prepared.work_spacing,
                prepared.source_spacing,
                (nx, ny),
            )
        } else {
            work
        };
        out.index_axis_mut(Axis(2), k)
            .assign(&back.mapv(|y| target.inverse(y)));
    }
    out
}

fn crop_top_left(s: &ArrayView2<'_, f32>, shape: (usize, usize)) -> Array2<f32> {
    if s.dim() == shape {
        return s.to_owned();
    }
    let (nx, ny) = s.dim();
    Array2::from_shape_fn(
        shape,
        |(i, j)| if i < nx && j < ny { s[[i, j]] } else { 0.0 },
    )
}

/// Centre crop/pad of a prepared slice to the training size (no augmentation).
pub fn to_training_size(s: &ArrayView2<'_, f32>, size: (usize, usize), fill: f32) -> Array2<f32> {
    crop_or_pad(s, size, fill)
}
