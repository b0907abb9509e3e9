//! NIfTI in/out: round trips (plain and gzip) keep data, affine, voxel size and header
//! fields; data types and scaling; clear errors naming the file; prepare/restore.

use std::path::{Path, PathBuf};

use dicyc_volume::nifti_io::{read_volume, write};
use dicyc_volume::preprocess::{prepare, restore, PreprocessOptions};
use dicyc_volume::testing::write_phantom_folder;
use dicyc_volume::volume::{affine_of, reslice_header, Volume};
use ndarray::Array3;
use nifti::writer::WriterOptions;
use nifti::NiftiHeader;

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("nifti", name)
}

fn sample_volume() -> Volume {
    let data = Array3::from_shape_fn((7, 5, 3), |(i, j, k)| {
        (i * 100 + j * 10 + k) as f32 * 0.5 - 3.0
    });
    let mut v = Volume::new(data, [0.9, 1.1, 2.5], [-10.0, 20.5, -30.0]);
    // An oblique, flipped geometry: qform with a rotation and qfac −1, sform different.
    v.header.quatern_b = 0.1;
    v.header.quatern_c = -0.2;
    v.header.quatern_d = 0.05;
    v.header.pixdim[0] = -1.0;
    v.header.srow_x = [-0.9, 0.01, 0.0, 90.0];
    v.header.srow_y = [0.0, 1.1, 0.02, -126.0];
    v.header.srow_z = [0.0, 0.0, 2.5, -72.0];
    v.header.set_description_str("round trip").unwrap();
    v.header.intent_name = *b"dicyc-test\0\0\0\0\0\0";
    v
}

fn assert_same_geometry(a: &NiftiHeader, b: &NiftiHeader) {
    assert_eq!(a.pixdim[..4], b.pixdim[..4]);
    assert_eq!(
        (a.srow_x, a.srow_y, a.srow_z),
        (b.srow_x, b.srow_y, b.srow_z)
    );
    assert_eq!((a.qform_code, a.sform_code), (b.qform_code, b.sform_code));
    assert_eq!(
        (a.quatern_b, a.quatern_c, a.quatern_d),
        (b.quatern_b, b.quatern_c, b.quatern_d)
    );
    assert_eq!(
        (a.quatern_x, a.quatern_y, a.quatern_z),
        (b.quatern_x, b.quatern_y, b.quatern_z)
    );
    assert_eq!(a.xyzt_units, b.xyzt_units);
    assert_eq!(a.descrip, b.descrip);
    assert_eq!(a.intent_name, b.intent_name);
}

#[test]
fn round_trip_plain_and_gzip_keeps_data_affine_and_voxel_size() {
    let d = tmpdir("rt");
    let v = sample_volume();
    for name in ["a.nii", "b.nii.gz", "with.dots.v2.nii.gz"] {
        let p = d.join(name);
        write(&p, &v).unwrap();
        assert!(p.exists(), "{name} written under its own name");
        let r = read_volume(&p).unwrap();
        assert_eq!(r.data, v.data, "{name}: data");
        assert_same_geometry(&r.header, &v.header);
        assert_eq!(affine_of(&r.header), affine_of(&v.header));
        assert_eq!(r.spacing(), [0.9, 1.1, 2.5]);
    }
    // gzip really compressed: starts with the gzip magic.
    let bytes = std::fs::read(d.join("b.nii.gz")).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn integer_types_with_slope_and_intercept_are_scaled() {
    let d = tmpdir("types");
    let raw = Array3::from_shape_fn((4, 3, 2), |(i, j, k)| (i + 4 * j + 12 * k) as i16 - 5);
    let mut h = Volume::new(Array3::zeros((4, 3, 2)), [1.0; 3], [0.0; 3]).header;
    for (name, slope, inter) in [("s.nii", 2.0f32, 10.0f32), ("t.nii.gz", 0.5, -1.0)] {
        let p = d.join(name);
        WriterOptions::new(&p)
            .reference_header(&h)
            .write_nifti(&raw)
            .unwrap();
        // The nifti writer forces slope 1 / intercept 0: patch the header bytes (plain file) or
        // write through a header with scaling by hand.
        let bytes = std::fs::read(&p).unwrap();
        let mut bytes = if name.ends_with(".gz") {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            bytes
        };
        bytes[112..116].copy_from_slice(&slope.to_le_bytes());
        bytes[116..120].copy_from_slice(&inter.to_le_bytes());
        if name.ends_with(".gz") {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            std::fs::write(&p, e.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&p, &bytes).unwrap();
        }
        let v = read_volume(&p).unwrap();
        let want = raw.mapv(|x| f32::from(x) * slope + inter);
        assert_eq!(v.data, want, "{name}");
    }
    // u8 and f64 read as well.
    h.datatype = 2;
    let u = Array3::from_shape_fn((3, 3, 3), |(i, j, k)| (i * 9 + j * 3 + k) as u8);
    WriterOptions::new(d.join("u8.nii"))
        .reference_header(&h)
        .write_nifti(&u)
        .unwrap();
    assert_eq!(
        read_volume(&d.join("u8.nii")).unwrap().data,
        u.mapv(f32::from)
    );
    let f = Array3::from_shape_fn((3, 2, 2), |(i, j, k)| (i as f64) * 0.25 - (j * k) as f64);
    WriterOptions::new(d.join("f64.nii.gz"))
        .reference_header(&h)
        .write_nifti(&f)
        .unwrap();
    assert_eq!(
        read_volume(&d.join("f64.nii.gz")).unwrap().data,
        f.mapv(|x| x as f32)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

fn err_of(p: &Path) -> String {
    format!("{:#}", read_volume(p).unwrap_err())
}

#[test]
fn truncated_and_foreign_files_give_errors_naming_the_file() {
    let d = tmpdir("bad");
    let v = sample_volume();
    for name in ["full.nii", "full.nii.gz"] {
        write(&d.join(name), &v).unwrap();
        let bytes = std::fs::read(d.join(name)).unwrap();
        let cut = d.join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let e = err_of(&cut);
        assert!(e.contains(&cut.display().to_string()), "{e}");
        let short = d.join(format!("short-{name}"));
        std::fs::write(&short, &bytes[..100]).unwrap();
        let e = err_of(&short);
        assert!(e.contains(&short.display().to_string()), "{e}");
    }
    let junk = d.join("junk.nii");
    let junk_bytes = b"this is not a NIfTI file at all, just some text that is long enough to look like a header maybe".repeat(5);
    std::fs::write(&junk, &junk_bytes).unwrap();
    let e = err_of(&junk);
    assert!(e.contains("junk.nii"), "{e}");
    let e = err_of(&d.join("missing.nii.gz"));
    assert!(
        e.contains("missing.nii.gz") && e.contains("does not exist"),
        "{e}"
    );
    let png = d.join("image.png");
    std::fs::write(&png, b"\x89PNG").unwrap();
    assert!(err_of(&png).contains("image.png"));
    // Inputs are never touched by a failed read.
    assert_eq!(std::fs::read(&junk).unwrap(), junk_bytes);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn dimensionality_rules() {
    let d = tmpdir("dims");
    let h = Volume::new(Array3::zeros((1, 1, 1)), [1.0; 3], [0.0; 3]).header;
    let four =
        ndarray::Array4::<f32>::from_shape_fn((3, 3, 2, 2), |(i, j, k, t)| (i + j + k + t) as f32);
    WriterOptions::new(d.join("4d.nii"))
        .reference_header(&h)
        .write_nifti(&four)
        .unwrap();
    let e = err_of(&d.join("4d.nii"));
    assert!(
        e.contains("4d.nii") && e.contains("more than one volume"),
        "{e}"
    );
    let single =
        ndarray::Array4::<f32>::from_shape_fn((3, 3, 2, 1), |(i, j, k, _)| (i + j + k) as f32);
    WriterOptions::new(d.join("4d1.nii"))
        .reference_header(&h)
        .write_nifti(&single)
        .unwrap();
    assert_eq!(read_volume(&d.join("4d1.nii")).unwrap().dim(), (3, 3, 2));
    let two = ndarray::Array2::<f32>::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f32);
    WriterOptions::new(d.join("2d.nii"))
        .reference_header(&h)
        .write_nifti(&two)
        .unwrap();
    let v = read_volume(&d.join("2d.nii")).unwrap();
    assert_eq!(v.dim(), (4, 5, 1));
    assert_eq!(v.data[[3, 4, 0]], 19.0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn resliced_header_keeps_world_positions() {
    let v = sample_volume();
    let h2 = reslice_header(&v.header, [2.0, 2.0, 1.0], [0.5, 1.5, 1.0]);
    let (a, b) = (affine_of(&v.header), affine_of(&h2));
    // New voxel (1, 2, 0) is old voxel (2.5, 5.5, 1.0).
    for r in 0..3 {
        let old = a[r][0] * 2.5 + a[r][1] * 5.5 + a[r][2] * 1.0 + a[r][3];
        let new = b[r][0] + b[r][1] * 2.0 + b[r][3];
        assert!((old - new).abs() < 1e-3, "{old} vs {new}");
    }
    // The qform moves the same way.
    let mut q1 = v.header.clone();
    q1.sform_code = 0;
    let mut q2 = h2.clone();
    q2.sform_code = 0;
    let (a, b) = (affine_of(&q1), affine_of(&q2));
    for r in 0..3 {
        let old = a[r][0] * 2.5 + a[r][1] * 5.5 + a[r][2] * 1.0 + a[r][3];
        let new = b[r][0] + b[r][1] * 2.0 + b[r][3];
        assert!((old - new).abs() < 1e-3, "qform {old} vs {new}");
    }
}

fn phantom_folder(d: &Path, n: usize, scale: f32) {
    write_phantom_folder(d, n, scale).unwrap();
}

#[test]
fn prepare_then_restore_returns_source_units_on_the_source_grid() {
    let d = tmpdir("restore");
    phantom_folder(&d, 1, 250.0);
    let v = read_volume(&d.join("v0.nii.gz")).unwrap();
    // Same spacing: identity generator → the volume itself (up to clamping at ±1 of the range).
    let p = prepare(
        &v,
        &PreprocessOptions {
            sd_range: 10.0,
            ..Default::default()
        },
    )
    .unwrap();
    let back = restore(&p.slices, &p, &p.norm);
    let err = (&back - &v.data)
        .mapv(f32::abs)
        .fold(0.0f32, |a, &b| a.max(b));
    assert!(err < 1e-3, "max error {err}");
    // Resampled to 1 mm and back: same grid, close values away from edges.
    let p = prepare(
        &v,
        &PreprocessOptions {
            sd_range: 10.0,
            spacing: Some([1.0, 1.0]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(p.slices[0].dim(), (40, 48));
    let back = restore(&p.slices, &p, &p.norm);
    assert_eq!(back.dim(), v.dim());
    assert!((back[[10, 12, 2]] - v.data[[10, 12, 2]]).abs() < 1.0);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A tiny volume whose header claims huge voxels would grow without bound on a fine working
/// grid (2 × 2 voxels of 100 m are 200 000² voxels at 1 mm): `prepare` refuses it against the
/// volume limit before resampling, naming both spacings and what to check.
#[test]
fn prepare_refuses_a_resampling_that_would_exceed_the_volume_limit() {
    use dicyc_volume::testing::{f32_bytes, RawNifti};
    let d = tmpdir("resample-bomb");
    let path = d.join("huge-voxels.nii");
    let mut raw = RawNifti::float32([2, 2, 1]);
    raw.pixdim[1] = 1e5;
    raw.pixdim[2] = 1e5;
    std::fs::write(
        &path,
        raw.file_bytes(&f32_bytes(&[1.0, 2.0, 3.0, 4.0], false)),
    )
    .unwrap();
    let v = read_volume(&path).unwrap();
    let opts = PreprocessOptions {
        spacing: Some([1.0, 1.0]),
        ..Default::default()
    };
    let err = format!("{:#}", prepare(&v, &opts).unwrap_err());
    for word in [
        "200000×200000",
        "volume limit",
        "pixdim",
        "DICYC_MAX_VOLUME_BYTES",
    ] {
        assert!(err.contains(word), "{word:?} missing from: {err}");
    }
    // The same volume at its own spacing is prepared as it is.
    let p = prepare(&v, &PreprocessOptions::default()).unwrap();
    assert_eq!(p.slices[0].dim(), (2, 2));
    std::fs::remove_dir_all(&d).unwrap();
}
