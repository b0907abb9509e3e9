//! The packed GEMM micro-kernel compiled into this build (AVX-512, AVX2 or portable,
//! whichever `cfg(target_feature)` selects) against a naive f64 GEMM, over sizes that hit
//! every edge of the `MR × NR` tiling: fewer rows/columns than one panel, exact panels,
//! one past a panel, several ragged panels, and depths from 0 to past the driver's `KC`.

#[path = "ops_common/mod.rs"]
mod ops_common;

use dicyc_core::gemm::{
    gemm_packed, micro_kernel, pack_a_f32, pack_b_f32, packed_a_len, packed_b_len, KERNEL_NAME, MR,
    NR,
};
use ops_common::Rng;

fn random_f32(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.vec(n, 1.0).into_iter().map(|v| v as f32).collect()
}

/// Naive GEMM in f64 and, per element, the bound `k · ε · Σ|a·b|` on the error of any
/// f32 summation order (with or without FMA).
fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0f64; m * n];
    let mut tol = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut abs) = (0.0f64, 0.0f64);
            for l in 0..k {
                let p = f64::from(a[i * k + l]) * f64::from(b[l * n + j]);
                s += p;
                abs += p.abs();
            }
            c[i * n + j] = s;
            tol[i * n + j] = (k as f64 + 1.0) * f64::from(f32::EPSILON) * abs + 1e-30;
        }
    }
    (c, tol)
}

#[test]
fn kernel_name_matches_panel_shape() {
    assert!(
        KERNEL_NAME.ends_with(&format!("{MR}x{NR}")),
        "{KERNEL_NAME} vs MR {MR} NR {NR}"
    );
}

#[test]
fn gemm_packed_matches_naive_f64_at_every_tile_edge() {
    let mut rng = Rng(0x5eed);
    let ms = [1, MR - 1, MR, MR + 1, 2 * MR + 3, 64];
    let ns = [1, NR - 1, NR, NR + 1, 3 * NR + 5, 130];
    let ks = [0, 1, 2, 7, 64, 257];
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                let a = random_f32(&mut rng, m * k);
                let b = random_f32(&mut rng, k * n);
                let mut pa = vec![f32::NAN; packed_a_len(m, k).unwrap()];
                let mut pb = vec![f32::NAN; packed_b_len(k, n).unwrap()];
                assert!(pack_a_f32(m, k, &a, &mut pa));
                assert!(pack_b_f32(k, n, &b, &mut pb));
                // Padding rows/columns are written as zeros, not left as the NaN fill.
                assert!(pa.iter().chain(&pb).all(|v| v.is_finite()));
                let mut c = vec![f32::NAN; m * n];
                assert!(gemm_packed(m, n, k, &pa, &pb, &mut c), "m{m} n{n} k{k}");
                let (r, tol) = reference(m, n, k, &a, &b);
                for (idx, ((&got, &want), &t)) in c.iter().zip(&r).zip(&tol).enumerate() {
                    assert!(
                        (f64::from(got) - want).abs() <= t,
                        "m{m} n{n} k{k} at ({}, {}): {got} vs {want} (tol {t:e})",
                        idx / n,
                        idx % n
                    );
                }
            }
        }
    }
}

#[test]
fn micro_kernel_computes_one_tile_and_ignores_extra_panel_data() {
    let mut rng = Rng(11);
    for k in [1, 3, 16, 255, 256, 1000] {
        // Panels longer than needed: only the first `k` depth steps are read.
        let a = random_f32(&mut rng, (k + 2) * MR);
        let b = random_f32(&mut rng, (k + 2) * NR);
        let mut c = [f32::NAN; MR * NR];
        assert!(micro_kernel(k, &a, &b, &mut c));
        for r in 0..MR {
            for j in 0..NR {
                let (mut s, mut abs) = (0.0f64, 0.0f64);
                for l in 0..k {
                    let p = f64::from(a[l * MR + r]) * f64::from(b[l * NR + j]);
                    s += p;
                    abs += p.abs();
                }
                let tol = (k as f64 + 1.0) * f64::from(f32::EPSILON) * abs;
                let got = f64::from(c[r * NR + j]);
                assert!((got - s).abs() <= tol, "k{k} ({r}, {j}): {got} vs {s}");
            }
        }
    }
    let mut c = [f32::NAN; MR * NR];
    assert!(micro_kernel(0, &[], &[], &mut c));
    assert!(c.iter().all(|&v| v == 0.0), "k = 0 gives a zero tile");
}

#[test]
fn short_panels_and_buffers_are_refused_without_touching_output() {
    let k = 9;
    let a = vec![1.0f32; k * MR];
    let b = vec![1.0f32; k * NR];
    let mut c = [7.0f32; MR * NR];
    assert!(!micro_kernel(k, &a[..k * MR - 1], &b, &mut c));
    assert!(!micro_kernel(k, &a, &b[..k * NR - 1], &mut c));
    assert!(!micro_kernel(k + 1, &a, &b, &mut c));
    assert!(c.iter().all(|&v| v == 7.0));

    let (m, n) = (MR + 1, NR + 1);
    let src_a = vec![1.0f32; m * k];
    let src_b = vec![1.0f32; k * n];
    let mut pa = vec![0.0f32; packed_a_len(m, k).unwrap()];
    let mut pb = vec![0.0f32; packed_b_len(k, n).unwrap()];
    assert!(!pack_a_f32(m, k, &src_a[..m * k - 1], &mut pa));
    assert!(!pack_a_f32(
        m,
        k,
        &src_a,
        &mut pa[..packed_a_len(m, k).unwrap() - 1]
    ));
    assert!(!pack_b_f32(k, n, &src_b[..k * n - 1], &mut pb));
    assert!(!pack_b_f32(
        k,
        n,
        &src_b,
        &mut pb[..packed_b_len(k, n).unwrap() - 1]
    ));
    assert!(pack_a_f32(m, k, &src_a, &mut pa));
    assert!(pack_b_f32(k, n, &src_b, &mut pb));
    let mut out = vec![7.0f32; m * n];
    assert!(!gemm_packed(m, n, k, &pa[..pa.len() - 1], &pb, &mut out));
    assert!(!gemm_packed(m, n, k, &pa, &pb[..pb.len() - 1], &mut out));
    assert!(!gemm_packed(m, n, k, &pa, &pb, &mut out[..m * n - 1]));
    assert!(out.iter().all(|&v| v == 7.0));
    assert!(gemm_packed(m, n, k, &pa, &pb, &mut out));
    assert!(out.iter().all(|&v| v == k as f32));
}

#[test]
fn sizes_that_overflow_usize_are_refused_not_wrapped() {
    // `half = 2^63` (on 64-bit) times any even number wraps to 0, so `k = half + 1` makes
    // `k · MR` wrap to exactly `MR` (and `k · NR` to `NR`), the panel sizes being even as
    // every kernel's are: a check by a wrapping product would accept one-step panels and
    // then read `k` steps through them.
    let half = 1usize << (usize::BITS - 1);
    let root = 1usize << (usize::BITS / 2);
    let k = half + 1;
    assert_eq!((k.wrapping_mul(MR), k.wrapping_mul(NR)), (MR, NR));
    let a = vec![1.0f32; MR];
    let b = vec![1.0f32; NR];
    let mut c = [7.0f32; MR * NR];
    assert!(!micro_kernel(half, &[], &[], &mut c));
    assert!(!micro_kernel(k, &a, &b, &mut c));
    assert!(!micro_kernel(usize::MAX, &a, &b, &mut c));
    assert!(c.iter().all(|&v| v == 7.0));

    assert_eq!(packed_a_len(usize::MAX, 1), None);
    assert_eq!(packed_a_len(1, half), None);
    assert_eq!(packed_b_len(1, usize::MAX), None);
    assert_eq!(packed_b_len(half, 1), None);
    // Empty matrices have empty packings, however large the other side.
    assert_eq!(packed_a_len(0, usize::MAX), Some(0));
    assert_eq!(packed_b_len(usize::MAX, 0), Some(0));

    let mut out = vec![7.0f32; MR * NR];
    assert!(!gemm_packed(MR, NR, k, &a, &b, &mut out));
    assert!(!gemm_packed(1, 1, half, &[], &[], &mut out));
    assert!(!gemm_packed(usize::MAX, 1, 1, &a, &b, &mut out));
    assert!(!gemm_packed(1, usize::MAX, 1, &a, &b, &mut out));
    // `k = 0`: both packings are empty, but `m · n` overflows.
    assert!(!gemm_packed(root, root, 0, &[], &[], &mut out));
    assert!(out.iter().all(|&v| v == 7.0));

    let mut pa = vec![7.0f32; MR];
    let mut pb = vec![7.0f32; NR];
    assert!(!pack_a_f32(1, k, &a, &mut pa));
    assert!(!pack_a_f32(usize::MAX, 1, &a, &mut pa));
    assert!(!pack_a_f32(root, root, &a, &mut pa));
    assert!(!pack_b_f32(k, 1, &b, &mut pb));
    assert!(!pack_b_f32(1, usize::MAX, &b, &mut pb));
    assert!(!pack_b_f32(root, root, &b, &mut pb));
    assert!(pa.iter().chain(&pb).all(|&v| v == 7.0));
    // An empty matrix packs to nothing and succeeds, whatever its other side.
    assert!(pack_a_f32(0, usize::MAX, &[], &mut []));
    assert!(pack_b_f32(usize::MAX, 0, &[], &mut []));
}
