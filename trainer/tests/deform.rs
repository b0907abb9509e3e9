//! The deformation: smooth, invertible (Jacobian determinant > 0 everywhere), reproducible
//! from its seed; and `trainer data deform` shares one field across the domain.

use dicyc_trainer::data::deform::{FieldOptions, SmoothField};
use dicyc_trainer::data::resample::Outside;
use ndarray::Array3;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn field(seed: u64, opts: &FieldOptions, dims: [usize; 3]) -> SmoothField {
    SmoothField::random(dims, opts, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn same_seed_same_field_other_seed_other_field() {
    let o = FieldOptions::default();
    assert_eq!(field(3, &o, [40, 48, 10]), field(3, &o, [40, 48, 10]));
    assert_ne!(field(3, &o, [40, 48, 10]), field(4, &o, [40, 48, 10]));
    let v = Array3::from_shape_fn((20, 24, 4), |(i, j, k)| (i * j + k) as f32);
    let f = field(9, &o, [20, 24, 4]);
    assert_eq!(
        f.warp(&v.view(), Outside::Value(0.0)),
        f.warp(&v.view(), Outside::Value(0.0))
    );
}

#[test]
fn zero_field_warp_is_identity() {
    let v = Array3::from_shape_fn((9, 7, 3), |(i, j, k)| (i * 31 + j * 7 + k) as f32);
    assert_eq!(
        SmoothField::zero([9, 7, 3]).warp(&v.view(), Outside::Clamp),
        v
    );
}

#[test]
fn field_is_smooth_finite_differences_match_the_analytic_gradient_bound() {
    let o = FieldOptions {
        max_displacement: 10.0,
        max_gradient: 0.9,
        ..Default::default()
    };
    let f = field(1, &o, [64, 64, 16]);
    let bound = f.gradient_bound();
    assert!(bound <= 0.9 + 1e-9);
    // Max |u(p+e) − u(p)| over unit steps stays under the bound (Lipschitz), and the field
    // is displaced by a few voxels at most.
    let mut worst = 0.0f64;
    for i in 0..63 {
        for j in 0..63 {
            for k in 0..15 {
                let p = [i as f64, j as f64, k as f64];
                let u = f.at(p);
                for e in 0..3 {
                    let mut q = p;
                    q[e] += 1.0;
                    let v = f.at(q);
                    let d = ((v[0] - u[0]).powi(2) + (v[1] - u[1]).powi(2) + (v[2] - u[2]).powi(2))
                        .sqrt();
                    worst = worst.max(d);
                }
            }
        }
    }
    assert!(worst <= bound + 1e-9, "{worst} > {bound}");
    assert!(f.max_displacement_on_grid() <= 10.0 + 1e-9);
    assert!(f.max_displacement_on_grid() > 0.5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn jacobian_determinant_positive_everywhere(seed in any::<u64>(), amp in 0.5f64..40.0, freq in 0.5f64..3.0, in_plane in any::<bool>()) {
        let o = FieldOptions { max_displacement: amp, max_gradient: 0.5, terms: 6, max_freq: freq, max_freq_z: 1.0, in_plane };
        let f = field(seed, &o, [24, 28, 6]);
        prop_assert!(f.min_jacobian_on_grid() > 0.0);
        // Off-grid points too.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 1);
        for _ in 0..200 {
            use rand::Rng;
            let p = [rng.gen_range(0.0..24.0), rng.gen_range(0.0..28.0), rng.gen_range(0.0..6.0)];
            prop_assert!(f.jacobian_det(p) > 0.0);
        }
        // With jitter the bound still holds.
        let j = f.jittered(0.3, &o, &mut ChaCha8Rng::seed_from_u64(seed ^ 2));
        prop_assert!(j.gradient_bound() <= 0.5 + 1e-9);
        prop_assert!(j.min_jacobian_on_grid() > 0.0);
    }
}
