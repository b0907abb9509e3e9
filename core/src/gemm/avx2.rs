//! AVX2 + FMA 6×16 micro-kernel (compiled only when both features are enabled statically).

use core::arch::x86_64::{
    __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

/// Rows of a packed-A panel.
pub const MR: usize = 6;
/// Columns of a packed-B panel.
pub const NR: usize = 16;

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
    // SAFETY: this module is compiled only with `avx2` and `fma` enabled at compile time,
    // so the intrinsics are supported by every CPU the binary may run on. Every load reads
    // `a[kk·6 + r]` (r < 6) or `b[kk·16 .. kk·16 + 16]` for `kk < k`, which are in bounds
    // because `a.len() ≥ 6k` and `b.len() ≥ 16k` exactly (checked above by division, so
    // no product can have wrapped); the pointers advance by 6 and 16 per step, so after
    // `k` steps they are at most one past the end of `a` and `b`. Unaligned loads and
    // stores are used throughout; the stores write `c[r·16 .. r·16 + 16]` for r < 6,
    // inside the 96-element array.
    unsafe {
        let mut acc: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
        let mut pa = a.as_ptr();
        let mut pb = b.as_ptr();
        for _ in 0..k {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            let a0 = _mm256_broadcast_ss(&*pa);
            acc[0][0] = _mm256_fmadd_ps(a0, b0, acc[0][0]);
            acc[0][1] = _mm256_fmadd_ps(a0, b1, acc[0][1]);
            let a1 = _mm256_broadcast_ss(&*pa.add(1));
            acc[1][0] = _mm256_fmadd_ps(a1, b0, acc[1][0]);
            acc[1][1] = _mm256_fmadd_ps(a1, b1, acc[1][1]);
            let a2 = _mm256_broadcast_ss(&*pa.add(2));
            acc[2][0] = _mm256_fmadd_ps(a2, b0, acc[2][0]);
            acc[2][1] = _mm256_fmadd_ps(a2, b1, acc[2][1]);
            let a3 = _mm256_broadcast_ss(&*pa.add(3));
            acc[3][0] = _mm256_fmadd_ps(a3, b0, acc[3][0]);
            acc[3][1] = _mm256_fmadd_ps(a3, b1, acc[3][1]);
            let a4 = _mm256_broadcast_ss(&*pa.add(4));
            acc[4][0] = _mm256_fmadd_ps(a4, b0, acc[4][0]);
            acc[4][1] = _mm256_fmadd_ps(a4, b1, acc[4][1]);
            let a5 = _mm256_broadcast_ss(&*pa.add(5));
            acc[5][0] = _mm256_fmadd_ps(a5, b0, acc[5][0]);
            acc[5][1] = _mm256_fmadd_ps(a5, b1, acc[5][1]);
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let pc = c.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(pc.add(r * NR), row[0]);
            _mm256_storeu_ps(pc.add(r * NR + 8), row[1]);
        }
    }
}
