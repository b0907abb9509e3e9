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

use core::ops::Range;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::Error;
use crate::format::le;
use crate::gemm::{micro_kernel, packed_a_len, packed_b_len, MR, NR};
use crate::ops::math;

/// Element type a feature map may be read from.
pub(crate) trait Elem: Copy {
    /// To f32.
    fn to_f32(self) -> f32;
    /// Converts `src` into `dst` (same lengths).
    fn convert(src: &[Self], dst: &mut [f32]);
}

impl Elem for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn convert(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl Elem for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline]
    fn convert(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// Element type a result may be stored as.
pub(crate) trait StoreElem: Copy {
    /// From f32 (fp16 saturates at ±65504 instead of overflowing to infinity).
    fn from_f32(v: f32) -> Self;
}

impl StoreElem for f32 {
    #[inline]
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl StoreElem for f16 {
    #[inline]
    fn from_f32(v: f32) -> f16 {
        f16::from_f32(v.clamp(-65504.0, 65504.0))
    }
}

/// Provides input rows to a convolution, a strip at a time.
pub(crate) trait RowSource {
    /// Element type of the rows.
    type E: Elem;
    /// Makes rows `lo..hi` (of every channel) readable through [`RowSource::row`].
    /// `tmp_b` and `tmp_c` are the caller's packed-B and accumulator buffers, free for the
    /// source to use meanwhile.
    fn prepare(
        &mut self,
        lo: usize,
        hi: usize,
        tmp_b: &mut [f32],
        tmp_c: &mut [f32],
    ) -> Result<(), Error>;
    /// Row `y` of channel `c` (only for prepared rows); `None` if not available.
    fn row(&self, c: usize, y: usize) -> Option<&[Self::E]>;
}

/// A fully materialised CHW feature map.
#[derive(Clone, Copy)]
pub(crate) struct MapSource<'a, T> {
    pub data: &'a [T],
    pub h: usize,
    pub w: usize,
}

impl<T: Elem> MapSource<'_, T> {
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data
            .get((c * self.h + y) * self.w + x)
            .map_or(0.0, |v| v.to_f32())
    }
}

impl<T: Elem> RowSource for MapSource<'_, T> {
    type E = T;
    #[inline]
    fn prepare(&mut self, _: usize, _: usize, _: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn row(&self, c: usize, y: usize) -> Option<&[T]> {
        let start = (c * self.h + y) * self.w;
        self.data.get(start..start + self.w)
    }
}

/// How out-of-range input pixels are produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Mirror without repeating the edge (PyTorch `ReflectionPad2d`).
    Reflect,
    /// Zeros.
    Zero,
}

/// Activation fused into the GEMM epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`. The generator fuses its ReLUs into the instance norm instead; this one
    /// is the standalone conv's (the `internals` feature).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Tanh => math::tanh(v),
        }
    }
}

/// Weight tensor layout (fp16 little-endian in both cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WLayout {
    /// `[out, in, k, k]` (Conv2d).
    Oihw,
    /// `[in, out, k, k]` (ConvTranspose2d).
    Iohw,
}

/// One kernel tap: offsets into the padded input and the weight's `(ky, kx)` index.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tap {
    pub ty: u8,
    pub tx: u8,
    pub ky: u8,
    pub kx: u8,
}

/// Target bytes of one packed-B block (`KC × NC`): L2-resident while the A panels of
/// that depth range stream by (L2 is 512 KiB per core on the project's machines).
const B_TILE_BYTES: usize = 128 * 1024;

/// Target GEMM depth per block (`KC`); rounded to whole input channels.
const KC_TARGET: usize = 256;

/// Convolutions with at most this many output channels run as direct convolutions.
const DIRECT_MAX_COUT: usize = 4;

/// Geometry of one convolution (or one phase of a transposed convolution) as a GEMM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad: Padding,
    /// Kernel side of the stored weights (3 or 7).
    pub ksize: usize,
    pub layout: WLayout,
    pub taps: [Tap; 49],
    pub ntaps: usize,
    /// Destination pixel of GEMM pixel `(oy, ox)` is `(oy · out_step + out_y0, ox · out_step + out_x0)`.
    pub out_step: usize,
    pub out_y0: usize,
    pub out_x0: usize,
}

impl ConvGeom {
    /// `k × k` conv, stride `s`, symmetric padding `p` (reflect or zero), OIHW weights.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        cin: usize,
        cout: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        p: usize,
        pad: Padding,
    ) -> Option<ConvGeom> {
        if k == 0 || k > 7 || s == 0 || cin == 0 || cout == 0 {
            return None;
        }
        let hp = h.checked_add(2 * p)?;
        let wp = w.checked_add(2 * p)?;
        if hp < k || wp < k || h == 0 || w == 0 {
            return None;
        }
        if pad == Padding::Reflect && (p >= h || p >= w) {
            return None;
        }
        let mut taps = [Tap::default(); 49];
        for ky in 0..k {
            for kx in 0..k {
                taps[ky * k + kx] = Tap {
                    ty: ky as u8,
                    tx: kx as u8,
                    ky: ky as u8,
                    kx: kx as u8,
                };
            }
        }
        Some(ConvGeom {
            cin,
            cout,
            in_h: h,
            in_w: w,
            out_h: (hp - k) / s + 1,
            out_w: (wp - k) / s + 1,
            stride: s,
            pad_top: p,
            pad_left: p,
            pad,
            ksize: k,
            layout: WLayout::Oihw,
            taps,
            ntaps: k * k,
            out_step: 1,
            out_y0: 0,
            out_x0: 0,
        })
    }

    /// Phase `(py, px)` of a 3×3 stride-2, padding-1, output-padding-1 transposed conv
    /// (IOHW weights) over an `h × w` input: the output pixels `(2a + py, 2b + px)`.
    ///
    /// Output row `2a` takes kernel row 1 at input row `a`; output row `2a + 1` takes
    /// kernel row 0 at input row `a + 1` (zero past the end) and kernel row 2 at row `a`.
    pub fn up_phase(cin: usize, cout: usize, h: usize, w: usize, py: usize, px: usize) -> ConvGeom {
        // (t, k) pairs along one axis for the two parities.
        const EVEN: [(u8, u8); 1] = [(0, 1)];
        const ODD: [(u8, u8); 2] = [(1, 0), (0, 2)];
        let ys: &[(u8, u8)] = if py == 0 { &EVEN } else { &ODD };
        let xs: &[(u8, u8)] = if px == 0 { &EVEN } else { &ODD };
        let mut taps = [Tap::default(); 49];
        let mut n = 0;
        for &(ty, ky) in ys {
            for &(tx, kx) in xs {
                taps[n] = Tap { ty, tx, ky, kx };
                n += 1;
            }
        }
        ConvGeom {
            cin,
            cout,
            in_h: h,
            in_w: w,
            out_h: h,
            out_w: w,
            stride: 1,
            pad_top: 0,
            pad_left: 0,
            pad: Padding::Zero,
            ksize: 3,
            layout: WLayout::Iohw,
            taps,
            ntaps: n,
            out_step: 2,
            out_y0: py,
            out_x0: px,
        }
    }

    /// GEMM depth `K = cin · taps`.
    #[inline]
    pub fn k(&self) -> usize {
        self.cin * self.ntaps
    }

    #[inline]
    pub fn taps(&self) -> &[Tap] {
        &self.taps[..self.ntaps]
    }

    fn max_ty(&self) -> usize {
        self.taps().iter().map(|t| t.ty as usize).max().unwrap_or(0)
    }

    fn max_tx(&self) -> usize {
        self.taps().iter().map(|t| t.tx as usize).max().unwrap_or(0)
    }

    /// Width of one padded input row as the packer reads it.
    pub fn padded_w(&self) -> usize {
        (self.out_w - 1) * self.stride + self.max_tx() + 1
    }

    /// Input channels per depth block: the GEMM runs over `K` in blocks of
    /// `kc_channels · taps` (`KC`), accumulating in an f32 tile buffer when `K > KC`.
    pub fn kc_channels(&self) -> usize {
        (KC_TARGET / self.ntaps.max(1)).clamp(1, self.cin)
    }

    /// Whether this conv runs as a direct convolution (very few output channels; see
    /// `conv_rows_direct`). Its accumulator rows (`cout × out_w`) fit in packed B because
    /// `cout ≤ kc`.
    pub fn direct(&self) -> bool {
        self.cout <= DIRECT_MAX_COUT && self.cout <= self.kc()
    }

    /// Depth of a full block.
    pub fn kc(&self) -> usize {
        self.kc_channels() * self.ntaps
    }

    /// Number of depth blocks.
    pub fn k_blocks(&self) -> usize {
        self.cin.div_ceil(self.kc_channels())
    }

    /// Output rows per GEMM tile (whole rows; packed B ≈ `B_TILE_BYTES`).
    pub fn tile_rows(&self) -> usize {
        let pixels = (B_TILE_BYTES / 4 / self.kc().max(1)).max(NR);
        (pixels / self.out_w).clamp(1, self.out_h)
    }

    /// Most input rows one tile can need (ring-buffer capacity for strip sources).
    pub fn tile_span(&self) -> usize {
        ((self.tile_rows() - 1) * self.stride + self.max_ty() + 1).min(self.in_h)
    }

    /// `f32`s of packed A.
    ///
    /// The buffer lengths saturate at `usize::MAX` instead of overflowing: the callers'
    /// shape checks bound every geometry far below that, and should one slip through, a
    /// saturated length fails the checked scratch-size sum (`BadShape` /
    /// `BadDimensions`) or the buffer slicing (`Internal`), never wraps to a short buffer.
    pub fn a_len(&self) -> usize {
        packed_a_len(self.cout, self.k()).unwrap_or(usize::MAX)
    }

    /// `f32`s of packed B for one tile and depth block (saturating, see [`Self::a_len`]).
    pub fn b_len(&self) -> usize {
        packed_b_len(self.kc(), self.tile_rows() * self.out_w).unwrap_or(usize::MAX)
    }

    /// `f32`s of the accumulator tile buffer (`M × NC`, only with several depth blocks;
    /// saturating, see [`Self::a_len`]).
    pub fn c_len(&self) -> usize {
        if self.k_blocks() > 1 {
            packed_a_len(self.cout, 1)
                .zip(packed_b_len(1, self.tile_rows() * self.out_w))
                .and_then(|(m, n)| m.checked_mul(n))
                .unwrap_or(usize::MAX)
        } else {
            0
        }
    }

    /// The `f32` work buffers a convolution needs: packed A, packed B, padded row,
    /// accumulators.
    pub fn parts(&self) -> [usize; 4] {
        [self.a_len(), self.b_len(), self.padded_w(), self.c_len()]
    }

    /// Input row of padded row `py`, or `None` for a zero row.
    #[inline]
    fn map_row(&self, py: usize) -> Option<usize> {
        map_index(py as isize - self.pad_top as isize, self.in_h, self.pad)
    }

    /// Range of input rows the output rows `t0..t1` read.
    fn input_rows(&self, t0: usize, t1: usize) -> (usize, usize) {
        let mut lo = usize::MAX;
        let mut hi = 0;
        for oy in t0..t1 {
            for ty in 0..=self.max_ty() {
                if let Some(iy) = self.map_row(oy * self.stride + ty) {
                    lo = lo.min(iy);
                    hi = hi.max(iy + 1);
                }
            }
        }
        if lo >= hi {
            (0, 0)
        } else {
            (lo, hi)
        }
    }
}

/// Maps a possibly out-of-range index into `0..n` by padding mode; `None` = zero.
#[inline]
fn map_index(i: isize, n: usize, pad: Padding) -> Option<usize> {
    let n = n as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match pad {
        Padding::Zero => None,
        Padding::Reflect => {
            let r = if i < 0 { -i } else { 2 * (n - 1) - i };
            if (0..n).contains(&r) {
                Some(r as usize)
            } else {
                None
            }
        }
    }
}

/// Packs the fp16 weights of `g` (little-endian bytes, no alignment needed) as packed A.
pub(crate) fn pack_a(g: &ConvGeom, weights: &[u8], out: &mut [f32]) -> Result<(), Error> {
    let k = g.k();
    let out = out.get_mut(..g.a_len()).ok_or(Error::Internal)?;
    let ks = g.ksize;
    for (p, panel) in out.chunks_exact_mut(MR * k).enumerate() {
        for r in 0..MR {
            let co = p * MR + r;
            for ci in 0..g.cin {
                for (t, tap) in g.taps().iter().enumerate() {
                    let v = if co < g.cout {
                        let widx = tap.ky as usize * ks + tap.kx as usize;
                        let i = match g.layout {
                            WLayout::Oihw => (co * g.cin + ci) * ks * ks + widx,
                            WLayout::Iohw => (ci * g.cout + co) * ks * ks + widx,
                        };
                        le::f16_element(weights, i).ok_or(Error::Internal)?.to_f32()
                    } else {
                        0.0
                    };
                    panel[(ci * g.ntaps + t) * MR + r] = v;
                }
            }
        }
    }
    Ok(())
}

/// Fills `prow` with padded input row `py` of channel `ci`.
fn fill_padded_row<S: RowSource>(
    g: &ConvGeom,
    src: &S,
    ci: usize,
    py: usize,
    prow: &mut [f32],
) -> Result<(), Error> {
    let Some(iy) = g.map_row(py) else {
        prow.fill(0.0);
        return Ok(());
    };
    let row = src.row(ci, iy).ok_or(Error::Internal)?;
    if row.len() != g.in_w {
        return Err(Error::Internal);
    }
    let wp = prow.len();
    let pl = g.pad_left.min(wp);
    let n_int = g.in_w.min(wp - pl);
    let edge = |pc: usize| {
        map_index(pc as isize - g.pad_left as isize, g.in_w, g.pad)
            .map_or(0.0, |ic| row[ic].to_f32())
    };
    for (pc, d) in prow[..pl].iter_mut().enumerate() {
        *d = edge(pc);
    }
    S::E::convert(&row[..n_int], &mut prow[pl..pl + n_int]);
    for (pc, d) in prow.iter_mut().enumerate().skip(pl + n_int) {
        *d = edge(pc);
    }
    Ok(())
}

/// Packs B for output rows `t0..t1` and input channels `c0..c1` (one depth block).
#[allow(clippy::too_many_arguments)]
fn pack_b<S: RowSource>(
    g: &ConvGeom,
    src: &S,
    t0: usize,
    t1: usize,
    c0: usize,
    c1: usize,
    b: &mut [f32],
    prow: &mut [f32],
) -> Result<(), Error> {
    let k_total = (c1 - c0) * g.ntaps;
    let ow = g.out_w;
    let ncols = (t1 - t0) * ow;
    let len = packed_b_len(k_total, ncols).ok_or(Error::Internal)?;
    let b = b.get_mut(..len).ok_or(Error::Internal)?;
    let prow = prow.get_mut(..g.padded_w()).ok_or(Error::Internal)?;
    let s = g.stride;
    for ci in c0..c1 {
        for r in 0..t1 - t0 {
            let oy = t0 + r;
            let mut cur_ty = usize::MAX;
            for (t, tap) in g.taps().iter().enumerate() {
                let ty = tap.ty as usize;
                if ty != cur_ty {
                    cur_ty = ty;
                    fill_padded_row(g, src, ci, oy * s + ty, prow)?;
                }
                let tx = tap.tx as usize;
                let kk = (ci - c0) * g.ntaps + t;
                let mut p = r * ow;
                let mut ox = 0;
                while ox < ow {
                    let lane = p % NR;
                    let n = (NR - lane).min(ow - ox);
                    let start = (p / NR) * NR * k_total + kk * NR + lane;
                    let dst = &mut b[start..start + n];
                    if s == 1 && n == NR {
                        // Fixed-size copy: inlined vector moves instead of a memcpy call.
                        let d: &mut [f32; NR] = dst.try_into().map_err(|_| Error::Internal)?;
                        let src: &[f32; NR] = prow[ox + tx..ox + tx + NR]
                            .try_into()
                            .map_err(|_| Error::Internal)?;
                        *d = *src;
                    } else if s == 1 {
                        dst.copy_from_slice(&prow[ox + tx..ox + tx + n]);
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = prow[(ox + i) * s + tx];
                        }
                    }
                    ox += n;
                    p += n;
                }
            }
        }
    }
    // Zero the unused lanes of the last panel.
    if ncols % NR != 0 {
        let last = ncols / NR;
        let lane0 = ncols % NR;
        let panel = &mut b[last * NR * k_total..(last + 1) * NR * k_total];
        for kk in 0..k_total {
            panel[kk * NR + lane0..kk * NR + NR].fill(0.0);
        }
    }
    Ok(())
}

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
