//! The anatomy the subjects are drawn from: the MNI ICBM152 2009a tissue maps on a chosen
//! grid, with the brain mask and the morphology it is closed with.

use std::path::Path;

use anyhow::Result;
use ndarray::{Array3, Axis, Zip};

use super::{voxel_of, MASK_CLOSING_MM};
use crate::data::nifti_io;
use crate::data::resample::downsample_mean;
use crate::data::template;
use crate::data::volume::{header_for, reslice_header, Volume};

/// Tissue fractions on a grid: grey matter, white matter, CSF (each in [0, 1], sum ≤ 1;
/// outside the brain all zero), with the grid's header.
#[derive(Debug, Clone)]
pub struct Anatomy {
    /// Grey-matter fraction.
    pub gm: Array3<f32>,
    /// White-matter fraction.
    pub wm: Array3<f32>,
    /// CSF fraction.
    pub csf: Array3<f32>,
    /// Geometry of the grid.
    pub header: nifti::NiftiHeader,
}

impl Anatomy {
    /// Loads the template's GM and WM maps from `dir`, downsamples them by `factor` (block
    /// mean: partial volumes; 1 = the template's own 1 mm grid), derives the brain mask
    /// (GM+WM > 0.3, closed with a ball of [`MASK_CLOSING_MM`], holes filled slice by slice —
    /// the ventricles) and CSF = mask · (1 − GM − WM).
    pub fn from_template(dir: &Path, factor: usize) -> Result<Self> {
        let read = |k: &str| -> Result<Volume> {
            let p = dir.join(template::map_file(k));
            let v = nifti_io::read_volume(&p)?;
            let d = v.dim();
            if [d.0, d.1, d.2] != template::TEMPLATE_DIMS {
                anyhow::bail!(
                    "{}: dimensions {:?}, expected {:?}: not the nilearn ICBM152 2009a map",
                    p.display(),
                    d,
                    template::TEMPLATE_DIMS
                );
            }
            Ok(v)
        };
        let gm = read("gm")?;
        let wm = read("wm")?;
        let scale = |v: &Volume| {
            let max = v.data.iter().copied().fold(0.0f32, f32::max);
            if max > 1.5 {
                255.0
            } else {
                1.0
            }
        };
        let (sg, sw) = (scale(&gm), scale(&wm));
        let f = [factor.max(1); 3];
        let g = downsample_mean(&gm.data.view(), f).mapv(|x| (x / sg).clamp(0.0, 1.0));
        let w = downsample_mean(&wm.data.view(), f).mapv(|x| (x / sw).clamp(0.0, 1.0));
        let half = (factor.max(1) as f64 - 1.0) / 2.0;
        let header = reslice_header(&gm.header, [factor as f64; 3], [half; 3]);
        Ok(Self::from_gm_wm(g, w, header))
    }

    /// Builds the anatomy from GM and WM fractions (mask and CSF derived as in
    /// [`from_template`](Self::from_template)); the closing radius is converted to voxels of
    /// `header`'s voxel size, so the mask means the same in mm at any resolution.
    pub fn from_gm_wm(gm: Array3<f32>, wm: Array3<f32>, header: nifti::NiftiHeader) -> Self {
        let tissue = Zip::from(&gm).and(&wm).map_collect(|&g, &w| g + w > 0.3);
        let r = (MASK_CLOSING_MM / voxel_of(&header)).round().max(1.0) as usize;
        let closed = erode(&dilate(&tissue, r), r);
        let mask = fill_holes_axial(&closed);
        let csf = Zip::from(&gm)
            .and(&wm)
            .and(&mask)
            .map_collect(|&g, &w, &m| {
                if m {
                    (1.0 - g - w).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            });
        let gm = Zip::from(&gm)
            .and(&mask)
            .and(&tissue)
            .map_collect(|&g, &m, &t| if m || t { g } else { 0.0 });
        Self {
            gm,
            wm,
            csf,
            header,
        }
    }

    /// A tiny synthetic anatomy for tests: concentric spheres (WM core, GM shell, CSF rim)
    /// with a CSF "ventricle" in the middle, partial-volume edges, 2 mm voxels.
    pub fn phantom(dims: [usize; 3]) -> Self {
        let c = dims.map(|d| (d as f64 - 1.0) / 2.0);
        let r = dims.iter().map(|&d| d as f64).fold(f64::INFINITY, f64::min) / 2.0 - 1.0;
        let frac = |dist: f64, radius: f64| (radius - dist + 0.5).clamp(0.0, 1.0) as f32;
        let mut gm = Array3::zeros((dims[0], dims[1], dims[2]));
        let mut wm = gm.clone();
        for ((i, j, k), g) in gm.indexed_iter_mut() {
            let d =
                ((i as f64 - c[0]).powi(2) + (j as f64 - c[1]).powi(2) + (k as f64 - c[2]).powi(2))
                    .sqrt();
            let brain = frac(d, 0.9 * r);
            let inner = frac(d, 0.65 * r);
            let vent = frac(d, 0.2 * r);
            let w = (inner - vent).max(0.0);
            wm[[i, j, k]] = w;
            *g = (brain - inner).max(0.0);
        }
        let header = header_for((dims[0], dims[1], dims[2]), [2.0; 3], [0.0; 3]);
        let mut a = Self::from_gm_wm(gm, wm, header);
        // The whole sphere of radius r is brain (CSF rim between 0.9 r and r).
        for ((i, j, k), c2) in a.csf.indexed_iter_mut() {
            let d =
                ((i as f64 - c[0]).powi(2) + (j as f64 - c[1]).powi(2) + (k as f64 - c[2]).powi(2))
                    .sqrt();
            let inside = frac(d, r);
            *c2 = (inside - a.gm[[i, j, k]] - a.wm[[i, j, k]]).clamp(0.0, 1.0);
        }
        a
    }

    /// Grid size.
    pub fn dims(&self) -> [usize; 3] {
        let d = self.gm.dim();
        [d.0, d.1, d.2]
    }

    /// Voxel size (mm) of the grid (isotropic).
    pub fn voxel_mm(&self) -> f64 {
        voxel_of(&self.header)
    }

    /// Brain fraction (GM + WM + CSF).
    pub fn brain(&self) -> Array3<f32> {
        &self.gm + &self.wm + &self.csf
    }
}

/// Where a set voxel of `m` lies within the ball of radius `r` voxels (offsets with
/// a² + b² + c² ≤ r²); voxels outside the grid count as `outside`. Exact, by separable
/// min-plus passes of the squared distance over a ±r window per axis: O(n·r) rather than
/// O(n·r³), which the 1 mm template (8.7 M voxels, r = 4) needs.
fn within_ball(m: &Array3<bool>, r: usize, outside: bool) -> Array3<bool> {
    const FAR: u32 = u32::MAX / 4;
    let edge = if outside { 0 } else { FAR };
    let mut d = m.mapv(|b| if b { 0u32 } else { FAR });
    for axis in 0..3 {
        let n = d.len_of(Axis(axis));
        let src = d.clone();
        Zip::from(d.lanes_mut(Axis(axis)))
            .and(src.lanes(Axis(axis)))
            .for_each(|mut out, inp| {
                for i in 0..n {
                    let mut best = inp[i];
                    for o in 1..=r {
                        let o2 = (o * o) as u32;
                        let lo = if i >= o { inp[i - o] } else { edge };
                        let hi = if i + o < n { inp[i + o] } else { edge };
                        best = best.min(lo.min(hi).saturating_add(o2));
                    }
                    out[i] = best;
                }
            });
    }
    let r2 = (r * r) as u32;
    d.mapv(|x| x <= r2)
}

fn dilate(m: &Array3<bool>, r: usize) -> Array3<bool> {
    within_ball(m, r, false)
}

/// Erosion: inside the grid and no unset voxel within the ball (outside counts as unset).
fn erode(m: &Array3<bool>, r: usize) -> Array3<bool> {
    within_ball(&m.mapv(|b| !b), r, true).mapv(|b| !b)
}

/// Fills holes of a mask in every axial slice (background = what a 4-connected flood from the
/// slice border reaches).
pub fn fill_holes_axial(m: &Array3<bool>) -> Array3<bool> {
    let (nx, ny, nz) = m.dim();
    let mut out = m.clone();
    for k in 0..nz {
        let mut outside = vec![false; nx * ny];
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for i in 0..nx {
            for j in 0..ny {
                if (i == 0 || j == 0 || i == nx - 1 || j == ny - 1) && !m[[i, j, k]] {
                    outside[i * ny + j] = true;
                    stack.push((i, j));
                }
            }
        }
        while let Some((i, j)) = stack.pop() {
            let mut visit = |a: usize, b: usize| {
                if !m[[a, b, k]] && !outside[a * ny + b] {
                    outside[a * ny + b] = true;
                    stack.push((a, b));
                }
            };
            if i > 0 {
                visit(i - 1, j);
            }
            if i + 1 < nx {
                visit(i + 1, j);
            }
            if j > 0 {
                visit(i, j - 1);
            }
            if j + 1 < ny {
                visit(i, j + 1);
            }
        }
        for i in 0..nx {
            for j in 0..ny {
                out[[i, j, k]] = !outside[i * ny + j];
            }
        }
    }
    out
}
