//! InVesalius project (`.inv3`) import: geometry, exact HU round trip through NIfTI, and bad
//! input refused with a clear error and nothing written. The projects are built here, in the
//! layout of the real `Cranium.inv3` (members in one folder, XML `main.plist`, raw int16
//! `matrix.dat`, masks after the matrix).

use std::io::Write;
use std::path::{Path, PathBuf};

use dicyc_volume::inv3::{convert_inv3, read_inv3, read_inv3_with};
use dicyc_volume::nifti_io::{read_volume, ReadLimits};
use dicyc_volume::volume::affine_of;

/// Shape (z, y, x) and spacing (x, y, z) of the test projects.
const SHAPE: [usize; 3] = [3, 4, 5];
const SPACING: [f64; 3] = [0.5, 0.75, 1.5];

/// A distinct value per voxel, with the int16 extremes at two corners.
fn hu(z: usize, y: usize, x: usize) -> i16 {
    match (z, y, x) {
        (0, 0, 0) => i16::MIN,
        (2, 3, 4) => i16::MAX,
        _ => -1024 + (100 * z + 10 * y + x) as i16,
    }
}

fn matrix_bytes(shape: [usize; 3]) -> Vec<u8> {
    let mut b = Vec::new();
    for z in 0..shape[0] {
        for y in 0..shape[1] {
            for x in 0..shape[2] {
                b.extend_from_slice(&hu(z, y, x).to_le_bytes());
            }
        }
    }
    b
}

/// `main.plist` as InVesalius writes it (keys of the real Cranium.inv3).
fn main_plist(shape: [usize; 3], spacing: [f64; 3], dtype: &str, filename: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple Computer//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>annotations</key>
	<dict>
	</dict>
	<key>format_version</key>
	<integer>1</integer>
	<key>masks</key>
	<dict>
		<key>0</key>
		<string>mask_0.plist</string>
	</dict>
	<key>matrix</key>
	<dict>
		<key>dtype</key>
		<string>{dtype}</string>
		<key>filename</key>
		<string>{filename}</string>
		<key>shape</key>
		<array>
			<integer>{}</integer>
			<integer>{}</integer>
			<integer>{}</integer>
		</array>
	</dict>
	<key>modality</key>
	<string>CT</string>
	<key>orientation</key>
	<integer>1</integer>
	<key>scalar_range</key>
	<array>
		<integer>-1024</integer>
		<integer>3033</integer>
	</array>
	<key>spacing</key>
	<array>
		<real>{}</real>
		<real>{}</real>
		<real>{}</real>
	</array>
	<key>window_level</key>
	<real>-18.0</real>
	<key>window_width</key>
	<real>406.0</real>
</dict>
</plist>
"#,
        shape[0], shape[1], shape[2], spacing[0], spacing[1], spacing[2]
    )
}

/// A tar of `(name, bytes)` members, as InVesalius's `tarfile` writes them.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o666);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A well-formed project: main.plist, matrix.dat, then a mask (as in the real file).
fn project_tar() -> Vec<u8> {
    let plist = main_plist(SHAPE, SPACING, "int16", "matrix.dat");
    let matrix = matrix_bytes(SHAPE);
    let mask = vec![0u8; 4 * 5 * 6];
    tar_of(&[
        ("tmpabc123/main.plist", plist.as_bytes()),
        ("tmpabc123/mask_0.dat", &mask),
        ("tmpabc123/matrix.dat", &matrix),
        ("tmpabc123/mask_0.plist", b"<plist/>"),
    ])
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("dicyc-inv3-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Converting `src` fails with a message naming it and containing `what`, and leaves the
/// output folder empty (no NIfTI, no temporary).
fn refused(src: &Path, what: &str) {
    let out = src.with_file_name(format!(
        "out-{}",
        src.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&out).unwrap();
    let err = format!(
        "{:#}",
        convert_inv3(src, &out.join("ct.nii.gz")).expect_err("must be refused")
    );
    assert!(
        err.contains(&src.display().to_string()),
        "error does not name the file: {err}"
    );
    assert!(err.contains(what), "error lacks {what:?}: {err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
}

#[test]
fn geometry_and_exact_hu_round_trip() {
    let d = Dir::new("roundtrip");
    let src = d.file("Cranium.inv3", &gzip(&project_tar()));
    let dst = d.0.join("ct.nii.gz");
    let scan = convert_inv3(&src, &dst).unwrap();
    assert_eq!(scan.info.shape_zyx, SHAPE);
    assert_eq!(scan.info.spacing_xyz, SPACING);
    assert_eq!(scan.info.modality.as_deref(), Some("CT"));
    assert_eq!(scan.info.orientation.as_deref(), Some("1"));
    assert_eq!(scan.info.window_level, Some(-18.0));
    assert_eq!(scan.info.window_width, Some(406.0));
    assert_eq!(scan.info.scalar_range, Some([-1024.0, 3033.0]));
    assert_eq!(scan.info.matrix_member, "tmpabc123/matrix.dat");
    assert_eq!(scan.info.members.len(), 4);
    assert_eq!(scan.range, [i16::MIN, i16::MAX]);

    let v = read_volume(&dst).unwrap();
    let [nz, ny, nx] = SHAPE;
    assert_eq!(v.dim(), (nx, ny, nz), "NIfTI grid is x, y, z");
    assert_eq!(v.spacing(), SPACING.map(|s| s as f32));
    // RAS+: i towards the right (InVesalius's x mirrored), j anterior, k superior; centred.
    let a = affine_of(&v.header);
    let dims = [nx, ny, nz];
    for r in 0..3 {
        for c in 0..3 {
            let want = if r == c { SPACING[r] } else { 0.0 };
            assert!((a[r][c] - want).abs() < 1e-6, "affine {a:?}");
        }
        let centre = a[r][3] + a[r][r] * (dims[r] - 1) as f64 / 2.0;
        assert!(centre.abs() < 1e-6, "volume not centred: {a:?}");
    }
    assert_eq!(v.header.qform_code, v.header.sform_code);
    assert!(v.header.sform_code > 0);
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let want = f32::from(hu(k, j, nx - 1 - i));
                assert_eq!(v.data[[i, j, k]], want, "voxel ({i}, {j}, {k})");
            }
        }
    }
    // The in-memory volume is what was written.
    assert_eq!(scan.volume.data, v.data);
}

#[test]
fn plain_tar_and_top_level_members_read_the_same() {
    let d = Dir::new("plain");
    let gz = read_inv3(&d.file("a.inv3", &gzip(&project_tar()))).unwrap();
    let plain = read_inv3(&d.file("b.inv3", &project_tar())).unwrap();
    assert_eq!(gz.volume.data, plain.volume.data);
    let plist = main_plist(SHAPE, SPACING, "int16", "matrix.dat");
    let flat = tar_of(&[
        ("main.plist", plist.as_bytes()),
        ("matrix.dat", &matrix_bytes(SHAPE)),
    ]);
    let top = read_inv3(&d.file("c.inv3", &gzip(&flat))).unwrap();
    assert_eq!(top.volume.data, gz.volume.data);
}

#[test]
fn truncated_project_is_refused() {
    let d = Dir::new("truncated");
    let whole = gzip(&project_tar());
    for cut in [
        1,
        10,
        200,
        whole.len() / 2,
        whole.len() - 9,
        whole.len() - 1,
    ] {
        let src = d.file(&format!("cut-{cut}.inv3"), &whole[..cut]);
        let err = format!("{:#}", read_inv3(&src).unwrap_err());
        assert!(
            err.contains("truncated") || err.contains("damaged") || err.contains("neither"),
            "cut at {cut}: {err}"
        );
        refused(&src, "");
    }
    // Truncated after the matrix, inside a later member: still refused (every byte is read).
    let tar = project_tar();
    let src = d.file("late-cut.inv3", &gzip(&tar[..tar.len() - 1100]));
    refused(&src, "truncated");
}

#[test]
fn missing_matrix_is_refused() {
    let d = Dir::new("missing");
    let plist = main_plist(SHAPE, SPACING, "int16", "matrix.dat");
    let tar = tar_of(&[("tmpx/main.plist", plist.as_bytes())]);
    refused(
        &d.file("nomatrix.inv3", &gzip(&tar)),
        "has no tmpx/matrix.dat",
    );
    // A matrix in another folder than main.plist is not this project's.
    let tar = tar_of(&[
        ("tmpx/main.plist", plist.as_bytes()),
        ("other/matrix.dat", &matrix_bytes(SHAPE)),
    ]);
    refused(
        &d.file("elsewhere.inv3", &gzip(&tar)),
        "has no tmpx/matrix.dat",
    );
    let tar = tar_of(&[("tmpx/matrix.dat", &matrix_bytes(SHAPE))]);
    refused(&d.file("noplist.inv3", &gzip(&tar)), "no main.plist");
}

#[test]
fn matrix_size_mismatch_is_refused() {
    let d = Dir::new("mismatch");
    for shape in [[3, 4, 6], [3, 4, 4], [1, 1, 1]] {
        let plist = main_plist(shape, SPACING, "int16", "matrix.dat");
        let tar = tar_of(&[
            ("t/main.plist", plist.as_bytes()),
            ("t/matrix.dat", &matrix_bytes(SHAPE)),
        ]);
        let need = shape.iter().product::<usize>() * 2;
        let src = d.file(
            &format!("{}x{}x{}.inv3", shape[0], shape[1], shape[2]),
            &gzip(&tar),
        );
        refused(
            &src,
            &format!(
                "holds 120 bytes, but main.plist's shape {}×{}×{} (z, y, x) of int16 needs {need}",
                shape[0], shape[1], shape[2]
            ),
        );
    }
}

#[test]
fn not_gzip_is_refused() {
    let d = Dir::new("notgzip");
    refused(
        &d.file("text.inv3", b"hello, this is not a project"),
        "neither gzip-compressed nor a tar archive",
    );
    refused(&d.file("empty.inv3", b""), "is empty");
    // gzip, but not a tar inside.
    refused(&d.file("gz.inv3", &gzip(&[7u8; 2000])), "damaged");
    // A folder named like a project.
    let folder = d.0.join("folder.inv3");
    std::fs::create_dir_all(&folder).unwrap();
    let err = format!("{:#}", read_inv3(&folder).unwrap_err());
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn bad_plist_is_refused() {
    let d = Dir::new("plist");
    let cases: [(&str, String, &str); 7] = [
        (
            "dtype",
            main_plist(SHAPE, SPACING, "float32", "matrix.dat"),
            "only int16",
        ),
        (
            "name",
            main_plist(SHAPE, SPACING, "int16", "../matrix.dat"),
            "not a plain file name",
        ),
        (
            "zero",
            main_plist([0, 4, 5], SPACING, "int16", "matrix.dat"),
            "whole numbers from 1",
        ),
        (
            "spacing",
            main_plist(SHAPE, [0.5, -1.0, 1.5], "int16", "matrix.dat"),
            "positive sizes in mm",
        ),
        (
            "nan",
            main_plist(SHAPE, [0.5, f64::NAN, 1.5], "int16", "matrix.dat"),
            "spacing",
        ),
        (
            "xml",
            "<plist><dict><key>matrix</key>".to_string(),
            "not a valid property list",
        ),
        (
            "nomatrix",
            main_plist(SHAPE, SPACING, "int16", "matrix.dat")
                .replace("<key>matrix</key>", "<key>matrix_</key>"),
            "has no \"matrix\"",
        ),
    ];
    for (tag, plist, what) in cases {
        let tar = tar_of(&[
            ("t/main.plist", plist.as_bytes()),
            ("t/matrix.dat", &matrix_bytes(SHAPE)),
        ]);
        refused(&d.file(&format!("{tag}.inv3"), &gzip(&tar)), what);
    }
}

#[test]
fn memory_is_bounded_before_allocating() {
    let d = Dir::new("limits");
    // A tiny file claiming a 30000 × 30000 × 30000 volume: refused from the plist alone.
    let plist = main_plist([30000, 30000, 30000], SPACING, "int16", "matrix.dat");
    let tar = tar_of(&[("t/main.plist", plist.as_bytes())]);
    refused(&d.file("bomb.inv3", &gzip(&tar)), "over the limit");
    // Within the volume limit, but the archive decompresses past it (a gzip bomb).
    let src = d.file("ok.inv3", &gzip(&project_tar()));
    let small = ReadLimits {
        max_volume_bytes: 4096,
    };
    let err = format!("{:#}", read_inv3_with(&src, &small).unwrap_err());
    assert!(err.contains("decompresses to more than the limit"), "{err}");
    read_inv3_with(&src, &ReadLimits::default()).unwrap();
}
