//! Accurate scalar math for `no_std`: `exp`, `tanh`, `sqrt`.
//!
//! `micromath` (the crate DESIGN §3 suggests) has no `tanh`, and its `exp` is a 4-term
//! series on the reduced argument (≈1e-3 relative error); a tanh built on it would add
//! error for no gain. These take a few lines, are branch-light and accurate to ~1 ulp of
//! f32 (the polynomial runs in f64).

/// `e^x` for `|x| ≤ 80` (no overflow handling beyond that), in f64.
#[inline]
fn exp_f64_small(x: f64) -> f64 {
    const LOG2E: f64 = core::f64::consts::LOG2_E;
    const LN2: f64 = core::f64::consts::LN_2;
    let t = x * LOG2E;
    // round to nearest: t + 0.5 then truncate towards -inf for the sign-correct floor
    let n = floor_f64(t + 0.5);
    let r = x - n * LN2; // |r| ≤ ln2/2
                         // Taylor to degree 9 on |r| ≤ 0.347: truncation error < 1e-11 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0
                            + r * (1.0 / 720.0
                                + r * (1.0 / 5040.0 + r * (1.0 / 40320.0 + r / 362880.0))))))));
    let bits = ((n as i64 + 1023) as u64) << 52;
    p * f64::from_bits(bits)
}

#[inline]
fn floor_f64(x: f64) -> f64 {
    let t = x as i64 as f64; // truncation (saturating for huge values; callers bound |x|)
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// Hyperbolic tangent, accurate to ~1e-7 absolute over all finite `x`; NaN stays NaN.
#[inline]
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff) as f64;
    let y = if ax > 10.0 {
        1.0
    } else if ax < 1e-4 {
        ax
    } else {
        // tanh(a) = (e^{2a} − 1)/(e^{2a} + 1)
        let e = exp_f64_small(2.0 * ax);
        (e - 1.0) / (e + 1.0)
    };
    let y = y as f32;
    if x.is_sign_negative() {
        -y
    } else {
        y
    }
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
