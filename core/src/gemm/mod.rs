//! Packed GEMM building blocks: the `MR × NR` register-blocked f32 micro-kernel and the
//! packed-panel layouts it reads.
//!
//! Layouts (BLIS style):
//! - packed **A** (weights, `M × K`): panels of [`MR`] rows; element `(m, k)` lives at
//!   `(m / MR) · K · MR + k · MR + m % MR`. Rows past `M` are zero.
//! - packed **B** (im2col columns, `K × N`): panels of [`NR`] columns; element `(k, n)`
//!   lives at `(n / NR) · K · NR + k · NR + n % NR`.
//!
//! The kernel computes one `MR × NR` tile of `A · B` over a depth range in registers and
//! returns it; the convolution driver (`ops::conv`) runs it over depth blocks of ≈256
//! (the A slice `MR × KC` stays in L1, the packed B block `KC × NC` in L2), sums the
//! blocks in an f32 tile buffer and applies the fused epilogue (bias, activation, fp16
//! store). A panel's depth range is contiguous in both layouts, so depth blocking needs no
//! repacking. Accumulation is always f32.
//!
//! Kernels, chosen at compile time (e.g. by `-C target-cpu=native`; no runtime
//! detection, the core has no std): with `avx512f` an 8×32 FMA kernel (16 zmm
//! accumulators, `avx512.rs`); else with `avx2` and `fma` a 6×16 FMA kernel (12 ymm
//! accumulators, `avx2.rs`); otherwise a portable 6×8 kernel written so that LLVM
//! vectorises it with the baseline SIMD (SSE2 / NEON).
//!
//! Crate-internal; the `internals` feature makes it public, with the plain row-major
//! packers, a macro-kernel and the kernel's name, for the tests and the benchmark.

// AVX-512 intrinsics are stable since 1.89; the workspace MSRV (1.85) holds without them.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[clippy::msrv = "1.89"]
mod avx512;
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
use avx512 as imp;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    not(target_feature = "avx512f")
))]
mod avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    not(target_feature = "avx512f")
))]
use avx2 as imp;

#[cfg(not(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
)))]
mod portable;
#[cfg(not(all(
    target_arch = "x86_64",
    any(
        target_feature = "avx512f",
        all(target_feature = "avx2", target_feature = "fma")
    )
)))]
use portable as imp;

pub use imp::{MR, NR};

/// Name of the micro-kernel compiled in (for benchmarks and reports).
#[cfg(feature = "internals")]
pub const KERNEL_NAME: &str = if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
    "avx512f 8x32"
} else if cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)) {
    "avx2+fma 6x16"
} else {
    "portable 6x8"
};

/// `c = A_panel · B_panel` over depth `k`: `a` holds at least `k · MR` packed values,
/// `b` at least `k · NR`; `c` is row-major `MR × NR`. Returns `false` (and leaves `c`
/// untouched) if a panel is too short, `k · MR` or `k · NR` overflowing `usize` included
/// (no slice is that long; a wrapped product would let a short panel through).
#[inline]
pub fn micro_kernel(k: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) -> bool {
    let (Some(ka), Some(kb)) = (k.checked_mul(MR), k.checked_mul(NR)) else {
        return false;
    };
    let (Some(a), Some(b)) = (a.get(..ka), b.get(..kb)) else {
        return false;
    };
    imp::kernel(k, a, b, c);
    true
}

/// Number of `f32`s of a packed A holding `m × k`; `None` if that overflows `usize`.
pub const fn packed_a_len(m: usize, k: usize) -> Option<usize> {
    match m.div_ceil(MR).checked_mul(MR) {
        Some(rows) => rows.checked_mul(k),
        None => None,
    }
}

/// Number of `f32`s of a packed B holding `k × n`; `None` if that overflows `usize`.
pub const fn packed_b_len(k: usize, n: usize) -> Option<usize> {
    match n.div_ceil(NR).checked_mul(NR) {
        Some(cols) => cols.checked_mul(k),
        None => None,
    }
}

/// Packs a row-major `m × k` f32 matrix into the packed-A layout (`out` ≥ [`packed_a_len`]).
/// Returns `false` if a slice is too short or a size overflows `usize`.
#[cfg(feature = "internals")]
pub fn pack_a_f32(m: usize, k: usize, src: &[f32], out: &mut [f32]) -> bool {
    let (Some(src_len), Some(len)) = (m.checked_mul(k), packed_a_len(m, k)) else {
        return false;
    };
    if src.len() < src_len || out.len() < len {
        return false;
    }
    if len == 0 {
        // `m = 0` or `k = 0`: nothing to pack (and `MR · k` below could overflow or be a
        // chunk size of 0, which would panic).
        return true;
    }
    // `m > 0`, so `MR · k ≤ len` fits.
    for (p, panel) in out[..len].chunks_exact_mut(MR * k).enumerate() {
        for kk in 0..k {
            for r in 0..MR {
                let row = p * MR + r;
                panel[kk * MR + r] = if row < m { src[row * k + kk] } else { 0.0 };
            }
        }
    }
    true
}

/// Packs a row-major `k × n` f32 matrix into the packed-B layout (`out` ≥ [`packed_b_len`]).
/// Returns `false` if a slice is too short or a size overflows `usize`.
#[cfg(feature = "internals")]
pub fn pack_b_f32(k: usize, n: usize, src: &[f32], out: &mut [f32]) -> bool {
    let (Some(src_len), Some(len)) = (k.checked_mul(n), packed_b_len(k, n)) else {
        return false;
    };
    if src.len() < src_len || out.len() < len {
        return false;
    }
    if len == 0 {
        // `n = 0` or `k = 0`: nothing to pack (see `pack_a_f32`).
        return true;
    }
    // `n > 0`, so `NR · k ≤ len` fits.
    for (p, panel) in out[..len].chunks_exact_mut(NR * k).enumerate() {
        for kk in 0..k {
            for c in 0..NR {
                let col = p * NR + c;
                panel[kk * NR + c] = if col < n { src[kk * n + col] } else { 0.0 };
            }
        }
    }
    true
}

/// `c (m × n, row-major) = a (packed, m × k) · b (packed, k × n)`: the plain macro-kernel,
/// for tests and benchmarks of the micro-kernel. Returns `false` if a slice is too short
/// or a size overflows `usize`.
#[cfg(feature = "internals")]
pub fn gemm_packed(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> bool {
    let (Some(a_len), Some(b_len), Some(c_len)) =
        (packed_a_len(m, k), packed_b_len(k, n), m.checked_mul(n))
    else {
        return false;
    };
    if a.len() < a_len || b.len() < b_len || c.len() < c_len {
        return false;
    }
    // Every panel bound below is at most `a_len` or `b_len`, so none overflows.
    let mut tile = [0.0f32; MR * NR];
    for i in 0..m.div_ceil(MR) {
        let ap = &a[i * MR * k..(i + 1) * MR * k];
        for j in 0..n.div_ceil(NR) {
            let bp = &b[j * NR * k..(j + 1) * NR * k];
            if !micro_kernel(k, ap, bp, &mut tile) {
                return false;
            }
            for r in 0..MR.min(m - i * MR) {
                let row = i * MR + r;
                let nv = NR.min(n - j * NR);
                c[row * n + j * NR..][..nv].copy_from_slice(&tile[r * NR..r * NR + nv]);
            }
        }
    }
    true
}
