//! Training augmentation (`augment_to_size`): disabled it is exactly the centre crop/pad;
//! a flip drawn with p = 1 mirrors the slice; the same RNG seed gives the same slice; a
//! small rotation stays finite and within the input's range (bilinear interpolation).

use dicyc_volume::augment::{augment_to_size, AugmentOptions};
use dicyc_volume::preprocess::to_training_size;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// An asymmetric slice (no two voxels equal), so a wrong index or a missing flip shows.
fn slice(nx: usize, ny: usize) -> Array2<f32> {
    Array2::from_shape_fn((nx, ny), |(i, j)| 1.0 + i as f32 * 10.0 + j as f32 * 0.25)
}

/// Only the given flips, every other augmentation off.
fn flips(flip_x: f64, flip_y: f64) -> AugmentOptions {
    AugmentOptions {
        enabled: true,
        flip_x,
        flip_y,
        ..AugmentOptions::none()
    }
}

#[test]
fn disabled_is_the_centre_crop_or_pad() {
    let s = slice(11, 14);
    let fill = -1.0;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for size in [(8, 8), (16, 20), (8, 20), (11, 14)] {
        let got = augment_to_size(&s.view(), size, fill, &AugmentOptions::none(), &mut rng);
        assert_eq!(
            got,
            to_training_size(&s.view(), size, fill),
            "size {size:?}"
        );
    }
    // By hand: the crop to 8×8 starts at (11/2 − 4, 14/2 − 4) = (1, 3).
    let c = augment_to_size(&s.view(), (8, 8), fill, &AugmentOptions::none(), &mut rng);
    assert_eq!(c[[0, 0]], s[[1, 3]]);
    assert_eq!(c[[7, 7]], s[[8, 10]]);
    // The pad to 16×20 puts the slice at (8 − 5, 10 − 7) = (3, 3) and fills the rest.
    let p = augment_to_size(&s.view(), (16, 20), fill, &AugmentOptions::none(), &mut rng);
    assert_eq!(p[[3, 3]], s[[0, 0]]);
    assert_eq!(p[[13, 16]], s[[10, 13]]);
    assert_eq!(
        (p[[2, 3]], p[[3, 2]], p[[14, 16]], p[[13, 17]]),
        (fill, fill, fill, fill)
    );
    // Disabled draws nothing: the RNG is where it started.
    let mut fresh = ChaCha8Rng::seed_from_u64(0);
    let mut used = ChaCha8Rng::seed_from_u64(0);
    let _ = augment_to_size(&s.view(), (8, 8), fill, &AugmentOptions::none(), &mut used);
    assert_eq!(
        rand::Rng::gen::<u64>(&mut used),
        rand::Rng::gen::<u64>(&mut fresh)
    );
}

#[test]
fn flip_with_probability_one_mirrors_the_slice() {
    // Odd sizes: the centre nx/2 is a voxel, so the mirror i ↦ nx − 1 − i is exact.
    let (nx, ny) = (9, 7);
    let s = slice(nx, ny);
    for seed in 0..4 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fx = augment_to_size(&s.view(), (nx, ny), 0.0, &flips(1.0, 0.0), &mut rng);
        let fy = augment_to_size(&s.view(), (nx, ny), 0.0, &flips(0.0, 1.0), &mut rng);
        let fxy = augment_to_size(&s.view(), (nx, ny), 0.0, &flips(1.0, 1.0), &mut rng);
        let none = augment_to_size(&s.view(), (nx, ny), 0.0, &flips(0.0, 0.0), &mut rng);
        for i in 0..nx {
            for j in 0..ny {
                assert_eq!(fx[[i, j]], s[[nx - 1 - i, j]], "flip_x at {i},{j}");
                assert_eq!(fy[[i, j]], s[[i, ny - 1 - j]], "flip_y at {i},{j}");
                assert_eq!(fxy[[i, j]], s[[nx - 1 - i, ny - 1 - j]], "both at {i},{j}");
            }
        }
        assert_eq!(none, s, "enabled with every bound 0 is the identity");
    }
}

#[test]
fn same_seed_same_augmentation_other_seed_other() {
    let s = slice(40, 36);
    let opts = AugmentOptions::default();
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Several draws in a row: the sequence reproduces, not only the first call.
        (0..3)
            .map(|_| augment_to_size(&s.view(), (32, 32), 0.0, &opts, &mut rng))
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a[0], a[1], "successive draws differ");
}

#[test]
fn small_rotation_stays_finite_and_in_range() {
    let s = slice(33, 29);
    let fill = -0.5f32;
    let (lo, hi) = s
        .iter()
        .fold((fill, fill), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let opts = AugmentOptions {
        enabled: true,
        rotate_deg: 3.0,
        ..AugmentOptions::none()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..8 {
        let r = augment_to_size(&s.view(), (32, 32), fill, &opts, &mut rng);
        assert!(r
            .iter()
            .all(|&x| x.is_finite() && x >= lo - 1e-3 && x <= hi + 1e-3));
        // A rotation of ≤ 3° about the centre moves the centre voxel by nothing and its
        // neighbourhood by well under a voxel: the centre keeps its value.
        assert!((r[[16, 16]] - s[[16, 14]]).abs() < 1e-3, "{}", r[[16, 16]]);
        // …and it really rotated: a voxel 12 px from the centre is off its grid position.
        assert_ne!(r[[28, 16]], s[[28, 14]]);
    }
}
