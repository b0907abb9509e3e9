//! The deformation: smooth, invertible (Jacobian determinant > 0 everywhere), reproducible
//! from its seed; `trainer data deform` shares one field across the domain, keeps it
//! invertible on every grid, jitters it per volume reproducibly, and writes the ground truths.

mod common;

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

// ---- `trainer data deform` at the command level ----------------------------------------

mod command {
    use std::path::{Path, PathBuf};

    use dicyc_trainer::data::deform::SmoothField;
    use dicyc_trainer::data::nifti_io::{read_volume, write};
    use dicyc_trainer::data::resample::Outside;
    use dicyc_trainer::data::simulate::{simulate_subject, Anatomy, SimOptions};

    use crate::common::arg as s;

    /// `trainer data deform <args>`.
    fn run(args: &[&str]) -> anyhow::Result<()> {
        crate::common::trainer(&[&["data", "deform"], args].concat())
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dicyc-test-deform-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Writes subject `index` of a phantom of `dims` as `<root>/<split>/{pd,t2,mask}/<name>`
    /// (`pd` only when `with_pd`).
    fn put(root: &Path, split: &str, name: &str, dims: [usize; 3], index: u64, with_pd: bool) {
        let a = Anatomy::phantom(dims);
        let sub = simulate_subject(&a, &SimOptions::ixi_like(2, a.dims(), [0.0; 3]), index);
        write(&root.join(split).join("t2").join(name), &sub.t2).unwrap();
        write(&root.join(split).join("mask").join(name), &sub.mask).unwrap();
        if with_pd {
            write(&root.join(split).join("pd").join(name), &sub.pd).unwrap();
        }
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("deformation.json")).unwrap())
            .unwrap()
    }

    fn record<'a>(m: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
        m["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file)
            .unwrap_or_else(|| panic!("no record of {file}"))
    }

    fn field_of(r: &serde_json::Value) -> SmoothField {
        serde_json::from_value(r["field"].clone()).unwrap()
    }

    fn max_abs_diff(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn jitter_differs_per_volume_and_reproduces_from_its_seed() {
        // Two byte-identical volumes per split: without jitter they come out identical, so
        // any difference with jitter is the per-volume jitter itself.
        let data = tmp("jitter-data");
        let dims = [40, 48, 4];
        for (split, names) in [("train", ["a", "b"]), ("test", ["c", "d"])] {
            for n in names {
                put(&data, split, &format!("{n}.nii.gz"), dims, 0, true);
            }
        }
        let (none, j1, j2) = (tmp("jitter-none"), tmp("jitter-1"), tmp("jitter-2"));
        let base = [
            "--data",
            s(&data),
            "--seed",
            "3",
            "--max-displacement-mm",
            "4",
        ];
        run(&[&base[..], &["--out", s(&none)]].concat()).unwrap();
        for out in [&j1, &j2] {
            run(&[&base[..], &["--out", s(out), "--jitter", "0.3"]].concat()).unwrap();
        }
        let t2 = |dir: &Path, split: &str, n: &str| {
            read_volume(&dir.join(split).join("t2").join(format!("{n}.nii.gz")))
                .unwrap()
                .data
        };
        let m = manifest(&j1);
        let shared: SmoothField = serde_json::from_value(m["field"].clone()).unwrap();
        assert_eq!(m["jitter"], 0.3);
        let mut streams = Vec::new();
        let mut fields: Vec<SmoothField> = Vec::new();
        for (split, n) in [("train", "a"), ("train", "b"), ("test", "c"), ("test", "d")] {
            // Same seed, same output (byte for byte, and the same record).
            assert_eq!(
                std::fs::read(j1.join(split).join("t2").join(format!("{n}.nii.gz"))).unwrap(),
                std::fs::read(j2.join(split).join("t2").join(format!("{n}.nii.gz"))).unwrap(),
                "{split}/{n} reproduces"
            );
            let r = record(&m, &format!("{n}.nii.gz"));
            assert_eq!(r, record(&manifest(&j2), &format!("{n}.nii.gz")));
            assert_eq!(r["split"], split);
            assert_eq!(r["jitter_seed"], 3);
            streams.push(r["jitter_stream"].as_u64().unwrap());
            assert!(r["gradient_bound"].as_f64().unwrap() <= 0.5 + 1e-9);
            assert!(r["min_jacobian"].as_f64().unwrap() > 0.0);
            // The recorded per-volume field is the one applied.
            let f = field_of(r);
            let src = read_volume(&data.join(split).join("t2").join(format!("{n}.nii.gz")))
                .unwrap()
                .data;
            assert!(
                max_abs_diff(
                    &f.warp(&src.view(), Outside::Value(0.0)),
                    &t2(&j1, split, n)
                ) < 1e-2
            );
            // It is the shared field plus something: the shared terms come first, unchanged.
            assert_eq!(f.comp[0].terms[..6], shared.comp[0].terms[..6]);
            assert!(f.comp[0].terms.len() > 6);
            fields.push(f);
            // And the jitter moved voxels: the output is not the shared-field output.
            assert!(
                max_abs_diff(&t2(&j1, split, n), &t2(&none, split, n)) > 1.0,
                "{split}/{n}: jitter had no effect"
            );
        }
        streams.sort_unstable();
        streams.dedup();
        assert_eq!(streams.len(), 4, "one jitter stream per volume");
        assert_ne!(fields[0], fields[1]);
        // Identical inputs: identical without jitter, different with it.
        assert_eq!(t2(&none, "train", "a"), t2(&none, "train", "b"));
        assert!(max_abs_diff(&t2(&j1, "train", "a"), &t2(&j1, "train", "b")) > 1.0);
        assert!(max_abs_diff(&t2(&j1, "test", "c"), &t2(&j1, "test", "d")) > 1.0);
        // Without jitter nothing per volume is recorded beyond the checks.
        let m0 = manifest(&none);
        let r = record(&m0, "a.nii.gz");
        assert!(r.get("field").is_none() && r.get("jitter_seed").is_none());
        assert_eq!(r["shared_scale"], 1.0);
        // A negative jitter is refused.
        let e = run(&[
            &base[..],
            &["--out", s(&tmp("jitter-neg")), "--jitter=-0.1"],
        ]
        .concat())
        .unwrap_err();
        assert!(format!("{e:#}").contains("--jitter"), "{e:#}");
        for d in [data, none, j1, j2] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn smaller_grids_keep_a_positive_jacobian_and_gt_is_written_without_a_partner() {
        let data = tmp("grids-data");
        // The field is drawn on a 40×48 grid; b is half that size (the same sinusoids per
        // field of view are twice as steep on it); b has no PD partner.
        put(&data, "train", "a.nii.gz", [40, 48, 4], 0, true);
        put(&data, "test", "b.nii.gz", [20, 24, 4], 1, false);
        put(&data, "test", "c.nii.gz", [40, 48, 4], 2, true);
        let out = tmp("grids-out");
        // A strong, high-frequency field: at its gradient bound on the first grid.
        run(&[
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--seed",
            "7",
            "--max-displacement-mm",
            "40",
            "--max-freq",
            "3",
        ])
        .unwrap();
        let m = manifest(&out);
        let shared: SmoothField = serde_json::from_value(m["field"].clone()).unwrap();
        let on_b = SmoothField {
            dims: [20, 24, 4],
            comp: shared.comp.clone(),
        };
        assert!(
            on_b.gradient_bound() > 0.5,
            "the test needs a field the small grid steepens past the bound ({})",
            on_b.gradient_bound()
        );
        let rb = record(&m, "b.nii.gz");
        let scale = rb["shared_scale"].as_f64().unwrap();
        assert!(scale < 1.0, "{scale}");
        assert!(rb["gradient_bound"].as_f64().unwrap() <= 0.5 + 1e-9);
        assert!(rb["min_jacobian"].as_f64().unwrap() > 0.0);
        let fb = field_of(rb);
        assert!(fb.min_jacobian_on_grid() > 0.0);
        let src_b = read_volume(&data.join("test/t2/b.nii.gz")).unwrap();
        let got_b = read_volume(&out.join("test/t2/b.nii.gz")).unwrap();
        assert!(
            max_abs_diff(
                &fb.warp(&src_b.data.view(), Outside::Value(0.0)),
                &got_b.data
            ) < 1e-2
        );
        // The first grid's volumes get the shared field as drawn.
        for n in ["a.nii.gz", "c.nii.gz"] {
            assert_eq!(record(&m, n)["shared_scale"], 1.0, "{n}");
        }
        // gt-t2 (the undeformed T2) is written for every test volume, partner or not;
        // gt-pd only where a PD volume exists.
        for n in ["b.nii.gz", "c.nii.gz"] {
            assert_eq!(
                read_volume(&out.join("test/gt-t2").join(n)).unwrap().data,
                read_volume(&data.join("test/t2").join(n)).unwrap().data,
                "{n}"
            );
        }
        assert!(out.join("test/gt-pd/c.nii.gz").exists());
        assert!(!out.join("test/gt-pd/b.nii.gz").exists());
        assert!(out.join("test/mask-t2/b.nii.gz").exists());
        for d in [data, out] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
