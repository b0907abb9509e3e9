//! Convolution as virtual im2col + packed GEMM with a fused epilogue.
//!
//! A convolution is described by a [`ConvGeom`]: an output grid, a stride, and a list of
//! *taps* `(ty, tx)` into the padded input; packed-B entry `(k = ci · T + t, p = (oy, ox))`
//! is `padded[ci][oy · s + ty][ox · s + tx]`. Regular convolutions have the `k × k` taps;
//! a stride-2 transposed convolution is four *phase* convolutions with 1, 2, 2 and 4 taps
//! whose outputs interleave (sub-pixel decomposition), so no zero-stuffed input is built.
//!
//! Output rows are processed in tiles of whole rows (`NC` ≈ 128 KiB of packed B per depth
//! block). For each tile the input rows it needs are requested from a [`RowSource`] (a
//! plain feature map, or the offset layer's strip resampler); then, per depth block of
//! `KC` ≈ 256 (whole input channels), B is packed directly from padded f32 copies of those
//! rows (virtual im2col: nothing else is materialised) and the `MR × NR` micro-kernel runs
//! over every (A panel, B panel) pair, accumulating across depth blocks in an f32 tile
//! buffer. The last block's tiles go through the epilogue: `+ bias`, activation, store
//! (fp16 saturating, or f32) at each pixel's destination.
//!
//! Convolutions with at most 4 output channels (the head, the input offset layer) skip
//! im2col: packing would cost more than the GEMM it feeds, so they run as a direct
//! convolution over padded rows.
//!
//! Submodules: `rows` (element types and the sources of input rows), `geom` (the shape as
//! a GEMM and its blocking, which sizes every buffer), `pack` (A and B panels); this module
//! runs the loop nest and the epilogue.

mod geom;
mod pack;
mod rows;

pub(crate) use geom::ConvGeom;
pub use geom::{Activation, Padding};
pub(crate) use pack::pack_a;
use pack::{fill_padded_row, pack_b};
pub(crate) use rows::{Elem, MapSource, RowSource, StoreElem};

use core::ops::Range;

use crate::error::Error;
use crate::format::le;
use crate::gemm::{micro_kernel, MR, NR};

/// Where results go: element `(co, row, col)` at `co · chan_stride + (row − row_origin) ·
/// row_stride + col`, with `(row, col)` the destination pixel of the GEMM pixel.
pub(crate) struct Dst<'a, T> {
    pub data: &'a mut [T],
    pub chan_stride: usize,
    pub row_stride: usize,
    pub row_origin: usize,
}

/// Runs output rows `rows` of convolution `g` reading `src`, with packed weights `a`, f32
/// LE `bias`, fused `act`, work buffers `b` (≥ [`ConvGeom::b_len`]), `prow`
/// (≥ [`ConvGeom::padded_w`]) and `c` (≥ [`ConvGeom::c_len`]).
///
/// Loop nest per tile of output rows: for each depth block (`KC`), pack B (`KC × NC`,
/// L2-resident), then for each `MR`-row panel of A (its `MR × KC` slice stays in L1) and
/// each `NR`-column panel of B run the micro-kernel; with several depth blocks the tiles
/// accumulate in `c`, and the last block's tiles go through the epilogue.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_rows<S: RowSource, D: StoreElem>(
    g: &ConvGeom,
    src: &mut S,
    a: &[f32],
    bias: &[u8],
    act: Activation,
    rows: Range<usize>,
    b: &mut [f32],
    prow: &mut [f32],
    c: &mut [f32],
    dst: &mut Dst<'_, D>,
) -> Result<(), Error> {
    if g.direct() {
        return conv_rows_direct(g, src, a, bias, act, rows, b, prow, c, dst);
    }
    let k = g.k();
    let tr = g.tile_rows();
    let mpanels = g.cout.div_ceil(MR);
    let a = a.get(..g.a_len()).ok_or(Error::Internal)?;
    let kcc = g.kc_channels();
    let nkb = g.k_blocks();
    let mut t0 = rows.start;
    let end = rows.end.min(g.out_h);
    let mut tile = [0.0f32; MR * NR];
    while t0 < end {
        let t1 = (t0 + tr).min(end);
        let (lo, hi) = g.input_rows(t0, t1);
        src.prepare(lo, hi, b, c)?;
        let ncols = (t1 - t0) * g.out_w;
        let npanels = ncols.div_ceil(NR);
        let acc = if nkb > 1 {
            c.get_mut(..mpanels * npanels * MR * NR)
                .ok_or(Error::Internal)?
        } else {
            &mut [][..]
        };
        for kb in 0..nkb {
            let c0 = kb * kcc;
            let c1 = (c0 + kcc).min(g.cin);
            let kc = (c1 - c0) * g.ntaps;
            let koff = c0 * g.ntaps;
            let last = kb + 1 == nkb;
            pack_b(g, src, t0, t1, c0, c1, b, prow)?;
            for i in 0..mpanels {
                let base = i * MR * k;
                let ap = &a[base + koff * MR..base + (koff + kc) * MR];
                for j in 0..npanels {
                    let bp = b
                        .get(j * NR * kc..(j + 1) * NR * kc)
                        .ok_or(Error::Internal)?;
                    if !micro_kernel(kc, ap, bp, &mut tile) {
                        return Err(Error::Internal);
                    }
                    if nkb > 1 {
                        let cb = acc
                            .get_mut((i * npanels + j) * MR * NR..(i * npanels + j + 1) * MR * NR)
                            .ok_or(Error::Internal)?;
                        if kb == 0 {
                            cb.copy_from_slice(&tile);
                        } else {
                            for (x, &t) in cb.iter_mut().zip(&tile) {
                                *x += t;
                            }
                            if last {
                                tile.copy_from_slice(cb);
                            }
                        }
                    }
                    if last {
                        store_tile(g, dst, &tile, bias, act, i * MR, j * NR, t0, ncols)?;
                    }
                }
            }
        }
        t0 = t1;
    }
    Ok(())
}

/// Direct convolution for very few output channels (the head's `ngf → 1..4`, the input
/// offset layer's `1 → 2`): with `M` this small, im2col packing would cost more than the
/// GEMM it feeds, so each output row accumulates `w · padded_row` slices instead (still
/// reading the packed A, f32 accumulation). The accumulator rows live in `b`.
#[allow(clippy::too_many_arguments)]
fn conv_rows_direct<S: RowSource, D: StoreElem>(
    g: &ConvGeom,
    src: &mut S,
    a: &[f32],
    bias: &[u8],
    act: Activation,
    rows: Range<usize>,
    b: &mut [f32],
    prow: &mut [f32],
    c: &mut [f32],
    dst: &mut Dst<'_, D>,
) -> Result<(), Error> {
    let k = g.k();
    let ow = g.out_w;
    let s = g.stride;
    let cout = g.cout;
    let a = a.get(..g.a_len()).ok_or(Error::Internal)?;
    let prow = prow.get_mut(..g.padded_w()).ok_or(Error::Internal)?;
    for oy in rows.start..rows.end.min(g.out_h) {
        let (lo, hi) = g.input_rows(oy, oy + 1);
        src.prepare(lo, hi, b, c)?;
        let acc = b.get_mut(..cout * ow).ok_or(Error::Internal)?;
        acc.fill(0.0);
        for ci in 0..g.cin {
            let mut cur_ty = usize::MAX;
            for (t, tap) in g.taps().iter().enumerate() {
                let ty = tap.ty as usize;
                if ty != cur_ty {
                    cur_ty = ty;
                    fill_padded_row(g, src, ci, oy * s + ty, prow)?;
                }
                let tx = tap.tx as usize;
                let kk = ci * g.ntaps + t;
                for (co, accr) in acc.chunks_exact_mut(ow).enumerate() {
                    let wv = a[(co / MR) * MR * k + kk * MR + co % MR];
                    if s == 1 {
                        for (x, &v) in accr.iter_mut().zip(&prow[tx..tx + ow]) {
                            *x += wv * v;
                        }
                    } else {
                        for (ox, x) in accr.iter_mut().enumerate() {
                            *x += wv * prow[ox * s + tx];
                        }
                    }
                }
            }
        }
        let row = (oy * g.out_step + g.out_y0)
            .checked_sub(dst.row_origin)
            .ok_or(Error::Internal)?;
        for (co, accr) in acc.chunks_exact(ow).enumerate() {
            let bv = le::f32_element(bias, co).ok_or(Error::Internal)?;
            let base = co * dst.chan_stride + row * dst.row_stride + g.out_x0;
            for (ox, &v) in accr.iter().enumerate() {
                let i = base + ox * g.out_step;
                *dst.data.get_mut(i).ok_or(Error::Internal)? = D::from_f32(act.apply(v + bv));
            }
        }
    }
    Ok(())
}

/// The epilogue: `act(tile + bias)` for the valid rows/columns of the `MR × NR` tile at
/// output channel `m0`, tile pixel `n0`, stored at each pixel's destination.
#[allow(clippy::too_many_arguments)]
#[inline]
fn store_tile<D: StoreElem>(
    g: &ConvGeom,
    dst: &mut Dst<'_, D>,
    tile: &[f32; MR * NR],
    bias: &[u8],
    act: Activation,
    m0: usize,
    n0: usize,
    t0: usize,
    ncols: usize,
) -> Result<(), Error> {
    let ow = g.out_w;
    let mv = (g.cout - m0).min(MR);
    let nv = (ncols - n0).min(NR);
    let mut coloff = [0usize; NR];
    for (nn, off) in coloff.iter_mut().enumerate().take(nv) {
        let p = n0 + nn;
        let oy = t0 + p / ow;
        let ox = p % ow;
        let row = (oy * g.out_step + g.out_y0)
            .checked_sub(dst.row_origin)
            .ok_or(Error::Internal)?;
        *off = row * dst.row_stride + ox * g.out_step + g.out_x0;
    }
    for mm in 0..mv {
        let bv = le::f32_element(bias, m0 + mm).ok_or(Error::Internal)?;
        let base = (m0 + mm) * dst.chan_stride;
        let trow = &tile[mm * NR..mm * NR + nv];
        for (&v, &off) in trow.iter().zip(&coloff[..nv]) {
            let v = act.apply(v + bv);
            *dst.data.get_mut(base + off).ok_or(Error::Internal)? = D::from_f32(v);
        }
    }
    Ok(())
}
