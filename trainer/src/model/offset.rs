//! The offset layer (DESIGN §2, "ConvOffset2D" form): a 3×3 'same' (zero-padded) conv
//! `C → 2C` predicts, per input channel `c` and pixel, a row offset `dy` (output channel
//! `2c`) and a column offset `dx` (channel `2c + 1`) in feature-map pixels; channel `c` is then
//! resampled bilinearly at `(y + dy, x + dx)` with coordinates clamped to the border.
//!
//! Resampling goes through `grid_sampler_2d` (bilinear, border padding, `align_corners =
//! true`): with `align_corners` the normalised coordinate `-1 + 2·x/(W − 1)` maps back to
//! exactly pixel `x`, and border padding clamps the unnormalised coordinate to
//! `[0, W − 1]` *before* the bilinear weights are taken — "clamp, then bilinear", the same as
//! the core. A zero offset therefore reproduces the input (up to float rounding of the
//! normalisation, < 1e-6 relative).

use tch::nn::Path;
use tch::{Kind, Tensor};

use super::init::{conv_params, Conv};

/// One offset layer over `channels` feature channels.
#[derive(Debug)]
pub struct OffsetLayer {
    /// Number of channels it resamples.
    pub channels: i64,
    /// The offset-predicting conv: weight `[2C, C, 3, 3]`, bias `[2C]`.
    pub conv: Conv,
}

impl OffsetLayer {
    /// Creates the layer's conv under `path` (`<path>.weight`, `<path>.bias`).
    pub fn new(path: &Path, channels: i64, std: f64) -> OffsetLayer {
        let conv = conv_params(path, [2 * channels, channels, 3, 3], 2 * channels, std);
        OffsetLayer { channels, conv }
    }

    /// The predicted offsets `[N, 2C, H, W]` (channel `2c` = dy, `2c + 1` = dx).
    pub fn offsets(&self, x: &Tensor) -> Tensor {
        super::conv2d(x, &self.conv.weight, &self.conv.bias, 1, 1)
    }

    /// Predicts the offsets and resamples `x` `[N, C, H, W]` there.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        resample(x, &self.offsets(x))
    }
}

/// Resamples every channel of `x` `[N, C, H, W]` at its own per-pixel offsets
/// `offsets` `[N, 2C, H, W]` (channel `2c` = dy rows, `2c + 1` = dx columns, in pixels):
/// `out[n, c, y, x] = bilinear(x[n, c], clamp(y + dy), clamp(x + dx))`.
pub fn resample(x: &Tensor, offsets: &Tensor) -> Tensor {
    let (n, c, h, w) = x.size4().expect("resample: input must be [N, C, H, W]");
    let per_channel = offsets.reshape([n * c, 2, h, w]);
    let dy = per_channel.select(1, 0);
    let dx = per_channel.select(1, 1);
    // Pixel → normalised scale with align_corners = true (a 1-pixel axis has no extent).
    let scale = |len: i64| if len > 1 { 2.0 / (len - 1) as f64 } else { 0.0 };
    let (base_x, base_y) = base_grid(h, w, x.device());
    let gx = dx * scale(w) + base_x;
    let gy = dy * scale(h) + base_y;
    let grid = Tensor::stack(&[gx, gy], -1); // [N·C, H, W, 2] as (x, y)
    let input = x.reshape([n * c, 1, h, w]);
    // interpolation 0 = bilinear, padding 1 = border, align_corners = true.
    input
        .grid_sampler_2d(&grid, 0, 1, true)
        .reshape([n, c, h, w])
}

/// The identity grid in normalised coordinates (`align_corners = true`): `(x, y)` each
/// `[H, W]`.
fn base_grid(h: i64, w: i64, device: tch::Device) -> (Tensor, Tensor) {
    let axis = |len: i64| {
        if len > 1 {
            Tensor::arange(len, (Kind::Float, device)) * (2.0 / (len - 1) as f64) - 1.0
        } else {
            Tensor::zeros([1], (Kind::Float, device))
        }
    };
    let xs = axis(w).view([1, w]).expand([h, w], false);
    let ys = axis(h).view([h, 1]).expand([h, w], false);
    (xs, ys)
}
