//! Measures beyond the paper's table: metrics in z-units (each volume normalised by its own
//! mean and sd, the paper's convention, so numbers sit beside its tables), alignment with the
//! source (NMI, residual displacement against the aligned ground truth) and sharpness.
//!
//! All take an optional mask (voxels > 0.5 count) like [`super::metrics`].

use ndarray::{s, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::metrics::{mse, peak, psnr_from, selected};

/// The extra measures of one synthesized volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlignmentMetrics {
    /// MSE after normalising prediction and truth each by its own mean and sd (inside the mask).
    #[serde(with = "super::metrics::inf_as_string")]
    pub mse_z: f64,
    /// PSNR (dB) in z-units; peak = the normalised truth's dynamic range.
    #[serde(with = "super::metrics::inf_as_string")]
    pub psnr_z: f64,
    /// NMI(source, prediction): how much of the source's structure the output keeps.
    #[serde(with = "super::metrics::inf_as_string")]
    pub nmi_source_pred: f64,
    /// NMI(source, ground truth): the same for the aligned truth (the reference level).
    #[serde(with = "super::metrics::inf_as_string")]
    pub nmi_source_truth: f64,
    /// Median displacement (mm) between prediction and aligned truth by block matching;
    /// NaN when no block had enough structure.
    #[serde(with = "super::metrics::inf_as_string")]
    pub displacement_mm: f64,
    /// In-plane gradient energy of the prediction relative to the truth's (1 = as sharp).
    #[serde(with = "super::metrics::inf_as_string")]
    pub gradient_ratio: f64,
}

/// Mean and population sd over the selected voxels.
fn moments(v: &ArrayView3<'_, f32>, mask: Option<&ArrayView3<'_, f32>>) -> (f64, f64) {
    let sel = selected(v, v, mask);
    if sel.is_empty() {
        return (0.0, 1.0);
    }
    let n = sel.len() as f64;
    let m = sel.iter().map(|p| p.0).sum::<f64>() / n;
    let var = sel.iter().map(|p| (p.0 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// `v` normalised by its own mean and sd inside the mask (sd 0 counts as 1).
fn zscore(v: &ArrayView3<'_, f32>, mask: Option<&ArrayView3<'_, f32>>) -> ndarray::Array3<f32> {
    let (m, sd) = moments(v, mask);
    let sd = if sd > 0.0 { sd } else { 1.0 };
    v.mapv(|x| ((f64::from(x) - m) / sd) as f32)
}

/// MSE and PSNR in z-units.
pub fn zscore_metrics(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
) -> (f64, f64) {
    let (pz, tz) = (zscore(pred, mask), zscore(truth, mask));
    let m = mse(&pz.view(), &tz.view(), mask);
    (m, psnr_from(m, peak(&tz.view(), mask)))
}

/// Normalised mutual information `2·MI/(H_a + H_b)` (Vinh et al.; 1 for identical images) from
/// a `bins`² joint histogram over each image's own range inside the mask.
pub fn nmi(
    a: &ArrayView3<'_, f32>,
    b: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
    bins: usize,
) -> f64 {
    let sel = selected(a, b, mask);
    if sel.is_empty() {
        return f64::NAN;
    }
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = sel
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let (alo, ahi) = range(|p| p.0);
    let (blo, bhi) = range(|p| p.1);
    let bin =
        |x: f64, lo: f64, hi: f64| (((x - lo) / (hi - lo) * bins as f64) as usize).min(bins - 1);
    let mut joint = vec![0.0f64; bins * bins];
    for &(x, y) in &sel {
        joint[bin(x, alo, ahi) * bins + bin(y, blo, bhi)] += 1.0;
    }
    let n = sel.len() as f64;
    let mut pa = vec![0.0; bins];
    let mut pb = vec![0.0; bins];
    for i in 0..bins {
        for j in 0..bins {
            let p = joint[i * bins + j] / n;
            pa[i] += p;
            pb[j] += p;
        }
    }
    let h = |p: &[f64]| {
        -p.iter()
            .filter(|&&v| v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>()
    };
    let (ha, hb) = (h(&pa), h(&pb));
    let mut mi = 0.0;
    for i in 0..bins {
        for j in 0..bins {
            let p = joint[i * bins + j] / n;
            if p > 0.0 {
                mi += p * (p / (pa[i] * pb[j])).ln();
            }
        }
    }
    if ha + hb > 0.0 {
        2.0 * mi / (ha + hb)
    } else {
        1.0
    }
}

/// Block matching between two slices: half-size of a block and largest shift searched, in
/// pixels; distance between block centres.
const BLOCK_HALF: usize = 7;
const SEARCH: i64 = 6;
const STRIDE: usize = 8;

/// Normalised cross-correlation of the block of `a` centred at `(i, j)` with the block of `b`
/// centred at `(i + di, j + dj)`.
fn ncc(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    i: usize,
    j: usize,
    di: i64,
    dj: i64,
) -> f64 {
    let h = BLOCK_HALF as i64;
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let n = ((2 * h + 1) * (2 * h + 1)) as f64;
    for y in -h..=h {
        for x in -h..=h {
            let (ia, ja) = ((i as i64 + y) as usize, (j as i64 + x) as usize);
            let (ib, jb) = ((i as i64 + y + di) as usize, (j as i64 + x + dj) as usize);
            let va = f64::from(a[[ia, ja]]);
            let vb = f64::from(b[[ib, jb]]);
            sa += va;
            sb += vb;
            saa += va * va;
            sbb += vb * vb;
            sab += va * vb;
        }
    }
    let cov = sab - sa * sb / n;
    let va = saa - sa * sa / n;
    let vb = sbb - sb * sb / n;
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Sub-pixel position of a maximum from three samples `(left, centre, right)` (parabola).
fn parabola(l: f64, c: f64, r: f64) -> f64 {
    let d = l - 2.0 * c + r;
    if d < 0.0 {
        (0.5 * (l - r) / d).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// Displacements (pixels) of every structured block of the slice `pred` against `truth`:
/// for blocks whose centre lies in the mask and whose truth block varies (sd above 5 % of
/// the truth's range), the integer shift within ±[`SEARCH`] that maximises NCC, refined to
/// sub-pixel by parabolas; blocks whose best NCC is below 0.5 are skipped (no reliable match).
fn slice_displacements(
    pred: &ArrayView2<'_, f32>,
    truth: &ArrayView2<'_, f32>,
    mask: Option<&ArrayView2<'_, f32>>,
    min_sd: f64,
    out: &mut Vec<f64>,
) {
    let (nx, ny) = truth.dim();
    let margin = BLOCK_HALF + SEARCH as usize + 1;
    if nx <= 2 * margin || ny <= 2 * margin {
        return;
    }
    let mut i = margin;
    while i < nx - margin {
        let mut j = margin;
        while j < ny - margin {
            if mask.is_none_or(|m| m[[i, j]] > 0.5) {
                let block = truth.slice(s![
                    i - BLOCK_HALF..=i + BLOCK_HALF,
                    j - BLOCK_HALF..=j + BLOCK_HALF
                ]);
                let mean = block.iter().map(|&v| f64::from(v)).sum::<f64>() / block.len() as f64;
                let var = block
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / block.len() as f64;
                if var.sqrt() > min_sd {
                    let mut best = (f64::NEG_INFINITY, 0i64, 0i64);
                    for di in -SEARCH..=SEARCH {
                        for dj in -SEARCH..=SEARCH {
                            let c = ncc(truth, pred, i, j, di, dj);
                            if c > best.0 {
                                best = (c, di, dj);
                            }
                        }
                    }
                    let (c, di, dj) = best;
                    if c >= 0.5 {
                        let sub = |d: i64, along_i: bool| {
                            if d.abs() == SEARCH {
                                return d as f64;
                            }
                            let at = |e: i64| {
                                if along_i {
                                    ncc(truth, pred, i, j, di + e, dj)
                                } else {
                                    ncc(truth, pred, i, j, di, dj + e)
                                }
                            };
                            d as f64 + parabola(at(-1), c, at(1))
                        };
                        let (y, x) = (sub(di, true), sub(dj, false));
                        out.push((y * y + x * x).sqrt());
                    }
                }
            }
            j += STRIDE;
        }
        i += STRIDE;
    }
}

/// Median in-plane displacement (mm) between `pred` and the aligned `truth`, from block
/// matching on every other axial slice (see [`slice_displacements`]); `voxel_mm` is the
/// in-plane voxel size. NaN when no block qualifies.
pub fn residual_displacement_mm(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
    voxel_mm: f64,
) -> f64 {
    let l = peak(truth, mask);
    let mut d = Vec::new();
    for k in (0..truth.len_of(Axis(2))).step_by(2) {
        let m = mask.map(|m| m.index_axis(Axis(2), k));
        slice_displacements(
            &pred.index_axis(Axis(2), k),
            &truth.index_axis(Axis(2), k),
            m.as_ref(),
            0.05 * l,
            &mut d,
        );
    }
    if d.is_empty() {
        return f64::NAN;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2] * voxel_mm
}

/// Sum of squared in-plane forward differences inside the mask.
fn gradient_energy(v: &ArrayView3<'_, f32>, mask: Option<&ArrayView3<'_, f32>>) -> f64 {
    let (nx, ny, nz) = v.dim();
    let mut e = 0.0;
    for k in 0..nz {
        for i in 0..nx.saturating_sub(1) {
            for j in 0..ny.saturating_sub(1) {
                if mask.is_none_or(|m| m[[i, j, k]] > 0.5) {
                    let c = f64::from(v[[i, j, k]]);
                    let gx = f64::from(v[[i + 1, j, k]]) - c;
                    let gy = f64::from(v[[i, j + 1, k]]) - c;
                    e += gx * gx + gy * gy;
                }
            }
        }
    }
    e
}

/// Gradient energy of `pred` relative to `truth`'s (after z-scoring both, so a global
/// intensity scale does not count as sharpness).
pub fn gradient_ratio(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
) -> f64 {
    let (pz, tz) = (zscore(pred, mask), zscore(truth, mask));
    let t = gradient_energy(&tz.view(), mask);
    if t > 0.0 {
        gradient_energy(&pz.view(), mask) / t
    } else {
        f64::NAN
    }
}

/// Every measure of one volume; `source` is the synthesis input on the same grid.
pub fn alignment_metrics(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    source: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
    voxel_mm: f64,
) -> AlignmentMetrics {
    let (mse_z, psnr_z) = zscore_metrics(pred, truth, mask);
    AlignmentMetrics {
        mse_z,
        psnr_z,
        nmi_source_pred: nmi(source, pred, mask, 64),
        nmi_source_truth: nmi(source, truth, mask, 64),
        displacement_mm: residual_displacement_mm(pred, truth, mask, voxel_mm),
        gradient_ratio: gradient_ratio(pred, truth, mask),
    }
}
