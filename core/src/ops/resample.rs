//! The offset layer: a 3×3 'same' zero-padded conv `C → 2F` predicting `F` displacement
//! fields, one per channel (`F = C`) or one shared by all (`F = 1`), each `(dy, dx)` per
//! pixel (channel `2f` = dy, `2f + 1` = dx, in pixels), then bilinear resampling of channel
//! `c` at `(y + dy, x + dx)` of its field, with coordinates clamped to `[0, size − 1]`
//! (what the trainer's `grid_sampler_2d` with border padding computes).
//!
//! Offsets are never materialised for the whole map: they are computed a few rows at a
//! time into an f32 strip. [`OffsetSource`] feeds a following convolution directly (rows
//! resampled on demand into a small ring buffer), so the resampled map never exists in
//! full either.

use half::f16;

use crate::error::Error;
use crate::ops::conv::{
    conv_rows, Activation, ConvGeom, Dst, Elem, MapSource, Padding, RowSource, StoreElem,
};

/// The offset-predicting conv of a layer over `c` channels of an `h × w` map with `fields`
/// displacement fields (`c` or 1; `None` for an impossible shape, `2 · fields` overflowing
/// included).
pub(crate) fn offset_geom(c: usize, fields: usize, h: usize, w: usize) -> Option<ConvGeom> {
    if fields != c && fields != 1 {
        return None;
    }
    ConvGeom::conv(c, fields.checked_mul(2)?, h, w, 3, 1, 1, Padding::Zero)
}

/// The field channel `c` moves with when there are `fields` of them (`c`, or the one shared).
#[inline]
fn field_of(c: usize, fields: usize) -> usize {
    if fields == 1 {
        0
    } else {
        c
    }
}

/// Output rows of the offset conv computed per step.
pub(crate) fn offset_chunk(g: &ConvGeom) -> usize {
    g.tile_rows()
}

/// `f32`s of the offset strip (`2F × chunk × W`).
pub(crate) fn offs_len(g: &ConvGeom) -> usize {
    g.cout * offset_chunk(g) * g.out_w
}

/// Bilinear sample of `x` channel `c` at `(sy, sx)` with border clamping.
#[inline]
fn sample<T: Elem>(x: &MapSource<'_, T>, c: usize, sy: f32, sx: f32) -> f32 {
    let hm = (x.h - 1) as f32;
    let wm = (x.w - 1) as f32;
    // Callers pass finite coordinates (`resample_rows` rejects non-finite offsets); should
    // a NaN reach here anyway, `max`/`min` drop it and the sample stays in bounds.
    let sy = sy.max(0.0).min(hm);
    let sx = sx.max(0.0).min(wm);
    let y0 = (sy as usize).min(x.h - 1);
    let x0 = (sx as usize).min(x.w - 1);
    let wy = sy - y0 as f32;
    let wx = sx - x0 as f32;
    let y1 = (y0 + 1).min(x.h - 1);
    let x1 = (x0 + 1).min(x.w - 1);
    let v00 = x.at(c, y0, x0);
    let v01 = x.at(c, y0, x1);
    let v10 = x.at(c, y1, x0);
    let v11 = x.at(c, y1, x1);
    (1.0 - wy) * ((1.0 - wx) * v00 + wx * v01) + wy * ((1.0 - wx) * v10 + wx * v11)
}

/// Resamples rows `y0..y0 + n` of every channel of `x` with the offsets `offs` of `fields`
/// fields (`channels` or 1; laid out `[2F][chunk][W]`, row `y` at `y − y0`), writing row
/// `y` of channel `c` to `out[c · chan_stride + slot(y) · W ..][..W]`.
///
/// A NaN or infinite offset is [`Error::NonFiniteActivation`]: clamping would turn it
/// into a finite border sample (NaN → coordinate 0), a wrong answer returned as `Ok`.
/// The offsets are stored as f32 (no fp16 saturation), so NaN or infinite offset-conv
/// weights or biases reach here as they are.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resample_rows<T: Elem, D: StoreElem>(
    x: &MapSource<'_, T>,
    channels: usize,
    fields: usize,
    offs: &[f32],
    chunk: usize,
    y0: usize,
    n: usize,
    out: &mut [D],
    chan_stride: usize,
    slot: impl Fn(usize) -> usize,
) -> Result<(), Error> {
    let w = x.w;
    if fields != channels && fields != 1 {
        return Err(Error::Internal);
    }
    for c in 0..channels {
        let f = field_of(c, fields);
        for r in 0..n {
            let y = y0 + r;
            let sy = ((2 * f) * chunk + r) * w;
            let sx = ((2 * f + 1) * chunk + r) * w;
            let dy = offs.get(sy..sy + w).ok_or(Error::Internal)?;
            let dx = offs.get(sx..sx + w).ok_or(Error::Internal)?;
            // One pass per row: cheap next to the four-tap bilinear sample per pixel.
            if !dy.iter().chain(dx).all(|v| v.is_finite()) {
                return Err(Error::NonFiniteActivation);
            }
            let start = c * chan_stride + slot(y) * w;
            let dst = out.get_mut(start..start + w).ok_or(Error::Internal)?;
            for (xx, ((d, &oy), &ox)) in dst.iter_mut().zip(dy).zip(dx).enumerate() {
                *d = D::from_f32(sample(x, c, y as f32 + oy, xx as f32 + ox));
            }
        }
    }
    Ok(())
}

/// Work buffers of the offset conv.
pub(crate) struct OffsetWork<'a> {
    /// Packed offset-conv weights (already packed by the caller).
    pub a: &'a [f32],
    /// f32 LE bias bytes.
    pub bias: &'a [u8],
    pub prow: &'a mut [f32],
    pub offs: &'a mut [f32],
}

/// Computes offsets for rows `y0..y1` in chunks (GEMM buffers `b` and `c`, see
/// [`ConvGeom::parts`]) and resamples them into `out`.
#[allow(clippy::too_many_arguments)]
fn offsets_and_resample<T: Elem, D: StoreElem>(
    g: &ConvGeom,
    x: &MapSource<'_, T>,
    work: &mut OffsetWork<'_>,
    b: &mut [f32],
    c: &mut [f32],
    y0: usize,
    y1: usize,
    out: &mut [D],
    chan_stride: usize,
    slot: &impl Fn(usize) -> usize,
) -> Result<(), Error> {
    let chunk = offset_chunk(g);
    let mut y = y0;
    while y < y1 {
        let e = (y + chunk).min(y1);
        let mut plain = *x;
        let mut dst = Dst {
            data: &mut *work.offs,
            chan_stride: chunk * g.out_w,
            row_stride: g.out_w,
            row_origin: y,
        };
        conv_rows(
            g,
            &mut plain,
            work.a,
            work.bias,
            Activation::None,
            y..e,
            &mut *b,
            work.prow,
            &mut *c,
            &mut dst,
        )?;
        resample_rows(
            x,
            g.cin,
            g.cout / 2,
            work.offs,
            chunk,
            y,
            e - y,
            out,
            chan_stride,
            slot,
        )?;
        y = e;
    }
    Ok(())
}

/// The whole offset layer, materialised: resamples all of `x` into `out` (same shape).
pub(crate) fn offset_layer_full<T: Elem, D: StoreElem>(
    g: &ConvGeom,
    x: &MapSource<'_, T>,
    work: &mut OffsetWork<'_>,
    b: &mut [f32],
    c: &mut [f32],
    out: &mut [D],
) -> Result<(), Error> {
    let plane = x.h * x.w;
    offsets_and_resample(g, x, work, b, c, 0, x.h, out, plane, &|y| y)
}

/// A [`RowSource`] that yields the offset layer's output rows on demand: rows are
/// computed once (offset conv over the input rows ±1, then bilinear sampling) into a
/// ring buffer of `cap` rows per channel. The offset conv uses the consuming conv's
/// packed-B and accumulator buffers (lent through `prepare`; that conv refills them right
/// after), so the two convs never need separate GEMM buffers.
pub(crate) struct OffsetSource<'a, T> {
    pub x: MapSource<'a, T>,
    pub geom: ConvGeom,
    pub work: OffsetWork<'a>,
    pub ring: &'a mut [f32],
    pub cap: usize,
    /// Rows `done_lo..done_hi` are valid in the ring.
    pub done_lo: usize,
    pub done_hi: usize,
}

impl<'a, T: Elem> OffsetSource<'a, T> {
    pub fn new(
        x: MapSource<'a, T>,
        geom: ConvGeom,
        work: OffsetWork<'a>,
        ring: &'a mut [f32],
        cap: usize,
    ) -> Self {
        OffsetSource {
            x,
            geom,
            work,
            ring,
            cap,
            done_lo: 0,
            done_hi: 0,
        }
    }
}

impl<T: Elem> RowSource for OffsetSource<'_, T> {
    type E = f32;

    fn prepare(
        &mut self,
        lo: usize,
        hi: usize,
        tmp_b: &mut [f32],
        tmp_c: &mut [f32],
    ) -> Result<(), Error> {
        if hi <= lo {
            return Ok(());
        }
        if hi - lo > self.cap || hi > self.x.h {
            return Err(Error::Internal);
        }
        if lo < self.done_lo || lo > self.done_hi {
            // Not a continuation of the rows computed so far: start afresh.
            self.done_lo = lo;
            self.done_hi = lo;
        }
        if hi > self.done_hi {
            let cap = self.cap;
            let chan_stride = cap * self.x.w;
            offsets_and_resample(
                &self.geom,
                &self.x,
                &mut self.work,
                tmp_b,
                tmp_c,
                self.done_hi,
                hi,
                &mut *self.ring,
                chan_stride,
                &|y| y % cap,
            )?;
            self.done_hi = hi;
            self.done_lo = self.done_lo.max(hi.saturating_sub(cap));
        }
        Ok(())
    }

    fn row(&self, c: usize, y: usize) -> Option<&[f32]> {
        if y < self.done_lo || y >= self.done_hi {
            return None;
        }
        let w = self.x.w;
        let start = (c * self.cap + y % self.cap) * w;
        self.ring.get(start..start + w)
    }
}

/// Copies an fp16 map (the undeformed pass of a materialised offset layer).
pub(crate) fn copy_map(src: &[f16], dst: &mut [f16]) -> Result<(), Error> {
    if src.len() != dst.len() {
        return Err(Error::Internal);
    }
    dst.copy_from_slice(src);
    Ok(())
}
