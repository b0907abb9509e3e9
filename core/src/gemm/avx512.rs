//! AVX-512F 8×32 micro-kernel (compiled only when `avx512f` is enabled statically).
//!
//! Per depth step it loads one 32-wide row of the B panel (two zmm), broadcasts each of
//! the `MR` A values from memory and issues `2 · MR` FMAs into `2 · MR` zmm accumulators.
//! 8×32 (16 accumulators, 2 B loads + 8 broadcasts per 16 FMAs) measured fastest on the
//! project's Xeon among 8×32, 12×32 and 14×32 (see `docs/BENCHMARKS.md`), and with the
//! default `ngf = 64` `MR = 8` divides the output channel count of every conv that runs
//! through this kernel (64, 128, 256, and the offset convs' 128, 256, 512), so none of
//! their A rows are padding. The convs with at most 4 output channels (the 1-channel head,
//! the 1 → 2 input offset conv) do not use the kernel: they run as direct convolutions
//! (`ops::conv`), reading only their real rows of the zero-padded 8-row packed A.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's
//! `rust-version` (1.85), which still holds for every build without `avx512f`; hence the
//! Clippy MSRV on `mod avx512`.

use core::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

/// Rows of a packed-A panel.
pub const MR: usize = 8;
/// Columns of a packed-B panel (two zmm registers).
pub const NR: usize = 32;

/// `c = a · b` over depth `k`. Leaves `c` untouched if `a` holds fewer than `k · MR` or
/// `b` fewer than `k · NR` values (the caller, `micro_kernel`, has already checked; this
/// check keeps the safe function sound on its own).
#[inline]
#[allow(unsafe_code)]
pub(super) fn kernel(k: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) {
    // Divide rather than multiply: `k · MR` could wrap in release builds and let a short
    // slice through. `len / MR ≥ k` ⇔ `len ≥ k · MR` in exact arithmetic.
    if a.len() / MR < k || b.len() / NR < k {
        return;
    }
    // SAFETY: this module is compiled only with `avx512f` enabled at compile time, so the
    // intrinsics are supported by every CPU the binary may run on. Every load reads
    // `a[kk·MR + r]` (r < MR) or `b[kk·NR .. kk·NR + 32]` for `kk < k`, which are in bounds
    // because `a.len() ≥ MR·k` and `b.len() ≥ NR·k` exactly (checked above by division, so
    // no product can have wrapped); the pointers advance by `MR` and `NR` per step, so
    // after `k` steps they are at most one past the end of `a` and `b`. Unaligned loads and
    // stores are used throughout; the stores write `c[r·NR .. r·NR + 32]` for r < MR,
    // inside the `MR·NR`-element array.
    unsafe {
        let mut acc: [[__m512; 2]; MR] = [[_mm512_setzero_ps(); 2]; MR];
        let mut pa = a.as_ptr();
        let mut pb = b.as_ptr();
        for _ in 0..k {
            let b0 = _mm512_loadu_ps(pb);
            let b1 = _mm512_loadu_ps(pb.add(16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*pa.add(r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let pc = c.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(pc.add(r * NR), row[0]);
            _mm512_storeu_ps(pc.add(r * NR + 16), row[1]);
        }
    }
}
