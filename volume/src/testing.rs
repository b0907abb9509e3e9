//! Small phantom volumes and hand-made NIfTI files, for tests and examples of the crates that
//! read volumes, and the corpus of bad NIfTI files every consumer is tested on ([`corpus`]).

pub mod corpus;

use std::path::{Path, PathBuf};

use ndarray::Array3;

use crate::nifti_io::write_volume;
use crate::volume::Volume;

/// Writes `n` phantoms `v0.nii.gz`, `v1.nii.gz`, … into `dir` (which must exist):
/// 20×24×6 voxels of 2×2×3 mm, a disc of radius `8 + i` with a gentle gradient, intensity
/// about `scale`, zero background.
pub fn write_phantom_folder(dir: &Path, n: usize, scale: f32) -> anyhow::Result<()> {
    for s in 0..n {
        let data = Array3::from_shape_fn((20, 24, 6), |(i, j, k)| {
            let r = ((i as f32 - 10.0).powi(2) + (j as f32 - 12.0).powi(2)).sqrt();
            if r < 8.0 + s as f32 {
                scale * (1.0 + 0.1 * k as f32 + 0.01 * i as f32)
            } else {
                0.0
            }
        });
        let header = Volume::new(Array3::zeros((1, 1, 1)), [2.0, 2.0, 3.0], [0.0; 3]).header;
        write_volume(&dir.join(format!("v{s}.nii.gz")), &data, &header)?;
    }
    Ok(())
}

/// A fresh, empty folder `<tmp>/dicyc-test-<suite>-<name>-<pid>` for one test: removed first
/// if an earlier run left it, so a test never reads another run's files; the process id keeps
/// concurrent `cargo test` runs apart.
pub fn scratch_dir(suite: &str, name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("dicyc-test-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a test folder in the temp dir");
    dir
}

/// The names in `dir`, sorted: what a test compares to say a command left nothing behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("cannot list a test folder")
        .map(|e| {
            e.expect("cannot list a test folder")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A hand-made NIfTI-1 single file (`n+1`) for tests of the reader on odd and hostile files:
/// every field that matters for locating and sizing the data is chosen by the test, the rest
/// is a plain 1 mm grid by default (pixdim 1, no qform/sform, slope 1 / intercept 0).
#[derive(Clone, Debug, PartialEq)]
pub struct RawNifti {
    /// Header field `sizeof_hdr` (348 for NIfTI-1).
    pub sizeof_hdr: i32,
    /// Header field `dim` (`dim[0]` = number of dimensions).
    pub dim: [i16; 8],
    /// NIfTI datatype code (16 = float32).
    pub datatype: i16,
    /// Bits per voxel as written in the header.
    pub bitpix: i16,
    /// Byte offset of the voxel data.
    pub vox_offset: f32,
    /// `scl_slope` (1 = no scaling).
    pub scl_slope: f32,
    /// `scl_inter`.
    pub scl_inter: f32,
    /// `magic` (`n+1\0` for a single file).
    pub magic: [u8; 4],
    /// Big-endian header (and the caller's data bytes should be too).
    pub big_endian: bool,
    /// Header field `pixdim` (`pixdim[1..=3]` = voxel size in mm, `pixdim[0]` = qfac).
    pub pixdim: [f32; 8],
}

impl RawNifti {
    /// A consistent float32 header for `[x, y, z]` voxels with the data right after the
    /// header (vox_offset 352).
    pub fn float32(shape: [i16; 3]) -> Self {
        RawNifti {
            sizeof_hdr: 348,
            dim: [3, shape[0], shape[1], shape[2], 1, 1, 1, 1],
            datatype: 16,
            bitpix: 32,
            vox_offset: 352.0,
            scl_slope: 1.0,
            scl_inter: 0.0,
            magic: *b"n+1\0",
            big_endian: false,
            pixdim: [1.0; 8],
        }
    }

    /// The 348 header bytes.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; 348];
        let be = self.big_endian;
        let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
        let i16b = |v: i16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let f32b = |v: f32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        put(
            0,
            &if be {
                self.sizeof_hdr.to_be_bytes()
            } else {
                self.sizeof_hdr.to_le_bytes()
            },
        );
        for (i, d) in self.dim.iter().enumerate() {
            put(40 + 2 * i, &i16b(*d));
        }
        put(70, &i16b(self.datatype));
        put(72, &i16b(self.bitpix));
        for (i, p) in self.pixdim.iter().enumerate() {
            put(76 + 4 * i, &f32b(*p));
        }
        put(108, &f32b(self.vox_offset));
        put(112, &f32b(self.scl_slope));
        put(116, &f32b(self.scl_inter));
        put(123, &[2]); // xyzt_units: mm
        put(344, &self.magic);
        h
    }

    /// The whole file: header, extender `0 0 0 0` and zero padding up to `vox_offset` (none
    /// when vox_offset is below 352, not a number or beyond 64 MiB), then `data` as given.
    pub fn file_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut out = self.header_bytes();
        out.extend_from_slice(&[0; 4]);
        if self.vox_offset.is_finite() && self.vox_offset <= (64 << 20) as f32 {
            let start = self.vox_offset.max(0.0) as usize;
            if out.len() < start {
                out.resize(start, 0);
            }
        }
        out.extend_from_slice(data);
        out
    }

    /// The whole file with one comment extension (ecode 6, `text` zero-padded) filling the
    /// bytes from 352 to `vox_offset`, which must be 352 + a multiple of 16 larger than
    /// `text` + 8.
    pub fn file_bytes_with_comment(&self, text: &[u8], data: &[u8]) -> Vec<u8> {
        let esize = self.vox_offset as usize - 352;
        assert!(
            esize % 16 == 0 && esize >= text.len() + 8,
            "bad test extension"
        );
        let i32b = |v: i32| {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = self.header_bytes();
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.extend_from_slice(&i32b(esize as i32));
        out.extend_from_slice(&i32b(6));
        out.extend_from_slice(text);
        out.resize(self.vox_offset as usize, 0);
        out.extend_from_slice(data);
        out
    }
}

/// `values` as little-endian (or big-endian) float32 bytes.
pub fn f32_bytes(values: &[f32], big_endian: bool) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        })
        .collect()
}

/// One gzip member holding `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}
