//! Portable micro-kernel: plain Rust that LLVM vectorises with the baseline SIMD.

/// Rows of a packed-A panel.
pub const MR: usize = 6;
/// Columns of a packed-B panel.
pub const NR: usize = 8;

#[inline]
pub(super) fn kernel(k: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR]) {
    let mut acc = [[0.0f32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for (row, &av) in acc.iter_mut().zip(ak) {
            for (x, &bv) in row.iter_mut().zip(bk) {
                *x += av * bv;
            }
        }
    }
    for (dst, row) in c.chunks_exact_mut(NR).zip(acc.iter()) {
        dst.copy_from_slice(row);
    }
}
