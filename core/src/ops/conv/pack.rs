//! Packing: fp16 weights into A panels, and input rows into B panels straight from padded
//! row copies (virtual im2col).

use super::geom::{map_index, ConvGeom, WLayout};
use super::rows::{Elem, RowSource};
use crate::error::Error;
use crate::format::le;
use crate::gemm::{packed_b_len, MR, NR};

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
pub(super) fn fill_padded_row<S: RowSource>(
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
pub(super) fn pack_b<S: RowSource>(
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
