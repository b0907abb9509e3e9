//! The offset layer (docs/DESIGN.md §2.2, "ConvOffset2D" form): a 3×3 'same' (zero-padded) conv
//! `C → 2C` predicts, per input channel `c` and pixel, a row offset `dy` (output channel
//! `2c`) and a column offset `dx` (channel `2c + 1`) in feature-map pixels; channel `c` is then
//! resampled bilinearly at `(y + dy, x + dx)` with coordinates clamped to the border.
//!
//! Resampling goes through `grid_sampler_2d` (bilinear, border padding, `align_corners =
//! false`). Border padding clamps the *pixel* coordinate to `[0, W − 1]` before the bilinear
//! weights are taken in either `align_corners` mode — "clamp, then bilinear", the core's rule —
//! so `align_corners` only chooses how a pixel coordinate is written in `[-1, 1]`; it is
//! chosen so that a zero offset is the exact identity:
//!
//! * libtorch unnormalises in f32, `align_corners = false`: `(g + 1) · (W / 2) − 0.5` (CPU
//!   vector kernel, `cpu/GridSamplerKernel.cpp`) or `((g + 1) · W − 1) / 2` (scalar CPU
//!   fallback and CUDA, `GridSampler.h` / `GridSampler.cuh`), each possibly with the multiply
//!   and subtract fused (FMA). [`base_coordinate`] searches the f32 values next to
//!   `(2x + 1)/W − 1` for one that all four variants map to exactly `x`; then the sample lands
//!   on the pixel, its bilinear weights are exactly (1, 0, 0, 0) and the value is copied bit
//!   for bit.
//! * Such a value exists for every pixel when `W` is a power of two (so for every feature map
//!   of a power-of-two image: 128, 64, 32, …) and for `W` ∈ {3, 5, 6, 10, 12}; for the other
//!   sides (checked for all `W` ≤ 1024, [`zero_offset_is_exact`]) some pixels have none and get
//!   the nearest, at most 2⁻¹⁵ px off (a value error of at most 3.1e-5 × the difference to the
//!   neighbouring pixel). Tested in `trainer/tests/model.rs`.
//! * `align_corners = true` (`(g + 1) · (W − 1)/2`) cannot do this: below 1024 only sides 1–5,
//!   9, 12, 17, 32–34, 65, 129, 252, 257, 513, 602 and 754 have an exact coordinate for every
//!   pixel — never 64, 128 or 256.

use std::cell::RefCell;
use std::collections::HashMap;

use tch::nn::Path;
use tch::{Device, Tensor};

use super::init::{conv_params, Conv};

/// `grid_sampler_2d`'s `align_corners`: see the module documentation for why it is false.
const ALIGN_CORNERS: bool = false;

/// What an offset layer predicts per pixel: the core's type, so a checkpoint's form is the
/// weight file's.
pub use dicyc_core::OffsetForm;

/// One offset layer over `channels` feature channels.
#[derive(Debug)]
pub struct OffsetLayer {
    /// Number of channels it resamples.
    pub channels: i64,
    /// Per-channel or shared displacement fields.
    pub form: OffsetForm,
    /// The offset-predicting conv: weight `[2F, C, 3, 3]`, bias `[2F]`, with `F` fields
    /// ([`OffsetForm::fields`]).
    pub conv: Conv,
}

impl OffsetLayer {
    /// Creates the layer's conv under `path` (`<path>.weight`, `<path>.bias`).
    pub fn new(path: &Path, channels: i64, form: OffsetForm, std: f64) -> OffsetLayer {
        // `channels` ≤ 4·ngf of a validated configuration: it fits the core's `u32`.
        let fields = form.fields(u32::try_from(channels).unwrap_or(u32::MAX));
        let out = 2 * i64::from(fields);
        let conv = conv_params(path, [out, channels, 3, 3], out, std);
        OffsetLayer {
            channels,
            form,
            conv,
        }
    }

    /// The predicted offsets `[N, 2F, H, W]` (channel `2f` = dy, `2f + 1` = dx of field `f`).
    pub fn offsets(&self, x: &Tensor) -> Tensor {
        super::conv2d(x, &self.conv.weight, &self.conv.bias, 1, 1)
    }

    /// Predicts the offsets and resamples `x` `[N, C, H, W]` there.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        resample(x, &self.offsets(x))
    }
}

/// Resamples every channel of `x` `[N, C, H, W]` at per-pixel offsets `offsets`
/// `[N, 2C, H, W]` (channel `2c` = dy rows, `2c + 1` = dx columns of channel `c`, in pixels)
/// or `[N, 2, H, W]` (one field for all channels):
/// `out[n, c, y, x] = bilinear(x[n, c], clamp(y + dy), clamp(x + dx))`.
pub fn resample(x: &Tensor, offsets: &Tensor) -> Tensor {
    let (n, c, h, w) = x.size4().expect("resample: input must be [N, C, H, W]");
    let per_channel = if offsets.size()[1] == 2 && c > 1 {
        offsets
            .unsqueeze(1)
            .expand([n, c, 2, h, w], false)
            .reshape([n * c, 2, h, w])
    } else {
        offsets.reshape([n * c, 2, h, w])
    };
    let dy = per_channel.select(1, 0);
    let dx = per_channel.select(1, 1);
    // One pixel is 2/len in normalised coordinates (align_corners = false). A zero offset
    // adds exactly 0, so the grid is then the base grid bit for bit.
    let scale = |len: i64| 2.0 / len as f64;
    let gx = dx * scale(w) + base_axis_tensor(w, x.device()).view([1, 1, w]);
    let gy = dy * scale(h) + base_axis_tensor(h, x.device()).view([1, h, 1]);
    let grid = Tensor::stack(&[gx, gy], -1); // [N·C, H, W, 2] as (x, y)
    let input = x.reshape([n * c, 1, h, w]);
    // interpolation 0 = bilinear, padding 1 = border.
    input
        .grid_sampler_2d(&grid, 0, 1, ALIGN_CORNERS)
        .reshape([n, c, h, w])
}

/// The pixel coordinate libtorch computes from the normalised `g` on an axis of `len`
/// pixels (`align_corners = false`, border clamp), by each of its f32 formulas: the CPU
/// vector kernel's `(g + 1)·(len/2) − 0.5` and the scalar/CUDA `((g + 1)·len − 1)/2`, each
/// unfused and with an FMA.
fn unnormalised(g: f32, len: i64) -> [f32; 4] {
    let s = g + 1.0;
    let size = len as f32;
    let half = size / 2.0;
    let clamp = |v: f32| v.max(0.0).min((len - 1) as f32);
    [
        clamp(s * half - 0.5),
        clamp((s * size - 1.0) / 2.0),
        clamp(s.mul_add(half, -0.5)),
        clamp(s.mul_add(size, -1.0) / 2.0),
    ]
}

/// The next f32 towards +∞ (`f32::next_up` needs Rust 1.86; the crate supports 1.85).
fn next_up(v: f32) -> f32 {
    if v == 0.0 {
        f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() + 1)
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

/// How far from the ideal value [`base_coordinate`] looks, in f32 steps each way (exact
/// coordinates lie within 2 steps for every side up to 1024).
const SEARCH_STEPS: usize = 4;

/// The normalised coordinate of pixel `x` on an axis of `len` pixels, and whether it is
/// exact: the f32 `g` nearest `(2x + 1)/len − 1` that every libtorch formula
/// ([`unnormalised`]) maps to exactly `x`, or, when there is none, the one closest to `x`
/// over all formulas.
pub fn base_coordinate(x: i64, len: i64) -> (f32, bool) {
    let ideal = ((2 * x + 1) as f64 / len as f64 - 1.0) as f32;
    let target = x as f32;
    let error = |g: f32| {
        unnormalised(g, len)
            .iter()
            .map(|&v| (v - target).abs())
            .fold(0.0f32, f32::max)
    };
    // Candidates ordered by distance from the ideal value: ideal, +1, −1, +2, −2, …
    let (mut up, mut down) = (ideal, ideal);
    let mut candidates = vec![ideal];
    for _ in 0..SEARCH_STEPS {
        up = next_up(up);
        down = -next_up(-down);
        candidates.extend([up, down]);
    }
    let mut best = (ideal, f32::INFINITY);
    for g in candidates {
        let e = error(g);
        if e == 0.0 {
            return (g, true);
        }
        if e < best.1 {
            best = (g, e);
        }
    }
    (best.0, false)
}

/// The base (zero-offset) normalised coordinates of an axis of `len` pixels.
pub fn base_axis(len: i64) -> Vec<f32> {
    (0..len).map(|x| base_coordinate(x, len).0).collect()
}

/// Whether a zero offset reproduces every pixel of an axis of `len` exactly (see the module
/// documentation: true for powers of two and 3, 5, 6, 10, 12 among the sides up to 1024).
pub fn zero_offset_is_exact(len: i64) -> bool {
    (0..len).all(|x| base_coordinate(x, len).1)
}

thread_local! {
    /// Base axes already on a device, by `(len, device)`: computed on the host once, so a
    /// forward pass does no host → device copy (which would wait for the device).
    static BASE_AXES: RefCell<HashMap<(i64, Device), Tensor>> = RefCell::new(HashMap::new());
}

/// [`base_axis`] as a `[len]` f32 tensor on `device` (cached).
fn base_axis_tensor(len: i64, device: Device) -> Tensor {
    BASE_AXES.with(|cache| {
        cache
            .borrow_mut()
            .entry((len, device))
            .or_insert_with(|| Tensor::from_slice(&base_axis(len)).to_device(device))
            .shallow_clone()
    })
}
