//! The unpaired slice source over NIfTI folders (the NIfTI I/O itself is tested in
//! `volume/tests/nifti.rs`).

use std::path::{Path, PathBuf};

use dicyc_trainer::data::preprocess::PreprocessOptions;
use dicyc_trainer::data::sampling::NiftiSlices;
use dicyc_trainer::source::UnpairedSlices;
use dicyc_volume::testing::write_phantom_folder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("trainer-nifti", name)
}

fn phantom_folder(d: &Path, n: usize, scale: f32) {
    write_phantom_folder(d, n, scale).unwrap();
}

#[test]
fn nifti_slices_draw_reproducible_normalised_batches() {
    let d = tmpdir("slices");
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    phantom_folder(&d.join("a"), 2, 100.0);
    phantom_folder(&d.join("b"), 3, 7.0);
    let opts = PreprocessOptions {
        size: (16, 32),
        spacing: Some([1.5, 1.5]),
        ..Default::default()
    };
    let mut s = NiftiSlices::open(&d.join("a"), &d.join("b"), &opts).unwrap();
    assert_eq!(s.slice_size(), (16, 32));
    assert_eq!(s.channels(), (1, 1));
    assert_eq!(s.slices_per_epoch(), 18);
    let (a1, b1) = s.next_batch(3, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let (a2, b2) = s.next_batch(3, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    assert_eq!(a1.size(), [3, 1, 16, 32]);
    assert_eq!(b1.size(), [3, 1, 16, 32]);
    assert!(a1.equal(&a2) && b1.equal(&b2), "same rng, same draws");
    let (lo, hi) = (a1.min().double_value(&[]), a1.max().double_value(&[]));
    assert!(
        (-1.0..=1.0).contains(&lo) && (-1.0..=1.0).contains(&hi),
        "{lo} {hi}"
    );
    // Training size must be a multiple of 4.
    let bad = PreprocessOptions {
        size: (15, 32),
        ..Default::default()
    };
    assert!(NiftiSlices::open(&d.join("a"), &d.join("b"), &bad).is_err());
    // A missing folder is named.
    let e = format!(
        "{:#}",
        NiftiSlices::open(&d.join("nope"), &d.join("b"), &opts).unwrap_err()
    );
    assert!(e.contains("nope"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
