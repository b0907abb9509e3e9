//! The simulator: signal equation against published values, PD/T2 voxel alignment, tissue
//! contrast order, byte-identical reproduction from a seed. The real-template test runs only
//! when the template is cached (`tools/fetch-template.sh`); otherwise it prints a note.

use dicyc_trainer::data::deform::FieldOptions;
use dicyc_trainer::data::nifti_io::write;
use dicyc_trainer::data::simulate::{
    self, simulate_subject, spin_echo, Anatomy, SimOptions, CSF, GM, WM,
};
use dicyc_trainer::data::template;
use ndarray::{Array3, Zip};

#[test]
fn spin_echo_matches_published_pure_tissue_signals() {
    // The quoted references are rounded (GM/WM T2-w: equation 0.258/0.185, quoted 0.27/0.19).
    let close = |a: f64, b: f64| (a - b).abs() < 0.015;
    for (t, pd, t2) in [(CSF, 0.93, 0.70), (GM, 0.78, 0.27), (WM, 0.69, 0.19)] {
        let (s1, s2) = (spin_echo(&t, 8178.0, 8.0), spin_echo(&t, 8178.0, 100.0));
        assert!(close(s1, pd), "PD-w {t:?}: {s1}");
        assert!(close(s2, t2), "T2-w {t:?}: {s2}");
    }
}

fn phantom_opts(seed: u64, a: &Anatomy) -> SimOptions {
    let d = a.dims();
    let mut o = SimOptions::ixi_like(seed, d, [0.0; 3]);
    o.field = FieldOptions {
        max_displacement: 1.5,
        ..o.field
    };
    o
}

fn mean_where(v: &Array3<f32>, sel: &Array3<bool>) -> f64 {
    let (mut s, mut n) = (0.0, 0);
    Zip::from(v).and(sel).for_each(|&x, &m| {
        if m {
            s += f64::from(x);
            n += 1;
        }
    });
    assert!(n > 0, "empty region");
    s / f64::from(n)
}

#[test]
fn pd_and_t2_are_voxel_aligned_and_contrasts_ordered() {
    let a = Anatomy::phantom([32, 32, 24]);
    // Undeformed, no noise/bias/jitter: the pure-tissue regions of the anatomy are known.
    let mut o = phantom_opts(3, &a);
    o.field.max_displacement = 0.0;
    o.max_rotation_deg = 0.0;
    o.max_scale = 0.0;
    o.max_translation = 0.0;
    let s = simulate_subject(&a, &o, 0);
    assert_eq!(s.pd.data.dim(), s.t2.data.dim());
    assert_eq!(s.pd.header.srow_x, s.t2.header.srow_x);
    let pure = |f: &Array3<f32>| f.mapv(|x| x > 0.99);
    let (csf, gm, wm) = (
        mean_where(&s.pd.data, &pure(&a.csf)),
        mean_where(&s.pd.data, &pure(&a.gm)),
        mean_where(&s.pd.data, &pure(&a.wm)),
    );
    assert!(
        csf > gm && gm > wm,
        "PD-weighted: CSF {csf} GM {gm} WM {wm}"
    );
    let (csf, gm, wm) = (
        mean_where(&s.t2.data, &pure(&a.csf)),
        mean_where(&s.t2.data, &pure(&a.gm)),
        mean_where(&s.t2.data, &pure(&a.wm)),
    );
    assert!(
        csf > gm && gm > wm,
        "T2-weighted: CSF {csf} GM {gm} WM {wm}"
    );

    // With the default per-subject deformation, noise and bias: both echoes share the support
    // (mask) exactly, and their edges coincide: the voxel-wise ratio T2/PD is a function of
    // the tissue mix only, so it takes the pure-CSF value where PD is brightest.
    let o = phantom_opts(7, &a);
    let s = simulate_subject(&a, &o, 3);
    Zip::from(&s.pd.data)
        .and(&s.t2.data)
        .and(&s.mask.data)
        .for_each(|&p, &t, &m| {
            assert_eq!(p > 0.0, m > 0.0);
            assert_eq!(t > 0.0, m > 0.0);
        });
    // Same warped anatomy: the edges coincide. The correlation of the two gradient-magnitude
    // images is largest at zero shift (a misregistration of one echo would move the peak).
    let grad = |v: &Array3<f32>| {
        let (nx, ny, nz) = v.dim();
        Array3::from_shape_fn((nx, ny, nz), |(i, j, k)| {
            if i == 0 || j == 0 || i + 1 == nx || j + 1 == ny {
                return 0.0f64;
            }
            let gx = f64::from(v[[i + 1, j, k]] - v[[i - 1, j, k]]);
            let gy = f64::from(v[[i, j + 1, k]] - v[[i, j - 1, k]]);
            (gx * gx + gy * gy).sqrt()
        })
    };
    let mut quiet = o.clone();
    quiet.noise = 0.0;
    let s = simulate_subject(&a, &quiet, 3);
    let (gp, gt) = (grad(&s.pd.data), grad(&s.t2.data));
    let (nx, ny, nz) = gp.dim();
    let corr = |dx: i64, dy: i64| {
        let mut acc = 0.0;
        for i in 2..nx - 2 {
            for j in 2..ny - 2 {
                for k in 0..nz {
                    acc +=
                        gp[[i, j, k]] * gt[[(i as i64 + dx) as usize, (j as i64 + dy) as usize, k]];
                }
            }
        }
        acc
    };
    let c0 = corr(0, 0);
    for dx in -2..=2i64 {
        for dy in -2..=2i64 {
            if (dx, dy) != (0, 0) {
                assert!(
                    corr(dx, dy) < c0,
                    "shift ({dx}, {dy}) correlates better than 0"
                );
            }
        }
    }
    // A different subject is deformed differently (not aligned with subject 3).
    let other = simulate_subject(&a, &o, 4);
    assert_ne!(other.mask.data, s.mask.data);
}

#[test]
fn same_seed_gives_byte_identical_volumes() {
    let a = Anatomy::phantom([24, 28, 8]);
    let o = phantom_opts(11, &a);
    let d = std::env::temp_dir().join(format!("dicyc-test-sim-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let s1 = simulate_subject(&a, &o, 2);
    let s2 = simulate_subject(&a, &o, 2);
    write(&d.join("1.nii.gz"), &s1.t2).unwrap();
    write(&d.join("2.nii.gz"), &s2.t2).unwrap();
    write(&d.join("1p.nii"), &s1.pd).unwrap();
    write(&d.join("2p.nii"), &s2.pd).unwrap();
    assert_eq!(
        std::fs::read(d.join("1.nii.gz")).unwrap(),
        std::fs::read(d.join("2.nii.gz")).unwrap()
    );
    assert_eq!(
        std::fs::read(d.join("1p.nii")).unwrap(),
        std::fs::read(d.join("2p.nii")).unwrap()
    );
    let s3 = simulate_subject(
        &a,
        &SimOptions {
            seed: 12,
            ..o.clone()
        },
        2,
    );
    assert_ne!(s3.t2.data, s1.t2.data);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn real_template_benchmark_when_cached() {
    let dir = template::default_template_dir();
    if !template::is_present(&dir) {
        eprintln!("note: MNI ICBM152 template not cached in {} — run tools/fetch-template.sh to include this test", dir.display());
        return;
    }
    let a = Anatomy::from_template(&dir, 2).unwrap();
    assert_eq!(a.dims(), [98, 116, 94]);
    // Tissue fractions are fractions; GM + WM + CSF ≤ 1.
    for ((g, w), c) in a.gm.iter().zip(a.wm.iter()).zip(a.csf.iter()) {
        assert!((0.0..=1.0001).contains(&(g + w + c)));
    }
    let (dims, off) = simulate::centred_grid(&a, [96, 112], 4);
    let mut o = SimOptions::ixi_like(0, dims, off);
    o.noise = 0.0;
    let s = simulate_subject(&a, &o, 0);
    // Contrast order on the (undeformed-template) pure tissues is preserved on average in the
    // warped subject: compare means over voxels whose warped fractions are unknown here, so use
    // the signal histogram instead: CSF is the brightest tissue in both echoes.
    let max_pd = s.pd.data.iter().copied().fold(0.0f32, f32::max);
    let max_t2 = s.t2.data.iter().copied().fold(0.0f32, f32::max);
    assert!(max_t2 > 600.0 && max_t2 < 900.0, "T2-w CSF ≈ 700: {max_t2}");
    assert!(
        max_pd > 850.0 && max_pd < 1100.0,
        "PD-w CSF ≈ 930: {max_pd}"
    );
    let brain = s.mask.data.iter().filter(|&&m| m > 0.0).count();
    assert!(brain > 96 * 112 * 4 / 4, "brain voxels {brain}");
}
