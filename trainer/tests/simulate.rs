//! The simulator: signal equation against published values, PD/T2 voxel alignment, tissue
//! contrast order, byte-identical reproduction from a seed, and voxel-size independence (the
//! same subject at 1 mm and 2 mm). The real-template test runs only when the template is
//! cached (`tools/fetch-template.sh`); otherwise it prints a note.

use clap::Parser;
use dicyc_trainer::cli::data::{parse_voxel_mm, DataCommand};
use dicyc_trainer::cli::{Cli, Command};
use dicyc_trainer::data::deform::FieldOptions;
use dicyc_trainer::data::nifti_io::write;
use dicyc_trainer::data::resample::downsample_mean;
use dicyc_trainer::data::simulate::{
    self, simulate_subject, spin_echo, subject_warp, Anatomy, SimOptions, Subject, CSF, GM, WM,
};
use dicyc_trainer::data::template;
use dicyc_trainer::data::volume::{header_for, reslice_header};
use ndarray::{Array3, Zip};

/// PD, T2 and the brain mask of one subject are non-zero on exactly the same voxels.
fn assert_pd_t2_and_mask_share_their_support(s: &Subject) {
    Zip::from(&s.pd.data)
        .and(&s.t2.data)
        .and(&s.mask.data)
        .for_each(|&p, &t, &m| {
            assert_eq!(p > 0.0, m > 0.0);
            assert_eq!(t > 0.0, m > 0.0);
        });
}

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
        max_displacement: 3.0, // mm: 1.5 voxels of the 2 mm phantom
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
    o.max_translation_mm = 0.0;
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
    assert_pd_t2_and_mask_share_their_support(&s);
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
    let d = dicyc_volume::testing::scratch_dir("simulate", "byte-identical");
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

    // At 1 mm (`--voxel-mm 1`): the full-resolution template, the same field of view as the
    // 2 mm grid (offsets exactly doubled), the same subject once block-averaged.
    let a1 = Anatomy::from_template(&dir, 1).unwrap();
    assert_eq!((a1.dims(), a1.voxel_mm()), (template::TEMPLATE_DIMS, 1.0));
    let (dims1, off1) = simulate::matching_grid(&a, &a1, [192, 224], 8);
    assert_eq!(dims1, [192, 224, 8]);
    assert_eq!(off1, off.map(|x| 2.0 * x), "2 mm grid at {off:?}");
    let o1 = SimOptions {
        dims: dims1,
        offset: off1,
        ..o.clone()
    };
    let s1 = simulate_subject(&a1, &o1, 0);
    let down = downsample_mean(&s1.t2.data.view(), [2; 3]);
    let r = correlation(&down, &s.t2.data);
    assert!(r > 0.9, "1 mm vs 2 mm template subject: r = {r}");
}

#[test]
fn voxel_mm_option_parses_and_rejects_other_sizes() {
    let parse = |args: &[&str]| {
        let mut v = vec!["trainer", "data", "simulate"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
    };
    let get = |args: &[&str]| match parse(args).unwrap().command {
        Command::Data(d) => match d.command {
            DataCommand::Simulate(s) => (s.voxel_mm, s.slices),
            other => panic!("parsed as {other:?}"),
        },
        _ => panic!("not a data command"),
    };
    assert_eq!(
        get(&[]),
        (2, None),
        "default: 2 mm, slab from the voxel size"
    );
    assert_eq!(get(&["--voxel-mm", "1"]), (1, None));
    assert_eq!(get(&["--voxel-mm", "2", "--slices", "8"]), (2, Some(8)));
    for bad in ["3", "0", "1.5", "-1", "mm"] {
        let e = parse(&[&format!("--voxel-mm={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("use 1") && e.contains("or 2") && e.contains(bad),
            "--voxel-mm {bad}: {e}"
        );
    }
    assert_eq!(parse_voxel_mm("1"), Ok(1));
    assert!(parse_voxel_mm("4").is_err());
}

/// A 1 mm sphere anatomy (as [`Anatomy::phantom`], but with an off-centre CSF "ventricle"
/// so that rotation and shifts are visible) and its 2 mm version built as the template's:
/// 2×2×2 block means, header resliced. The two grids cover the same field of view.
fn anatomy_pair(dims_1mm: [usize; 3]) -> (Anatomy, Anatomy) {
    let c = dims_1mm.map(|d| d as f64 / 2.0);
    let r = dims_1mm.iter().copied().min().unwrap() as f64 / 2.0 - 4.0;
    let frac = |d: f64, radius: f64| (radius - d + 0.5).clamp(0.0, 1.0) as f32;
    let sh = (dims_1mm[0], dims_1mm[1], dims_1mm[2]);
    let dist = |i: usize, j: usize, k: usize, cx: f64| {
        let p = [
            i as f64 + 0.5 - cx,
            j as f64 + 0.5 - c[1],
            k as f64 + 0.5 - c[2],
        ];
        (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
    };
    let wm = Array3::from_shape_fn(sh, |(i, j, k)| {
        let d = dist(i, j, k, c[0]);
        (frac(d, 0.65 * r) - frac(dist(i, j, k, c[0] + 0.3 * r), 0.2 * r)).max(0.0)
    });
    let gm = Array3::from_shape_fn(sh, |(i, j, k)| {
        let d = dist(i, j, k, c[0]);
        (frac(d, 0.9 * r) - frac(d, 0.65 * r)).max(0.0)
    });
    let h1 = header_for(sh, [1.0; 3], [-10.0, 20.0, 5.0]);
    let h2 = reslice_header(&h1, [2.0; 3], [0.5; 3]);
    let (g2, w2) = (
        downsample_mean(&gm.view(), [2; 3]),
        downsample_mean(&wm.view(), [2; 3]),
    );
    (
        Anatomy::from_gm_wm(gm, wm, h1),
        Anatomy::from_gm_wm(g2, w2, h2),
    )
}

#[test]
fn spatial_parameters_are_in_mm_not_voxels() {
    let (a1, a2) = anatomy_pair([40, 44, 32]);
    assert_eq!((a1.voxel_mm(), a2.voxel_mm()), (1.0, 2.0));
    let o2 = SimOptions::ixi_like(5, a2.dims(), [0.0; 3]);
    let o1 = SimOptions::ixi_like(5, a1.dims(), [0.0; 3]);
    for index in [0, 3] {
        let (w1, w2) = (subject_warp(&a1, &o1, index), subject_warp(&a2, &o2, index));
        // The draws are the same subject: amplitudes (mm), rotation, scale, translation (mm).
        assert_eq!((w1.theta, w1.scale), (w2.theta, w2.scale));
        for a in 0..3 {
            assert!((w1.translation[a] * 1.0 - w2.translation[a] * 2.0).abs() < 1e-12);
        }
        let peak = |w: &simulate::SubjectWarp, v: f64| w.field.max_displacement_on_grid() * v;
        assert!(peak(&w2, 2.0) > 1.0, "the deformation is not trivial");
        assert!((peak(&w1, 1.0) - peak(&w2, 2.0)).abs() < 0.05 * peak(&w2, 2.0));
        // At every point the two map to the same anatomy position in mm. 2 mm voxel p2 is at
        // 1 mm coordinate 2·p2 + 0.5 (it covers 1 mm voxels 2·p2 and 2·p2 + 1).
        let mut worst = 0.0f64;
        for p2 in [
            [0.0, 0.0, 0.0],
            [5.0, 17.0, 3.0],
            [19.0, 21.0, 15.0],
            [9.5, 3.25, 8.0],
        ] {
            let p1 = p2.map(|x| 2.0 * x + 0.5);
            let (s1, s2) = (w1.source(p1), w2.source(p2));
            for a in 0..3 {
                worst = worst.max((s1[a] - (2.0 * s2[a] + 0.5)).abs());
            }
        }
        assert!(
            worst < 1e-9,
            "subject {index}: positions differ by {worst} mm"
        );
    }
    // A fixed mm amplitude means half as many voxels at 2 mm.
    assert_eq!(o1.field.max_displacement, 6.0);
    assert_eq!(o1.max_translation_mm, 4.0);
}

fn correlation(a: &Array3<f32>, b: &Array3<f32>) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&x| f64::from(x)).sum::<f64>() / n,
        b.iter().map(|&x| f64::from(x)).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    Zip::from(a).and(b).for_each(|&x, &y| {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    });
    sab / (saa * sbb).sqrt()
}

#[test]
fn one_mm_and_two_mm_show_the_same_subject_and_keep_alignment_and_contrast() {
    let (a1, a2) = anatomy_pair([48, 52, 32]);
    let quiet = |a: &Anatomy| {
        let mut o = SimOptions::ixi_like(9, a.dims(), [0.0; 3]);
        o.noise = 0.0;
        o
    };
    let (o1, o2) = (quiet(&a1), quiet(&a2));
    let s1 = simulate_subject(&a1, &o1, 1);
    assert_eq!(s1.pd.data.dim(), (48, 52, 32));
    assert_eq!(s1.pd.header.pixdim[1..4], [1.0; 3]);
    // Block-averaged, the 1 mm subject is the 2 mm one up to partial volumes at the edges
    // (which the undeformed anatomy shows too: `flat`), and far from another subject.
    let flat = |o: &SimOptions| {
        let mut f = o.clone();
        f.field.max_displacement = 0.0;
        f.max_rotation_deg = 0.0;
        f.max_scale = 0.0;
        f.max_translation_mm = 0.0;
        f
    };
    let r = |o1: &SimOptions, o2: &SimOptions, i1: u64, i2: u64| {
        let down = downsample_mean(&simulate_subject(&a1, o1, i1).t2.data.view(), [2; 3]);
        correlation(&down, &simulate_subject(&a2, o2, i2).t2.data)
    };
    let baseline = r(&flat(&o1), &flat(&o2), 1, 1);
    let same = r(&o1, &o2, 1, 1);
    let other = r(&o1, &o2, 1, 2);
    eprintln!("undeformed {baseline}, same subject {same}, other subject {other}");
    assert!(same > 0.9, "1 mm vs 2 mm, same subject: r = {same}");
    assert!(
        same > baseline - 0.02,
        "the warp adds a mismatch: r = {same} against {baseline} undeformed"
    );
    assert!(same > other + 0.2, "same {same} vs other subject {other}");

    // At 1 mm, PD and T2 stay voxel-aligned (same support and header) and CSF > GM > WM.
    let s = simulate_subject(&a1, &SimOptions::ixi_like(9, a1.dims(), [0.0; 3]), 1);
    assert_eq!(s.pd.header.srow_x, s.t2.header.srow_x);
    assert_pd_t2_and_mask_share_their_support(&s);
    let s = simulate_subject(&a1, &flat(&o1), 0);
    let pure = |f: &Array3<f32>| f.mapv(|x| x > 0.99);
    for (name, v) in [("PD", &s.pd.data), ("T2", &s.t2.data)] {
        let (csf, gm, wm) = (
            mean_where(v, &pure(&a1.csf)),
            mean_where(v, &pure(&a1.gm)),
            mean_where(v, &pure(&a1.wm)),
        );
        assert!(
            csf > gm && gm > wm,
            "{name} at 1 mm: CSF {csf} GM {gm} WM {wm}"
        );
    }
}
