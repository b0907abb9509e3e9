//! Image-similarity metrics of a synthesized volume against its ground truth.
//!
//! - MSE: mean of squared differences.
//! - PSNR: `10·log10(peak² / MSE)`, peak = the ground truth's dynamic range (max − min);
//!   identical volumes give +∞ (reported as such, never a crash or NaN).
//! - Global SSIM (the paper's): the SSIM formula applied once to the whole volume,
//!   `(2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`, C1 = (0.01 L)², C2 = (0.03 L)²,
//!   L = peak.
//! - Windowed SSIM (Wang et al. 2004): Gaussian window 11×11, σ 1.5, per axial slice,
//!   averaged over all window centres whose 11×11 window fits in the slice ("valid").
//!
//! Every metric takes an optional mask: only voxels inside it count (for the windowed SSIM,
//! window *centres* inside it; the windows themselves see the whole slice).

use ndarray::{Array2, ArrayView2, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

/// The metrics of one volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VolumeMetrics {
    /// Mean squared error.
    pub mse: f64,
    /// Peak signal-to-noise ratio (dB); +∞ for identical volumes.
    #[serde(with = "inf_as_string")]
    pub psnr: f64,
    /// Global SSIM (the paper's formula over the whole volume).
    #[serde(with = "inf_as_string")]
    pub ssim_global: f64,
    /// Windowed Gaussian SSIM (11, σ 1.5), mean over slices' windows; NaN when no window
    /// fits.
    #[serde(with = "inf_as_string")]
    pub ssim_window: f64,
    /// Voxels counted.
    pub voxels: usize,
}

/// Serialises ±∞ and NaN as the strings "inf", "-inf", "nan" (JSON has no infinities).
pub mod inf_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the number, or "inf"/"-inf"/"nan".
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    /// Reads a number or one of the strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum N {
            F(f64),
            S(String),
        }
        match N::deserialize(d)? {
            N::F(f) => Ok(f),
            N::S(s) => match s.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Ok(f64::NAN),
            },
        }
    }
}

/// The `(x, y)` value pairs of the voxels inside the mask (all without one), as f64.
pub(crate) fn selected(
    x: &ArrayView3<'_, f32>,
    y: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
) -> Vec<(f64, f64)> {
    let mut v = Vec::with_capacity(x.len());
    match mask {
        Some(m) => Zip::from(x).and(y).and(m).for_each(|&a, &b, &c| {
            if c > 0.5 {
                v.push((f64::from(a), f64::from(b)));
            }
        }),
        None => Zip::from(x)
            .and(y)
            .for_each(|&a, &b| v.push((f64::from(a), f64::from(b)))),
    }
    v
}

/// Mean squared error (0 for no voxels).
pub fn mse(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for (a, b) in selected(pred, truth, mask) {
        s += (a - b) * (a - b);
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// The ground truth's dynamic range (max − min) over the selected voxels.
pub fn peak(truth: &ArrayView3<'_, f32>, mask: Option<&ArrayView3<'_, f32>>) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, b) in selected(truth, truth, mask) {
        lo = lo.min(b);
        hi = hi.max(b);
    }
    if hi > lo {
        hi - lo
    } else {
        1.0
    }
}

/// PSNR (dB) from an MSE and a peak: +∞ when the MSE is 0.
pub fn psnr_from(mse: f64, peak: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (peak * peak / mse).log10()
    }
}

/// The SSIM formula on moments.
pub fn ssim_formula(mx: f64, my: f64, vx: f64, vy: f64, cxy: f64, l: f64) -> f64 {
    let c1 = (0.01 * l).powi(2);
    let c2 = (0.03 * l).powi(2);
    ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
}

/// Global SSIM over the selected voxels (population variances), dynamic range `l`.
pub fn ssim_global(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
    l: f64,
) -> f64 {
    let sel = selected(pred, truth, mask);
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
    for &(a, b) in &sel {
        sx += a;
        sy += b;
        n += 1;
    }
    if n == 0 {
        return 1.0;
    }
    let (mx, my) = (sx / n as f64, sy / n as f64);
    let (mut vx, mut vy, mut cxy) = (0.0, 0.0, 0.0);
    for &(a, b) in &sel {
        vx += (a - mx) * (a - mx);
        vy += (b - my) * (b - my);
        cxy += (a - mx) * (b - my);
    }
    let nf = n as f64;
    ssim_formula(mx, my, vx / nf, vy / nf, cxy / nf, l)
}

/// The normalised 1D Gaussian window (size `size`, σ `sigma`).
pub fn gaussian_window(size: usize, sigma: f64) -> Vec<f64> {
    let c = (size as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Separable "valid" filtering of a slice with a 1D window along both axes.
fn filter_valid(x: &Array2<f64>, w: &[f64]) -> Array2<f64> {
    let (nx, ny) = x.dim();
    let k = w.len();
    if nx < k || ny < k {
        return Array2::zeros((0, 0));
    }
    let a = Array2::from_shape_fn((nx - k + 1, ny), |(i, j)| {
        (0..k).map(|t| w[t] * x[[i + t, j]]).sum::<f64>()
    });
    Array2::from_shape_fn((nx - k + 1, ny - k + 1), |(i, j)| {
        (0..k).map(|t| w[t] * a[[i, j + t]]).sum::<f64>()
    })
}

/// SSIM map of one slice ("valid" region: centres at least size/2 from the border), and the
/// offset of its first centre.
pub fn ssim_map(
    x: &ArrayView2<'_, f32>,
    y: &ArrayView2<'_, f32>,
    l: f64,
    size: usize,
    sigma: f64,
) -> (Array2<f64>, usize) {
    let w = gaussian_window(size, sigma);
    let xf = x.mapv(f64::from);
    let yf = y.mapv(f64::from);
    let mx = filter_valid(&xf, &w);
    let my = filter_valid(&yf, &w);
    let xx = filter_valid(&(&xf * &xf), &w);
    let yy = filter_valid(&(&yf * &yf), &w);
    let xy = filter_valid(&(&xf * &yf), &w);
    let mut out = Array2::zeros(mx.dim());
    for ((i, j), o) in out.indexed_iter_mut() {
        let (a, b) = (mx[[i, j]], my[[i, j]]);
        *o = ssim_formula(
            a,
            b,
            xx[[i, j]] - a * a,
            yy[[i, j]] - b * b,
            xy[[i, j]] - a * b,
            l,
        );
    }
    (out, size / 2)
}

/// Windowed SSIM of a volume: Gaussian 11 / σ 1.5 on every axial slice; the mean over all
/// valid window centres (inside the mask when given). Slices smaller than the window are
/// skipped; with no centre at all the result is NaN.
pub fn ssim_windowed(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
    l: f64,
) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for k in 0..pred.len_of(Axis(2)) {
        let (map, off) = ssim_map(
            &pred.index_axis(Axis(2), k),
            &truth.index_axis(Axis(2), k),
            l,
            11,
            1.5,
        );
        for ((i, j), v) in map.indexed_iter() {
            if mask.is_none_or(|m| m[[i + off, j + off, k]] > 0.5) {
                s += v;
                n += 1;
            }
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// All metrics of one volume. Shapes must match (checked by the caller).
pub fn volume_metrics(
    pred: &ArrayView3<'_, f32>,
    truth: &ArrayView3<'_, f32>,
    mask: Option<&ArrayView3<'_, f32>>,
) -> VolumeMetrics {
    let l = peak(truth, mask);
    let m = mse(pred, truth, mask);
    let voxels = mask.map_or(truth.len(), |mk| mk.iter().filter(|&&v| v > 0.5).count());
    VolumeMetrics {
        mse: m,
        psnr: psnr_from(m, l),
        ssim_global: ssim_global(pred, truth, mask, l),
        ssim_window: ssim_windowed(pred, truth, mask, l),
        voxels,
    }
}

/// Mean and sample standard deviation (n − 1; 0 for one value). Infinite values propagate
/// (a mean PSNR over identical volumes is +∞).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() == 1 || !m.is_finite() {
        return (m, if m.is_finite() { 0.0 } else { f64::NAN });
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}
