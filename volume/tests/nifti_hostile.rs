//! The NIfTI reader on odd and hostile files (issue 11): headers that disagree with
//! themselves, data that do not start at byte 352, misleading messages, multi-member gzip, and
//! a sweep of corrupted headers and truncations — every bad file is an error naming the file,
//! never a panic, and legal files read right.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use dicyc_volume::nifti_io::{read_volume, write};
use dicyc_volume::testing::{f32_bytes, gzip, RawNifti};
use dicyc_volume::volume::Volume;
use ndarray::Array3;

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("nifti-hostile", name)
}

const SHAPE: [i16; 3] = [5, 4, 3];

/// Voxel values in file (Fortran) order, and the same as an `[x, y, z]` array.
fn sample() -> (Vec<f32>, Array3<f32>) {
    let (nx, ny, nz) = (SHAPE[0] as usize, SHAPE[1] as usize, SHAPE[2] as usize);
    let arr = Array3::from_shape_fn((nx, ny, nz), |(i, j, k)| {
        (i * 100 + j * 10 + k) as f32 * 0.25 - 7.0
    });
    let mut fortran = Vec::new();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                fortran.push(arr[[i, j, k]]);
            }
        }
    }
    (fortran, arr)
}

/// Writes `bytes` to `dir/name` (gzipped first when the name ends in `.gz`). An existing file
/// is removed first: rewriting it in place makes ext4 flush it to disk (`auto_da_alloc`),
/// which is milliseconds per file in the sweep below.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    if name.ends_with(".gz") {
        std::fs::write(&p, gzip(bytes)).unwrap();
    } else {
        std::fs::write(&p, bytes).unwrap();
    }
    p
}

/// The error of reading `p`, failing the test on a panic or a successful read.
fn error_of(p: &Path) -> String {
    match catch_unwind(AssertUnwindSafe(|| read_volume(p))) {
        Err(_) => panic!("reading {} panicked", p.display()),
        Ok(Ok(_)) => panic!("{} was read although it is invalid", p.display()),
        Ok(Err(e)) => format!("{e:#}"),
    }
}

fn read_ok(p: &Path) -> Volume {
    match catch_unwind(AssertUnwindSafe(|| read_volume(p))) {
        Err(_) => panic!("reading {} panicked", p.display()),
        Ok(r) => r.unwrap_or_else(|e| panic!("{e:#}")),
    }
}

fn assert_names(e: &str, p: &Path, words: &[&str]) {
    assert!(e.contains(&p.display().to_string()), "no file name: {e}");
    for w in words {
        assert!(e.contains(w), "no `{w}` in: {e}");
    }
}

/// Finding 1: bitpix 8 or 0 with a float32 datatype panicked inside the nifti crate.
#[test]
fn bitpix_that_disagrees_with_the_datatype_is_an_error_not_a_panic() {
    let d = tmpdir("bitpix");
    let (values, _) = sample();
    for bitpix in [8i16, 0, 16, 64, -32, 33] {
        for ext in ["nii", "nii.gz"] {
            let mut h = RawNifti::float32(SHAPE);
            h.bitpix = bitpix;
            let p = put(
                &d,
                &format!("bitpix{bitpix}.{ext}"),
                &h.file_bytes(&f32_bytes(&values, false)),
            );
            let e = error_of(&p);
            assert_names(&e, &p, &[&format!("bitpix = {bitpix}"), "float32", "32"]);
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Finding 2: data at vox_offset 1024 (extension or padding in between) were read from
/// byte 352.
#[test]
fn data_are_read_at_vox_offset() {
    let d = tmpdir("voxoffset");
    let (values, want) = sample();
    for be in [false, true] {
        let data = f32_bytes(&values, be);
        let mut h = RawNifti::float32(SHAPE);
        h.big_endian = be;
        let mut files = vec![("at352", h.file_bytes(&data))];
        h.vox_offset = 1024.0;
        files.push(("padded1024", h.file_bytes(&data)));
        files.push((
            "comment1024",
            h.file_bytes_with_comment(b"written by a tool that pads", &data),
        ));
        h.vox_offset = 368.0;
        files.push(("comment368", h.file_bytes_with_comment(b"short", &data)));
        // vox_offset need not be a multiple of 16 in practice (the standard asks for one).
        h.vox_offset = 357.0;
        files.push(("padded357", h.file_bytes(&data)));
        for (name, bytes) in &files {
            for ext in ["nii", "nii.gz"] {
                let p = put(&d, &format!("{name}-be{be}.{ext}"), bytes);
                let v = read_ok(&p);
                assert_eq!(v.data, want, "{}", p.display());
            }
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Finding 2: impossible offsets and header sizes were accepted.
#[test]
fn impossible_vox_offset_or_sizeof_hdr_is_refused() {
    let d = tmpdir("badoffset");
    let (values, _) = sample();
    let data = f32_bytes(&values, false);
    let cases: Vec<(&str, RawNifti, &[&str])> = vec![
        (
            "past-end",
            with(|h| h.vox_offset = 1e7),
            &["vox_offset", "10000000"],
        ),
        (
            "zero",
            with(|h| h.vox_offset = 0.0),
            &["vox_offset = 0", "352"],
        ),
        (
            "inside-header",
            with(|h| h.vox_offset = 100.0),
            &["vox_offset = 100", "352"],
        ),
        (
            "348",
            with(|h| h.vox_offset = 348.0),
            &["vox_offset = 348", "352"],
        ),
        (
            "negative",
            with(|h| h.vox_offset = -352.0),
            &["vox_offset = -352"],
        ),
        (
            "fraction",
            with(|h| h.vox_offset = 352.5),
            &["vox_offset = 352.5"],
        ),
        (
            "nan",
            with(|h| h.vox_offset = f32::NAN),
            &["vox_offset = NaN"],
        ),
        (
            "inf",
            with(|h| h.vox_offset = f32::INFINITY),
            &["vox_offset = inf"],
        ),
        ("huge", with(|h| h.vox_offset = 1e30), &["vox_offset"]),
        (
            "sizeof0",
            with(|h| h.sizeof_hdr = 0),
            &["sizeof_hdr = 0", "348"],
        ),
        (
            "sizeof540",
            with(|h| h.sizeof_hdr = 540),
            &["sizeof_hdr = 540", "NIfTI-2"],
        ),
        ("pair", with(|h| h.magic = *b"ni1\0"), &["ni1", ".hdr/.img"]),
        ("magic", with(|h| h.magic = *b"abc\0"), &["magic"]),
    ];
    // The data stay at byte 352: only the header changes.
    let good = RawNifti::float32(SHAPE).file_bytes(&data);
    for (name, h, words) in cases {
        let mut bytes = good.clone();
        bytes[..348].copy_from_slice(&h.header_bytes());
        for ext in ["nii", "nii.gz"] {
            let p = put(&d, &format!("{name}.{ext}"), &bytes);
            let e = error_of(&p);
            assert_names(&e, &p, words);
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

fn with(f: impl FnOnce(&mut RawNifti)) -> RawNifti {
    let mut h = RawNifti::float32(SHAPE);
    f(&mut h);
    h
}

/// Finding 11: dim[3] = 0 was reported as "dim[2] = 112".
#[test]
fn a_bad_dim_is_named_by_its_own_index() {
    let d = tmpdir("dims");
    let cases: Vec<([i16; 8], &str, &str)> = vec![
        ([3, 112, 112, 0, 1, 1, 1, 1], "dim[3] = 0", "dim[2]"),
        ([3, 0, 112, 5, 1, 1, 1, 1], "dim[1] = 0", "dim[0]"),
        ([3, 112, -4, 5, 1, 1, 1, 1], "dim[2] = -4", "dim[1]"),
        ([4, 10, 10, 5, 0, 1, 1, 1], "dim[4] = 0", "dim[3]"),
        ([0, 10, 10, 5, 1, 1, 1, 1], "dim[0] = 0", "dim[1]"),
        ([9, 10, 10, 5, 1, 1, 1, 1], "dim[0] = 9", "dim[1]"),
        ([-3, 10, 10, 5, 1, 1, 1, 1], "dim[0] = -3", "dim[1]"),
    ];
    for (n, (dim, want, not)) in cases.into_iter().enumerate() {
        let mut h = RawNifti::float32(SHAPE);
        h.dim = dim;
        for ext in ["nii", "nii.gz"] {
            let p = put(&d, &format!("d{n}.{ext}"), &h.file_bytes(&[0u8; 4096]));
            let e = error_of(&p);
            assert_names(&e, &p, &[want]);
            assert!(!e.contains(not), "mentions {not}: {e}");
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Finding 11: a valid multi-member gzip (`cat a.gz b.gz`) was called truncated.
#[test]
fn multi_member_gzip_is_read_whole() {
    let d = tmpdir("multigz");
    let (values, want) = sample();
    let bytes = RawNifti::float32(SHAPE).file_bytes(&f32_bytes(&values, false));
    // Split right after the header, inside the header, and in the middle of the data.
    for (n, cuts) in [vec![352], vec![100], vec![352 + 37], vec![40, 352, 400]]
        .into_iter()
        .enumerate()
    {
        let mut gz = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain([bytes.len()].iter()) {
            gz.extend(gzip(&bytes[start..c]));
            start = c;
        }
        let p = d.join(format!("multi{n}.nii.gz"));
        std::fs::write(&p, &gz).unwrap();
        assert_eq!(read_ok(&p).data, want, "cuts {cuts:?}");
    }
    // A written volume, re-compressed as two members, reads the same.
    let v = Volume::new(want.clone(), [1.0, 2.0, 3.0], [0.0; 3]);
    write(&d.join("w.nii"), &v).unwrap();
    let plain = std::fs::read(d.join("w.nii")).unwrap();
    let mut gz = gzip(&plain[..500]);
    gz.extend(gzip(&plain[500..]));
    std::fs::write(d.join("w2.nii.gz"), &gz).unwrap();
    assert_eq!(read_ok(&d.join("w2.nii.gz")).data, want);
    // Junk after a complete volume is ignored as before; a broken second member that holds
    // voxels is an error naming the file.
    let mut gz = gzip(&bytes);
    gz.extend_from_slice(b"trailing junk");
    std::fs::write(d.join("junk.nii.gz"), &gz).unwrap();
    assert_eq!(read_ok(&d.join("junk.nii.gz")).data, want);
    let mut gz = gzip(&bytes[..400]);
    gz.extend_from_slice(b"not a gzip member at all");
    let p = d.join("broken.nii.gz");
    std::fs::write(&p, &gz).unwrap();
    assert_names(&error_of(&p), &p, &[]);
    // A wrong CRC in the last member (data otherwise intact) is an error.
    let mut gz = gzip(&bytes[..352]);
    gz.extend(gzip(&bytes[352..]));
    let crc_at = gz.len() - 8;
    gz[crc_at] ^= 0x55;
    let p = d.join("crc.nii.gz");
    std::fs::write(&p, &gz).unwrap();
    assert_names(&error_of(&p), &p, &["gzip"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Compression is recognised by content, so a `.NII.GZ` (upper case) or a gzip named `.nii`
/// reads too.
#[test]
fn compression_is_recognised_by_content() {
    let d = tmpdir("content");
    let (values, want) = sample();
    let bytes = RawNifti::float32(SHAPE).file_bytes(&f32_bytes(&values, false));
    std::fs::write(d.join("UPPER.NII.GZ"), gzip(&bytes)).unwrap();
    assert_eq!(read_ok(&d.join("UPPER.NII.GZ")).data, want);
    std::fs::write(d.join("gz-inside.nii"), gzip(&bytes)).unwrap();
    assert_eq!(read_ok(&d.join("gz-inside.nii")).data, want);
    std::fs::write(d.join("plain-inside.nii.gz"), &bytes).unwrap();
    assert_eq!(read_ok(&d.join("plain-inside.nii.gz")).data, want);
    std::fs::remove_dir_all(&d).unwrap();
}

/// No header corruption and no truncation makes the reader panic; every failure names the
/// file.
#[test]
fn corrupted_headers_and_truncations_never_panic() {
    let d = tmpdir("sweep");
    let (values, _) = sample();
    let good = RawNifti::float32(SHAPE).file_bytes(&f32_bytes(&values, false));
    let mut n = 0;
    for at in 0..352 {
        for byte in [0x00u8, 0xff, 0x80, 0x7f, 0x01] {
            if good[at] == byte {
                continue;
            }
            let mut bad = good.clone();
            bad[at] = byte;
            // Compressed too where the field decides how the stream is read (header size,
            // dims, datatype/bitpix, vox_offset/scaling, magic): gzip is slow in debug builds.
            let gz_too = matches!(at, 0..4 | 40..56 | 70..74 | 108..120 | 344..348);
            let exts: &[&str] = if gz_too { &["nii", "nii.gz"] } else { &["nii"] };
            for ext in exts {
                let p = put(&d, &format!("m.{ext}"), &bad);
                match catch_unwind(AssertUnwindSafe(|| read_volume(&p))) {
                    Err(_) => panic!("byte {at} = {byte:#x} ({ext}): panic"),
                    Ok(Err(e)) => assert_names(&format!("{e:#}"), &p, &[]),
                    Ok(Ok(_)) => {}
                }
                n += 1;
            }
        }
    }
    assert!(n > 1500, "{n} corrupted files");
    let gz = gzip(&good);
    for len in 0..good.len() {
        let p = put(&d, "t.nii", &good[..len]);
        assert_names(&error_of(&p), &p, &[]);
    }
    for len in 0..gz.len() {
        // Cut compressed bytes (`put` would compress them).
        let p = d.join("t.nii.gz");
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, &gz[..len]).unwrap();
        assert_names(&error_of(&p), &p, &[]);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// The corpus every consumer is tested on (`tests/corpus.rs`) reads as it says: each file is
/// refused with an error naming it and the words given, or read as exactly its voxels.
#[test]
fn the_corpus_reads_as_it_says() {
    use dicyc_volume::testing::corpus::{write_corpus, Expect};
    let d = tmpdir("corpus");
    let corpus = write_corpus(&d).unwrap();
    for f in &corpus {
        match &f.expect {
            Expect::Refused(words) => assert_names(&error_of(&f.path), &f.path, words),
            Expect::Reads(data) => assert_eq!(read_ok(&f.path).data, *data, "{}", f.class),
        }
    }
    let refused = corpus
        .iter()
        .filter(|f| matches!(f.expect, Expect::Refused(_)))
        .count();
    assert!(
        refused >= 25 && corpus.len() - refused >= 10,
        "{refused} of {}",
        corpus.len()
    );
    std::fs::remove_dir_all(&d).unwrap();
}
