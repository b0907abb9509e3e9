//! Training augmentation: random flips, rotation, shear and translation, applied together
//! with the crop/pad to the training size in one bilinear resampling.

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::resample::{bilinear, Outside};

/// Augmentation settings (all draws uniform in ±the given bound).
///
/// `#[serde(default, deny_unknown_fields)]`: a partial table (e.g.
/// `[data.preprocess.augment]` with only `rotate_deg`) takes the defaults below for every
/// field it leaves out; a misspelt key is an error, not a silent default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentOptions {
    /// Apply augmentation at all.
    pub enabled: bool,
    /// Probability of a flip along the first voxel axis (left–right in RAS data).
    pub flip_x: f64,
    /// Probability of a flip along the second voxel axis.
    pub flip_y: f64,
    /// Largest rotation (degrees).
    pub rotate_deg: f64,
    /// Largest shear (fraction).
    pub shear: f64,
    /// Largest translation (pixels of the working grid).
    pub translate: f64,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            flip_x: 0.5,
            flip_y: 0.0,
            rotate_deg: 10.0,
            shear: 0.05,
            translate: 8.0,
        }
    }
}

impl AugmentOptions {
    /// No augmentation.
    pub fn none() -> Self {
        Self {
            enabled: false,
            flip_x: 0.0,
            flip_y: 0.0,
            rotate_deg: 0.0,
            shear: 0.0,
            translate: 0.0,
        }
    }
}

/// Crops/pads `s` to `size` around its centre, with a random augmentation drawn from `rng`
/// when enabled (a fixed number of draws per call, so sequences stay reproducible).
pub fn augment_to_size(
    s: &ArrayView2<'_, f32>,
    size: (usize, usize),
    fill: f32,
    opts: &AugmentOptions,
    rng: &mut ChaCha8Rng,
) -> Array2<f32> {
    let (nx, ny) = s.dim();
    let (cs, co) = (
        [(nx / 2) as f64, (ny / 2) as f64],
        [(size.0 / 2) as f64, (size.1 / 2) as f64],
    );
    if !opts.enabled {
        return Array2::from_shape_fn(size, |(i, j)| {
            bilinear(
                s,
                cs[0] + i as f64 - co[0],
                cs[1] + j as f64 - co[1],
                Outside::Value(fill),
            )
        });
    }
    let u = |rng: &mut ChaCha8Rng| rng.gen_range(-1.0..=1.0f64);
    let fx = if rng.gen_bool(opts.flip_x.clamp(0.0, 1.0)) {
        -1.0
    } else {
        1.0
    };
    let fy = if rng.gen_bool(opts.flip_y.clamp(0.0, 1.0)) {
        -1.0
    } else {
        1.0
    };
    let th = u(rng) * opts.rotate_deg.to_radians();
    let sh = u(rng) * opts.shear;
    let t = [u(rng) * opts.translate, u(rng) * opts.translate];
    let (c, sn) = (th.cos(), th.sin());
    // source = cs + R · Sh · F · (p − co) + t
    let m = [[c, -sn], [sn, c]];
    let shf = [[fx, sh * fy], [0.0, fy]];
    let a = [
        [
            m[0][0] * shf[0][0] + m[0][1] * shf[1][0],
            m[0][0] * shf[0][1] + m[0][1] * shf[1][1],
        ],
        [
            m[1][0] * shf[0][0] + m[1][1] * shf[1][0],
            m[1][0] * shf[0][1] + m[1][1] * shf[1][1],
        ],
    ];
    Array2::from_shape_fn(size, |(i, j)| {
        let (dx, dy) = (i as f64 - co[0], j as f64 - co[1]);
        let x = cs[0] + a[0][0] * dx + a[0][1] * dy + t[0];
        let y = cs[1] + a[1][0] * dx + a[1][1] * dy + t[1];
        bilinear(s, x, y, Outside::Value(fill))
    })
}
