//! A convolution's shape as a GEMM: padding, fused activation, weight layout, taps and the
//! blocking ([`ConvGeom`]) that sizes every work buffer.

use crate::gemm::{packed_a_len, packed_b_len, NR};
use crate::ops::math;

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
    pub(super) fn apply(self, v: f32) -> f32 {
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
    pub(super) fn map_row(&self, py: usize) -> Option<usize> {
        map_index(py as isize - self.pad_top as isize, self.in_h, self.pad)
    }

    /// Range of input rows the output rows `t0..t1` read.
    pub(super) fn input_rows(&self, t0: usize, t1: usize) -> (usize, usize) {
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
pub(super) fn map_index(i: isize, n: usize, pad: Padding) -> Option<usize> {
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
