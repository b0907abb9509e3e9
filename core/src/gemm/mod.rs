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
/// untouched) if a panel is too short.
#[inline]
pub fn micro_kernel(k: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) -> bool {
    let (Some(a), Some(b)) = (a.get(..k * MR), b.get(..k * NR)) else {
        return false;
    };
    imp::kernel(k, a, b, c);
    true
}

/// Number of `f32`s of a packed A holding `m × k`.
pub const fn packed_a_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k
}

/// Number of `f32`s of a packed B holding `k × n`.
pub const fn packed_b_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Packs a row-major `m × k` f32 matrix into the packed-A layout (`out` ≥ [`packed_a_len`]).
pub fn pack_a_f32(m: usize, k: usize, src: &[f32], out: &mut [f32]) -> bool {
    if src.len() < m * k || out.len() < packed_a_len(m, k) {
        return false;
    }
    for (p, panel) in out[..packed_a_len(m, k)]
        // `max(1)`: with `k = 0` the slice is empty, and a chunk size of 0 would panic.
        .chunks_exact_mut((MR * k).max(1))
        .enumerate()
    {
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
pub fn pack_b_f32(k: usize, n: usize, src: &[f32], out: &mut [f32]) -> bool {
    if src.len() < k * n || out.len() < packed_b_len(k, n) {
        return false;
    }
    for (p, panel) in out[..packed_b_len(k, n)]
        // `max(1)`: with `k = 0` the slice is empty, and a chunk size of 0 would panic.
        .chunks_exact_mut((NR * k).max(1))
        .enumerate()
    {
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
/// for tests and benchmarks of the micro-kernel.
pub fn gemm_packed(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> bool {
    if a.len() < packed_a_len(m, k) || b.len() < packed_b_len(k, n) || c.len() < m * n {
        return false;
    }
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
