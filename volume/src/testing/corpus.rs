//! The corpus of bad and odd NIfTI files that every consumer of volumes is tested on (issue
//! 11): generated into a folder by [`write_corpus`], a few KiB each, so that no binary file is
//! committed. It covers the findings of the hostile probe (bitpix against datatype, vox_offset,
//! memory bombs, slices under 8 px) and the usual NIfTI pathologies: truncated data, truncated
//! gzip, a `.nii.gz` that is not gzip, an empty file, a folder named like a file, zero and
//! negative dims, `dim[0]` 0 or 8, unsupported datatypes (RGB, complex), NaN/Inf voxels, a
//! constant volume (sd 0), 4D with several volumes, `scl_slope` 0 or NaN, pixdim 0 or negative,
//! NIfTI-2 and big-endian headers.
//!
//! Each file says what a correct reader does with it ([`Expect`]): refuse it with an error
//! naming the file, or read it as exactly the given voxels. Whether a consumer can then *use*
//! a volume it read (a slice size the generator cannot run, a volume without foreground to
//! train on) is the consumer's rule, not the reader's; the corpus test decides that per
//! consumer.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ndarray::Array3;

use super::{f32_bytes, gzip, RawNifti};

/// The shape of the corpus's volumes (`[x, y, z]`): small, and with slices the generator can
/// run (12 × 10, padded to 12 × 12).
pub const SHAPE: [i16; 3] = [12, 10, 2];

/// What a correct reader does with one file of the corpus.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// An error that names the file and contains each of these words.
    Refused(Vec<&'static str>),
    /// Read as exactly these voxel values (`[x, y, z]`, in physical units after scaling).
    Reads(Array3<f32>),
}

/// One file of the corpus.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// The pathology, e.g. `bitpix-8`: also the file's stem.
    pub class: &'static str,
    /// Where [`write_corpus`] put it.
    pub path: PathBuf,
    /// What a correct reader does with it.
    pub expect: Expect,
}

/// Voxel values of the corpus's usual volume of `shape`: all different, some negative, on a
/// grid of 0.25 (exact in every type the corpus stores them in), and the raw int16 values
/// `i·100 + j·10 + k` they are scaled from (slope 0.25, intercept −7).
pub fn sample(shape: [i16; 3]) -> Array3<f32> {
    let [nx, ny, nz] = shape.map(|s| s as usize);
    Array3::from_shape_fn((nx, ny, nz), |(i, j, k)| raw(i, j, k) as f32 * 0.25 - 7.0)
}

fn raw(i: usize, j: usize, k: usize) -> i16 {
    (i * 100 + j * 10 + k) as i16
}

/// `data` in the file's voxel order (Fortran: x fastest).
pub fn fortran_order(data: &Array3<f32>) -> Vec<f32> {
    let (nx, ny, nz) = data.dim();
    let mut out = Vec::with_capacity(data.len());
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                out.push(data[[i, j, k]]);
            }
        }
    }
    out
}

/// A float32 header of [`SHAPE`] changed by `edit`.
fn header(edit: impl FnOnce(&mut RawNifti)) -> RawNifti {
    let mut h = RawNifti::float32(SHAPE);
    edit(&mut h);
    h
}

/// The usual volume's file with the header `h` put over its first 348 bytes: the data stay
/// at byte 352 whatever `h` declares (so a wrong vox_offset or a huge dim does not make the
/// file large).
fn over_good_file(h: &RawNifti) -> Vec<u8> {
    let data = f32_bytes(&fortran_order(&sample(SHAPE)), false);
    let mut bytes = RawNifti::float32(SHAPE).file_bytes(&data);
    bytes[..348].copy_from_slice(&h.header_bytes());
    bytes
}

/// A NIfTI-2 single file (`n+2`, 540-byte header, data at 544) of the usual volume.
fn nifti2_bytes() -> Vec<u8> {
    let mut h = vec![0u8; 540];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&16i16.to_le_bytes()); // datatype float32
    h[14..16].copy_from_slice(&32i16.to_le_bytes()); // bitpix
    let dims = [
        3i64,
        SHAPE[0].into(),
        SHAPE[1].into(),
        SHAPE[2].into(),
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1f64.to_le_bytes()); // pixdim
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes()); // vox_offset
    h[176..184].copy_from_slice(&1f64.to_le_bytes()); // scl_slope
    h.extend_from_slice(&[0; 4]);
    h.extend(f32_bytes(&fortran_order(&sample(SHAPE)), false));
    h
}

/// Writes the corpus into `dir` (created if needed; files of an earlier corpus are
/// overwritten) and returns its files in a fixed order.
pub fn write_corpus(dir: &Path) -> anyhow::Result<Vec<CorpusFile>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let good = sample(SHAPE);
    let good_f32 = f32_bytes(&fortran_order(&good), false);
    let good_file = RawNifti::float32(SHAPE).file_bytes(&good_f32);
    let refused = |words: &[&'static str]| Expect::Refused(words.to_vec());
    let reads = |data: &Array3<f32>| Expect::Reads(data.clone());

    // (class, file name, bytes, expectation); the folder named like a file comes after.
    let mut files: Vec<(&'static str, &'static str, Vec<u8>, Expect)> = Vec::new();
    let mut add = |class, name, bytes, expect| files.push((class, name, bytes, expect));

    // Empty, truncated, not what the name says.
    add("empty", "empty.nii.gz", Vec::new(), refused(&["0 bytes"]));
    add(
        "truncated-header",
        "truncated-header.nii",
        good_file[..200].to_vec(),
        refused(&["200 bytes", "348"]),
    );
    add(
        "truncated-data",
        "truncated-data.nii",
        good_file[..good_file.len() - 100].to_vec(),
        refused(&["truncated"]),
    );
    let gz = gzip(&good_file);
    add(
        "truncated-gzip",
        "truncated-gzip.nii.gz",
        gz[..gz.len() / 2].to_vec(),
        refused(&["truncated"]),
    );
    add(
        "truncated-data-in-gzip",
        "truncated-data-in-gzip.nii.gz",
        gzip(&good_file[..good_file.len() - 100]),
        refused(&["truncated"]),
    );
    add(
        "not-gzip",
        "not-gzip.nii.gz",
        b"this is not a NIfTI volume\n".repeat(20),
        refused(&["not a NIfTI-1 file"]),
    );
    // Compression is recognised by content: a plain file named .nii.gz reads.
    add(
        "plain-named-gz",
        "plain-named-gz.nii.gz",
        good_file.clone(),
        reads(&good),
    );
    let mut two_members = gzip(&good_file[..400]);
    two_members.extend(gzip(&good_file[400..]));
    add(
        "multi-member-gzip",
        "multi-member-gzip.nii.gz",
        two_members,
        reads(&good),
    );

    // Dimensions.
    for (class, name, dim, word) in [
        ("dim-zero", "dim-zero.nii", [3, 12, 10, 0], "dim[3] = 0"),
        (
            "dim-negative",
            "dim-negative.nii",
            [3, 12, -4, 2],
            "dim[2] = -4",
        ),
        ("dim0-zero", "dim0-zero.nii", [0, 12, 10, 2], "dim[0] = 0"),
        ("dim0-eight", "dim0-eight.nii", [8, 12, 10, 2], "dim[0] = 8"),
    ] {
        let h = header(|h| h.dim[..4].copy_from_slice(&dim));
        add(class, name, over_good_file(&h), refused(&[word]));
    }
    let four_d = |volumes: i16| {
        let h = header(|h| h.dim[..5].copy_from_slice(&[4, 12, 10, 2, volumes]));
        let mut data = good_f32.clone();
        for _ in 1..volumes {
            data.extend_from_slice(&good_f32);
        }
        h.file_bytes(&data)
    };
    add(
        "4d-three-volumes",
        "4d-three-volumes.nii",
        four_d(3),
        refused(&["more than one volume", "fslsplit"]),
    );
    add(
        "4d-one-volume",
        "4d-one-volume.nii",
        four_d(1),
        reads(&good),
    );
    let bomb = RawNifti::float32([1024, 1024, 1024]);
    add(
        "memory-bomb",
        "memory-bomb.nii.gz",
        gzip(&bomb.file_bytes(&vec![0u8; 1 << 20])),
        refused(&["limit of", "DICYC_MAX_VOLUME_BYTES"]),
    );
    let tiny = sample([4, 4, 2]);
    add(
        "slice-4x4",
        "slice-4x4.nii",
        RawNifti::float32([4, 4, 2]).file_bytes(&f32_bytes(&fortran_order(&tiny), false)),
        reads(&tiny),
    );

    // Datatypes and bitpix.
    for (class, name, datatype, bitpix, word) in [
        ("rgb24", "rgb24.nii", 128, 24, "not supported"),
        ("complex64", "complex64.nii", 32, 64, "not supported"),
        (
            "datatype-unknown",
            "datatype-unknown.nii",
            999,
            32,
            "datatype",
        ),
        ("bitpix-8", "bitpix-8.nii", 16, 8, "bitpix = 8"),
        ("bitpix-0", "bitpix-0.nii", 16, 0, "bitpix = 0"),
    ] {
        let h = header(|h| {
            h.datatype = datatype;
            h.bitpix = bitpix;
        });
        add(class, name, over_good_file(&h), refused(&[word]));
    }
    let h = header(|h| h.bitpix = 8);
    add(
        "bitpix-8-gzip",
        "bitpix-8-gzip.nii.gz",
        gzip(&over_good_file(&h)),
        refused(&["bitpix = 8"]),
    );

    // Voxel values and their scaling.
    for (class, name, bad, word) in [
        ("nan-voxel", "nan-voxel.nii", f32::NAN, "NaN"),
        ("inf-voxel", "inf-voxel.nii", f32::INFINITY, "infinite"),
    ] {
        let mut values = fortran_order(&good);
        values[17] = bad;
        let bytes = RawNifti::float32(SHAPE).file_bytes(&f32_bytes(&values, false));
        add(class, name, bytes, refused(&[word]));
    }
    let constant = Array3::from_elem(good.dim(), 42.5f32);
    add(
        "constant",
        "constant.nii",
        RawNifti::float32(SHAPE).file_bytes(&f32_bytes(&fortran_order(&constant), false)),
        reads(&constant),
    );
    let int16 = |slope: f32, inter: f32| {
        let h = header(|h| {
            h.datatype = 4;
            h.bitpix = 16;
            h.scl_slope = slope;
            h.scl_inter = inter;
        });
        let (nx, ny, nz) = good.dim();
        let mut data = Vec::new();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    data.extend_from_slice(&raw(i, j, k).to_le_bytes());
                }
            }
        }
        h.file_bytes(&data)
    };
    add(
        "int16-scaled",
        "int16-scaled.nii",
        int16(0.25, -7.0),
        reads(&good),
    );
    // scl_slope 0 means "no scaling" (the NIfTI-1 standard), whatever scl_inter says.
    add(
        "scl-slope-zero",
        "scl-slope-zero.nii",
        int16(0.0, -7.0),
        reads(&good.mapv(|v| (v + 7.0) * 4.0)),
    );
    add(
        "scl-slope-nan",
        "scl-slope-nan.nii",
        int16(f32::NAN, 0.0),
        refused(&["scl_slope = NaN"]),
    );
    add(
        "scl-inter-inf",
        "scl-inter-inf.nii",
        int16(1.0, f32::INFINITY),
        refused(&["scl_inter = inf"]),
    );

    // Voxel size: pixdim entries of 0 or not finite read as 1 mm, negative ones as their
    // magnitude (`Volume::spacing`); the voxels are unaffected.
    for (class, name, pixdim) in [
        ("pixdim-zero", "pixdim-zero.nii", [0.0, 0.0, 0.0]),
        ("pixdim-negative", "pixdim-negative.nii", [-2.0, -2.0, -3.0]),
    ] {
        let h = header(|h| h.pixdim[1..4].copy_from_slice(&pixdim));
        add(class, name, h.file_bytes(&good_f32), reads(&good));
    }

    // Header formats and byte order.
    add(
        "nifti-2",
        "nifti-2.nii",
        nifti2_bytes(),
        refused(&["NIfTI-2"]),
    );
    add(
        "hdr-img-pair",
        "hdr-img-pair.nii",
        over_good_file(&header(|h| h.magic = *b"ni1\0")),
        refused(&["ni1", ".hdr/.img"]),
    );
    add(
        "sizeof-hdr-zero",
        "sizeof-hdr-zero.nii",
        over_good_file(&header(|h| h.sizeof_hdr = 0)),
        refused(&["sizeof_hdr = 0"]),
    );
    let be = header(|h| h.big_endian = true);
    let be_file = be.file_bytes(&f32_bytes(&fortran_order(&good), true));
    add(
        "big-endian",
        "big-endian.nii",
        be_file.clone(),
        reads(&good),
    );
    add(
        "big-endian-gzip",
        "big-endian-gzip.nii.gz",
        gzip(&be_file),
        reads(&good),
    );

    // Where the data start.
    let padded = header(|h| h.vox_offset = 1024.0);
    add(
        "vox-offset-1024",
        "vox-offset-1024.nii.gz",
        gzip(&padded.file_bytes_with_comment(b"an extension before the data", &good_f32)),
        reads(&good),
    );
    for (class, name, offset, word) in [
        (
            "vox-offset-zero",
            "vox-offset-zero.nii",
            0.0,
            "vox_offset = 0",
        ),
        (
            "vox-offset-past-end",
            "vox-offset-past-end.nii",
            1e7,
            "vox_offset",
        ),
        (
            "vox-offset-nan",
            "vox-offset-nan.nii",
            f32::NAN,
            "vox_offset = NaN",
        ),
    ] {
        let h = header(|h| h.vox_offset = offset);
        add(class, name, over_good_file(&h), refused(&[word]));
    }
    let mut shifted = header(|h| h.vox_offset = 1024.0).header_bytes();
    shifted.extend_from_slice(&[0; 4]);
    shifted.extend_from_slice(&good_f32);
    add(
        "vox-offset-beyond-data",
        "vox-offset-beyond-data.nii.gz",
        gzip(&shifted),
        refused(&["truncated"]),
    );

    let mut out = Vec::with_capacity(files.len() + 1);
    for (class, name, bytes, expect) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        out.push(CorpusFile {
            class,
            path,
            expect,
        });
    }
    let folder = dir.join("folder-named-like-a-file.nii.gz");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    out.push(CorpusFile {
        class: "folder-named-like-a-file",
        path: folder,
        expect: refused(&["folder"]),
    });
    Ok(out)
}
