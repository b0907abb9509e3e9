//! Metrics against hand-computed values on tiny arrays; SSIM(x, x) = 1; PSNR of identical
//! volumes is +∞ (and serialises as "inf"), never a crash.

use dicyc_trainer::eval::metrics::{
    gaussian_window, mean_sd, mse, peak, psnr_from, ssim_global, ssim_windowed, volume_metrics,
};
use dicyc_trainer::eval::table::{markdown, DirectionResult};
use ndarray::Array3;
use proptest::prelude::*;

fn arr(v: &[f32]) -> Array3<f32> {
    Array3::from_shape_vec((v.len(), 1, 1), v.to_vec()).unwrap()
}

#[test]
fn mse_psnr_by_hand() {
    let t = arr(&[0.0, 1.0, 2.0, 3.0]);
    let p = arr(&[0.0, 1.0, 2.0, 5.0]);
    // MSE = (0 + 0 + 0 + 4) / 4 = 1; peak = 3 − 0 = 3; PSNR = 10 log10(9 / 1).
    assert_eq!(mse(&p.view(), &t.view(), None), 1.0);
    assert_eq!(peak(&t.view(), None), 3.0);
    let m = volume_metrics(&p.view(), &t.view(), None);
    assert!((m.psnr - 10.0 * 9.0f64.log10()).abs() < 1e-12);
    // With a mask excluding the wrong voxel: perfect, PSNR infinite; peak over the mask (0..2).
    let mask = arr(&[1.0, 1.0, 1.0, 0.0]);
    let m = volume_metrics(&p.view(), &t.view(), Some(&mask.view()));
    assert_eq!(m.mse, 0.0);
    assert!(m.psnr.is_infinite() && m.psnr > 0.0);
    assert_eq!(m.voxels, 3);
    assert_eq!(peak(&t.view(), Some(&mask.view())), 2.0);
}

#[test]
fn global_ssim_by_hand() {
    // x = [1, 2, 3, 4], y = [2, 2, 4, 4], L = 2 (y's range).
    let x = arr(&[1.0, 2.0, 3.0, 4.0]);
    let y = arr(&[2.0, 2.0, 4.0, 4.0]);
    let (mx, my) = (2.5, 3.0);
    let vx = (2.25 + 0.25 + 0.25 + 2.25) / 4.0;
    let vy = 1.0;
    let cxy = ((-1.5) * (-1.0) + (-0.5) * (-1.0) + 0.5 * 1.0 + 1.5 * 1.0) / 4.0;
    let (c1, c2) = ((0.01f64 * 2.0).powi(2), (0.03f64 * 2.0).powi(2));
    let want =
        ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    let got = ssim_global(&x.view(), &y.view(), None, 2.0);
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn gaussian_window_is_normalised_and_symmetric() {
    let w = gaussian_window(11, 1.5);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for i in 0..11 {
        assert!((w[i] - w[10 - i]).abs() < 1e-15);
    }
    // Centre / neighbour ratio = exp(1 / (2·1.5²)).
    assert!((w[5] / w[4] - (1.0 / 4.5f64).exp()).abs() < 1e-12);
}

#[test]
fn windowed_ssim_constant_offset_by_hand() {
    // y = x + c on a 12×12 slice of constant x = a: every window has σ = 0, so
    // SSIM = (2 a (a + c) + C1) / (a² + (a + c)² + C1).
    let x = Array3::from_elem((12, 12, 1), 2.0f32);
    let y = Array3::from_elem((12, 12, 1), 3.0f32);
    let l = 1.0;
    let c1 = (0.01f64 * l).powi(2);
    let want = (2.0 * 2.0 * 3.0 + c1) / (4.0 + 9.0 + c1);
    let got = ssim_windowed(&y.view(), &x.view(), None, l);
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
}

#[test]
fn identical_volumes_are_perfect_and_infinite_psnr_is_reported() {
    let x = Array3::from_shape_fn((16, 14, 3), |(i, j, k)| ((i * 7 + j * 3 + k) % 11) as f32);
    let m = volume_metrics(&x.view(), &x.view(), None);
    assert_eq!(m.mse, 0.0);
    assert!(m.psnr == f64::INFINITY);
    assert!((m.ssim_global - 1.0).abs() < 1e-12);
    assert!((m.ssim_window - 1.0).abs() < 1e-9);
    let r = DirectionResult::new("X→X", vec![("a".into(), m), ("b".into(), m)]);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"psnr\":\"inf\""), "{json}");
    let back: DirectionResult = serde_json::from_str(&json).unwrap();
    assert!(back.psnr.mean.is_infinite());
    let md = markdown(&[r], Some("identity"));
    assert!(md.contains("∞") && md.contains("| X→X | 2 |"), "{md}");
}

#[test]
fn mean_and_sample_sd() {
    let (m, s) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 2.5);
    assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(mean_sd(&[7.0]), (7.0, 0.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn ssim_of_a_volume_with_itself_is_one(v in proptest::collection::vec(-100.0f32..100.0, 13 * 12 * 2)) {
        let x = Array3::from_shape_vec((13, 12, 2), v).unwrap();
        let l = peak(&x.view(), None);
        prop_assert!((ssim_global(&x.view(), &x.view(), None, l) - 1.0).abs() < 1e-9);
        prop_assert!((ssim_windowed(&x.view(), &x.view(), None, l) - 1.0).abs() < 1e-9);
        prop_assert_eq!(psnr_from(mse(&x.view(), &x.view(), None), l), f64::INFINITY);
    }

    #[test]
    fn ssim_is_symmetric_and_at_most_one(a in proptest::collection::vec(0.0f32..1.0, 144), b in proptest::collection::vec(0.0f32..1.0, 144)) {
        let x = Array3::from_shape_vec((12, 12, 1), a).unwrap();
        let y = Array3::from_shape_vec((12, 12, 1), b).unwrap();
        let s1 = ssim_windowed(&x.view(), &y.view(), None, 1.0);
        let s2 = ssim_windowed(&y.view(), &x.view(), None, 1.0);
        prop_assert!((s1 - s2).abs() < 1e-12);
        prop_assert!(s1 <= 1.0 + 1e-12);
        let g = ssim_global(&x.view(), &y.view(), None, 1.0);
        prop_assert!(g <= 1.0 + 1e-12);
    }
}
