//! Instance normalisation (no affine, biased variance, eps 1e-5 like PyTorch) on fp16
//! maps, with fused ReLU or fused residual add. Two passes per channel for the
//! statistics (mean, then centred variance), accumulated in f64 over f32 chunk sums.
//!
//! A channel holding a NaN or an infinity is an error ([`Error::NonFiniteActivation`]),
//! not a silently zeroed channel: a NaN would otherwise vanish in the fused ReLU
//! (`max(NaN, 0) = 0`) and the generator would return finite garbage. The check is free:
//! the channel sum is finite exactly when every (finite, fp16-bounded) value is.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::Error;
use crate::ops::check_len;
use crate::ops::math::sqrt_f64;

/// PyTorch's `InstanceNorm2d` default epsilon.
pub const EPS: f64 = 1e-5;

const CHUNK: usize = 256;

#[inline]
fn sum8(v: &[f32], mut f: impl FnMut(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let mut s = 0.0;
    for &x in it.remainder() {
        s += f(x);
    }
    s + acc.iter().sum::<f32>()
}

/// Mean and `1 / sqrt(var + eps)` of one channel; `NonFiniteActivation` if it holds a
/// NaN or an infinity.
pub(crate) fn channel_stats(ch: &[f16]) -> Result<(f32, f32), Error> {
    let n = ch.len().max(1) as f64;
    let mut buf = [0.0f32; CHUNK];
    let mut s = 0.0f64;
    for c in ch.chunks(CHUNK) {
        let b = &mut buf[..c.len()];
        c.convert_to_f32_slice(b);
        s += sum8(b, |x| x) as f64;
    }
    // fp16 values are at most 65504 in magnitude, so this sum overflows only through an
    // infinity, and it is NaN only through a NaN.
    if !s.is_finite() {
        return Err(Error::NonFiniteActivation);
    }
    let mean = s / n;
    let m32 = mean as f32;
    let mut v = 0.0f64;
    for c in ch.chunks(CHUNK) {
        let b = &mut buf[..c.len()];
        c.convert_to_f32_slice(b);
        v += sum8(b, |x| (x - m32) * (x - m32)) as f64;
    }
    // Correct for using the f32-rounded mean (exact identity for the centred sum).
    let d = mean - m32 as f64;
    let var = (v / n - d * d).max(0.0);
    Ok((m32, (1.0 / sqrt_f64(var + EPS)) as f32))
}

/// `x ← IN(x)` (then ReLU if `relu`), per channel over `channels` planes of `plane` values.
///
/// `BadShape` unless `x.len() == channels · plane` with `plane > 0`;
/// `NonFiniteActivation` if a channel holds a NaN or an infinity (that channel and those
/// after it are left as they were).
pub fn instance_norm(
    x: &mut [f16],
    channels: usize,
    plane: usize,
    relu: bool,
) -> Result<(), Error> {
    if plane == 0 {
        return Err(Error::BadShape);
    }
    check_len(x.len(), &[channels, plane])?;
    let mut buf = [0.0f32; CHUNK];
    for ch in x.chunks_exact_mut(plane) {
        let (mean, rstd) = channel_stats(ch)?;
        for c in ch.chunks_mut(CHUNK) {
            let b = &mut buf[..c.len()];
            c.convert_to_f32_slice(b);
            for v in b.iter_mut() {
                let y = (*v - mean) * rstd;
                *v = if relu { y.max(0.0) } else { y };
            }
            c.convert_from_f32_slice(b);
        }
    }
    Ok(())
}

/// `x ← x + IN(u)` (the end of a residual block), per channel.
///
/// `BadShape` unless `u` and `x` both hold `channels · plane` values with `plane > 0`;
/// `NonFiniteActivation` if a channel of `u` holds a NaN or an infinity.
pub fn instance_norm_residual(
    u: &[f16],
    x: &mut [f16],
    channels: usize,
    plane: usize,
) -> Result<(), Error> {
    if plane == 0 || x.len() != u.len() {
        return Err(Error::BadShape);
    }
    check_len(u.len(), &[channels, plane])?;
    let mut bu = [0.0f32; CHUNK];
    let mut bx = [0.0f32; CHUNK];
    for (uc, xc) in u.chunks_exact(plane).zip(x.chunks_exact_mut(plane)) {
        let (mean, rstd) = channel_stats(uc)?;
        for (us, xs) in uc.chunks(CHUNK).zip(xc.chunks_mut(CHUNK)) {
            let n = us.len();
            us.convert_to_f32_slice(&mut bu[..n]);
            xs.convert_to_f32_slice(&mut bx[..n]);
            for (xv, &uv) in bx[..n].iter_mut().zip(&bu[..n]) {
                *xv += (uv - mean) * rstd;
            }
            xs.convert_from_f32_slice(&bx[..n]);
        }
    }
    Ok(())
}
