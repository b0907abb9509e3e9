//! Scalar math for `no_std`: `tanh` on `micromath`'s `exp` (docs/DESIGN.md §3.2), and a
//! hand-written `sqrt_f64` where `micromath` is not accurate enough.
//!
//! `micromath` 2.1 has no `tanh`; it has `exp` (a 4-term series on the reduced argument)
//! and `sqrt`/`invsqrt` (exponent bit tricks). Measured against f64 on a 2,000,001-point
//! grid (a throwaway program, numbers kept here):
//!
//! | function | range | max error |
//! |---|---|---|
//! | `micromath` `exp` | [-20, 20] | 2.4e-3 relative |
//! | [`tanh`] below (`1 − 2/(exp(2|x|) + 1)` on that `exp`) | [-10, 10] | 3.4e-4 absolute (at \|x\| ≈ 0.35), 1.4e-3 relative |
//! | the same with `(e − 1)/(e + 1)` | [-10, 10] | 1.1e-3 absolute |
//! | `micromath` `sqrt` | [1e-5, 1e4] | 6.1e-2 relative |
//! | `micromath` `invsqrt` | [1e-5, 1e4] | 3.4e-2 relative |
//!
//! The end-to-end budget against libtorch is max abs 3e-2 and rel L2 1e-2 on the tanh
//! output; tanh runs once per output pixel (the head), so its 3.4e-4 absolute error is
//! about 1% of the first and at most 14% of the second: `micromath` is accurate enough
//! there. Measured end to end (`core/tests/generator.rs`, six shapes, both passes, against
//! the f64 reference): switching from a ~1e-7 tanh to this one moved rel L2 by at most
//! 3e-5 (worst case 3.2e-3 either way) and max abs by at most 2.7e-4 (worst 5.8e-3). The instance norm's `1/sqrt(var + eps)` scales whole channels, so a 3–6% error
//! would alone exceed the budget: [`sqrt_f64`] stays hand-written (Newton in f64, full
//! precision, and the statistics are f64 anyway, which `micromath` does not cover).

use micromath::F32Ext;

/// Largest absolute error of [`tanh`] against the exact value over all finite `x`
/// (measured: 3.34e-4 at |x| ≈ 0.35, from `micromath`'s `exp`); tests use it as their
/// tolerance.
#[cfg(feature = "internals")]
pub const TANH_MAX_ABS_ERROR: f32 = 3.5e-4;

/// Hyperbolic tangent: `1 − 2/(e^{2|x|} + 1)` with `micromath`'s `exp`, odd by
/// construction, within [`TANH_MAX_ABS_ERROR`] of the exact value; NaN stays NaN.
///
/// The `1 − 2/(e + 1)` form avoids the cancellation of `(e − 1)/(e + 1)` (3× smaller
/// error, see the module table). Outside `micromath`'s accurate range it is not used:
/// tiny `|x|` return `x` (tanh x = x − x³/3: exact to f32 below 1e-4, where
/// `exp(2x) − 1` would have lost every digit) and `|x| > 10` return ±1 (tanh 10 rounds
/// to 1 in f32), which also covers infinities without asking `exp` about them.
#[inline]
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let ax = F32Ext::abs(x);
    let y = if ax > 10.0 {
        1.0
    } else if ax < 1e-4 {
        ax
    } else {
        1.0 - 2.0 / (F32Ext::exp(2.0 * ax) + 1.0)
    };
    F32Ext::copysign(y, x)
}

/// Square root of a non-negative finite f64 by Newton's method (full precision); 0 for
/// non-positive or NaN input.
#[inline]
pub fn sqrt_f64(x: f64) -> f64 {
    // `!(x > 0)` also catches NaN.
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x.is_infinite() {
        return x;
    }
    // Initial guess from halving the exponent: within a factor ~1.06.
    let mut y = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        y = 0.5 * (y + x / y);
    }
    y
}
