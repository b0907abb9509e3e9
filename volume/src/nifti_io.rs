//! NIfTI-1 in and out (`.nii` and `.nii.gz`) with the `nifti` crate.
//!
//! Reading does its own I/O and checks, and uses the crate only to parse a header that has
//! been validated and to decode voxel bytes whose size is known to match: bad input is an
//! error naming the file, never a panic in a dependency. The path must be a file, not a
//! folder. The header must be NIfTI-1 (`sizeof_hdr` 348, either byte order, magic `n+1`);
//! `dim[0]` 1–7 and every used `dim[i]` ≥ 1 (errors name the bad `dim[i]`); `bitpix` must
//! match the datatype; `scl_slope` and `scl_inter` must be finite (`scl_slope` 0: no
//! scaling); `vox_offset` must be a whole number ≥ 352, and the data are read from there
//! (extensions or padding before it are skipped). The declared size is checked against
//! [`ReadLimits`] (default 2 GiB, `DICYC_MAX_VOLUME_BYTES`) before anything is allocated; a
//! plain file must hold every declared byte before the buffer is allocated, and a compressed
//! stream's buffer only grows as decompressed bytes actually arrive. Compression is
//! recognised by content; multi-member gzip (`cat a.gz b.gz`) is read whole, member CRCs are
//! checked as their ends are reached, and bytes after the volume (or after the last gzip
//! member) are ignored.
//!
//! Reading accepts every common data type (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64),
//! applies the header's `scl_slope`/`scl_inter`, and returns `[x, y, z]` f32 data with the
//! header. Dimensionality rule: 3D volumes as they are; a 2D image is read as a volume of one
//! axial slice; 4D/5D files whose extra dimensions are all 1 are squeezed to 3D; anything with
//! more than one volume (time series, multi-echo, vectors) is refused with an error naming the
//! file (split it first, e.g. `fslsplit`).
//!
//! Writing keeps the reference header (affine, voxel size, orientation, units, description,
//! intent, slice timing …), stores float32 with slope 1 / intercept 0 and resets `cal_min`/
//! `cal_max` (display window, which no longer fits new values). Files are written to a
//! temporary name in the destination folder and renamed into place, so a failed write never
//! leaves a half-written file under the final name.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::bufread::GzDecoder;
use ndarray::{Array3, Ix3};
use nifti::writer::WriterOptions;
use nifti::{InMemNiftiVolume, IntoNdArray, NiftiHeader, NiftiType};

use crate::atomic::AtomicFile;
use crate::volume::Volume;

/// Whether a path names a NIfTI-1 single file (`.nii` or `.nii.gz`, any case).
pub fn is_nifti_path(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// The file name without `.nii` / `.nii.gz` (e.g. `subject-001`).
pub fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    for ext in [".nii.gz", ".nii"] {
        if lower.ends_with(ext) {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

/// Environment variable holding the most memory one volume may take when read
/// ([`ReadLimits::max_volume_bytes`]): a byte count, optionally with a binary suffix
/// (`4294967296`, `4096M`, `4G`, `4GiB`).
pub const MAX_VOLUME_BYTES_ENV: &str = "DICYC_MAX_VOLUME_BYTES";

/// Default of [`ReadLimits::max_volume_bytes`]: 2 GiB, i.e. 512 Mi voxels (a 1024 × 1024 ×
/// 512 float32 volume; a 256³ brain at 1 mm is 64 MiB).
pub const DEFAULT_MAX_VOLUME_BYTES: u64 = 2 << 30;

/// What the reader accepts before it allocates anything, so that a small hostile file cannot
/// exhaust memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most bytes one volume may take in memory: voxels × 4 (the float32 volume), or the
    /// file's voxel bytes when those are larger (8-byte types). Also bounds the bytes of
    /// header extensions before `vox_offset`. Reading needs about 2–3 times this at its peak.
    pub max_volume_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_volume_bytes: DEFAULT_MAX_VOLUME_BYTES,
        }
    }
}

impl ReadLimits {
    /// The default limits, with `max_volume_bytes` taken from `DICYC_MAX_VOLUME_BYTES` when it
    /// is set (an error when it is set but not a byte count).
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(MAX_VOLUME_BYTES_ENV) {
            None => Ok(Self::default()),
            Some(v) => {
                let text = v.to_string_lossy();
                let max_volume_bytes = parse_byte_count(&text).with_context(|| {
                    format!(
                        "{MAX_VOLUME_BYTES_ENV} = {text:?} is not a byte count: set it to e.g. \
                         4294967296, 4096M or 4G, or unset it for the default of {}",
                        human_bytes(DEFAULT_MAX_VOLUME_BYTES)
                    )
                })?;
                Ok(ReadLimits { max_volume_bytes })
            }
        }
    }
}

/// A positive byte count: digits with an optional binary suffix `K`, `M`, `G`, `T` (also
/// `KB`/`KiB` …, any case) or `B`.
pub fn parse_byte_count(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: u64 = num.parse().context("expected digits")?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => bail!("unknown suffix {other:?}"),
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .context("too large for 64 bits")?;
    if bytes == 0 {
        bail!("must be at least 1 byte");
    }
    Ok(bytes)
}

/// `b` in binary units for messages: `512 B`, `2.0 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Size of the NIfTI-1 header, and where the data may start at the earliest in a single file
/// (header + the 4-byte extender).
const HEADER_BYTES: usize = 348;
const MIN_VOX_OFFSET: u64 = 352;
/// How much of a compressed stream's voxel data is allocated before those bytes have
/// actually arrived; the buffer then doubles as data keep coming.
const GZ_FIRST_CHUNK: u64 = 16 << 20;

fn type_name(t: NiftiType) -> &'static str {
    match t {
        NiftiType::Uint8 => "uint8",
        NiftiType::Int8 => "int8",
        NiftiType::Uint16 => "uint16",
        NiftiType::Int16 => "int16",
        NiftiType::Uint32 => "uint32",
        NiftiType::Int32 => "int32",
        NiftiType::Uint64 => "uint64",
        NiftiType::Int64 => "int64",
        NiftiType::Float32 => "float32",
        NiftiType::Float64 => "float64",
        _ => "unsupported",
    }
}

/// Where and how big the voxel data are, from a validated header.
struct Layout {
    header: NiftiHeader,
    shape: (usize, usize, usize),
    dims: Vec<usize>,
    dtype: NiftiType,
    vox_offset: u64,
    data_bytes: u64,
}

impl Layout {
    fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!(
            "{} {} voxels from vox_offset {}",
            dims.join("×"),
            type_name(self.dtype),
            self.vox_offset
        )
    }
}

/// Checks the 348 header bytes before anything is handed to the `nifti` crate or allocated:
/// header size and magic, dimensions, datatype against bitpix, vox_offset and the declared
/// size against `limits`.
fn validate_header(path: &Path, bytes: &[u8], limits: &ReadLimits) -> Result<Layout> {
    let p = path.display();
    let word = |at: usize| -> [u8; 4] { [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]] };
    let (le, be) = (i32::from_le_bytes(word(0)), i32::from_be_bytes(word(0)));
    let big_endian = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        (540, _) | (_, 540) => bail!(
            "{p}: sizeof_hdr = 540, a NIfTI-2 header; dicyc reads NIfTI-1: re-save the volume \
             as NIfTI-1 (e.g. with nibabel's Nifti1Image, or FSL with FSLOUTPUTTYPE=NIFTI_GZ)"
        ),
        _ => bail!(
            "{p}: sizeof_hdr = {le}, but a NIfTI-1 header has 348 bytes: not a NIfTI-1 file, or \
             its header is corrupt (re-export or re-download it)"
        ),
    };
    let short = |at: usize| -> i16 {
        let b = [bytes[at], bytes[at + 1]];
        if big_endian {
            i16::from_be_bytes(b)
        } else {
            i16::from_le_bytes(b)
        }
    };
    let magic = &bytes[344..348];
    if magic == b"ni1\0" {
        bail!(
            "{p}: magic \"ni1\" says the voxel data are in a separate .img file (a .hdr/.img \
             pair); dicyc reads single-file .nii/.nii.gz: convert the pair first (e.g. \
             `fslchfiletype NIFTI_GZ`)"
        );
    }
    if magic != b"n+1\0" {
        bail!(
            "{p}: magic \"{}\" is not NIfTI-1's \"n+1\": not a single-file NIfTI-1 volume, or \
             its header is corrupt (re-export or re-download it)",
            magic.escape_ascii()
        );
    }
    let ndim = short(40);
    if !(1..=7).contains(&ndim) {
        bail!(
            "{p}: invalid NIfTI header: dim[0] = {ndim} (the number of dimensions must be 1 to \
             7); the header is corrupt, re-export the file"
        );
    }
    let ndim = ndim as usize;
    let mut dims = Vec::with_capacity(ndim);
    for i in 1..=ndim {
        let d = short(40 + 2 * i);
        if d < 1 {
            bail!(
                "{p}: invalid NIfTI header: dim[{i}] = {d} (each of the {ndim} dimensions must \
                 be at least 1); the header is corrupt, re-export the file"
            );
        }
        dims.push(d as usize);
    }
    let header = NiftiHeader::from_reader(bytes).map_err(|e| {
        anyhow::anyhow!("{p}: cannot parse the NIfTI-1 header: {e} (re-export the file)")
    })?;
    let shape = match dims.as_slice() {
        [x] => (*x, 1, 1),
        [x, y] => (*x, *y, 1),
        [x, y, z] => (*x, *y, *z),
        [x, y, z, rest @ ..] if rest.iter().all(|&d| d == 1) => (*x, *y, *z),
        _ => bail!(
            "{p}: {ndim}D NIfTI with dimensions {dims:?} holds more than one volume; dicyc reads \
             single 3D volumes (processed as 2D axial slices): split it first (e.g. `fslsplit`)"
        ),
    };
    let dtype = header
        .data_type()
        .with_context(|| format!("{p}: unknown NIfTI datatype code {}", header.datatype))?;
    match dtype {
        NiftiType::Uint8
        | NiftiType::Int8
        | NiftiType::Uint16
        | NiftiType::Int16
        | NiftiType::Uint32
        | NiftiType::Int32
        | NiftiType::Uint64
        | NiftiType::Int64
        | NiftiType::Float32
        | NiftiType::Float64 => {}
        other => bail!(
            "{p}: NIfTI datatype {other:?} (code {}) is not supported: dicyc reads single-channel \
             volumes of an integer or real scalar type; convert the volume to one first (e.g. \
             float32)",
            header.datatype
        ),
    }
    // scl_slope 0 means "no scaling" (NIfTI-1), and the `nifti` crate then ignores scl_inter;
    // otherwise both must be numbers, or every voxel would read as NaN or infinite.
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    if !slope.is_finite() || (slope != 0.0 && !inter.is_finite()) {
        bail!(
            "{p}: invalid NIfTI header: scl_slope = {slope}, scl_inter = {inter} is not a voxel \
             scaling (both must be finite numbers; scl_slope 0 means no scaling); the header is \
             corrupt: re-export the file, or set scl_slope 1 and scl_inter 0 if the stored values \
             are already in physical units"
        );
    }
    let voxel_bytes = dtype.size_of() as u64;
    if i64::from(header.bitpix) != 8 * voxel_bytes as i64 {
        bail!(
            "{p}: invalid NIfTI header: bitpix = {} but datatype {} ({}) has {} bits per voxel; \
             the header contradicts itself, re-export the file",
            header.bitpix,
            header.datatype,
            type_name(dtype),
            8 * voxel_bytes
        );
    }
    let voxels = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let memory = voxels.and_then(|v| v.checked_mul(voxel_bytes.max(4)));
    let dim_text = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    let limit = limits.max_volume_bytes;
    let voxels = match (voxels, memory) {
        (Some(v), Some(m)) if m <= limit => v,
        _ => bail!(
            "{p}: the header declares {dim_text} {} voxels, {} in memory, more than the \
             limit of {} per volume: if the volume is real, raise the limit with \
             {MAX_VOLUME_BYTES_ENV} (e.g. {MAX_VOLUME_BYTES_ENV}=8G); otherwise the header is \
             corrupt",
            type_name(dtype),
            memory.map_or_else(|| "over 16 EiB".to_string(), human_bytes),
            human_bytes(limit)
        ),
    };
    let off = header.vox_offset;
    if !off.is_finite() || off.fract() != 0.0 || off < 0.0 {
        bail!(
            "{p}: invalid NIfTI header: vox_offset = {off} is not a byte offset (a whole \
             number ≥ {MIN_VOX_OFFSET}); the header is corrupt, re-export the file"
        );
    }
    if (off as f64) < MIN_VOX_OFFSET as f64 {
        bail!(
            "{p}: invalid NIfTI header: vox_offset = {off} puts the voxel data inside the \
             header; in a single-file .nii the data start at byte {MIN_VOX_OFFSET} or later \
             (348 header bytes + 4 extender bytes); the header is corrupt, re-export the file"
        );
    }
    if off as f64 - MIN_VOX_OFFSET as f64 > limit as f64 {
        bail!(
            "{p}: vox_offset = {off} declares more than the limit of {} of header extensions \
             before the voxel data: the header is corrupt (or raise {MAX_VOLUME_BYTES_ENV})",
            human_bytes(limit)
        );
    }
    Ok(Layout {
        header,
        shape,
        dims,
        dtype,
        vox_offset: off as u64,
        data_bytes: voxels * voxel_bytes,
    })
}

/// Decompresses the gzip members of a file one after the other (`cat a.gz b.gz` is one valid
/// gzip file), as `gzip -d` does: each member's CRC and length are checked when its end is
/// read; after a member, bytes that do not start another member (padding, trailing junk) end
/// the stream and are ignored.
struct GzMembers<R: BufRead> {
    current: Option<GzDecoder<R>>,
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let Some(member) = self.current.take() else {
                return Ok(0);
            };
            let mut rest = member.into_inner();
            // One byte decides: a buffer refill may hold only the first byte of the next
            // member's magic; the member's header parser checks the rest.
            if rest.fill_buf()?.first() == Some(&0x1f) {
                self.current = Some(GzDecoder::new(rest));
            } else {
                return Ok(0);
            }
        }
    }
}

/// Reads up to `want` bytes into `buf` (appending); returns how many arrived. I/O errors
/// (corrupt gzip data) are returned as they are.
fn read_up_to(reader: &mut impl Read, buf: &mut Vec<u8>, want: u64) -> std::io::Result<u64> {
    reader.take(want).read_to_end(buf).map(|n| n as u64)
}

/// Reads a NIfTI-1 volume; errors name the file and say what was wrong. Limits come from the
/// environment ([`ReadLimits::from_env`]).
pub fn read_volume(path: &Path) -> Result<Volume> {
    read_volume_with(path, &ReadLimits::from_env()?)
}

/// [`read_volume`] with explicit limits. The header is validated before anything is
/// allocated for the data, the data are read from `vox_offset`, a plain file must hold all
/// declared bytes before they are allocated, and a compressed stream's buffer only grows as
/// decompressed bytes actually arrive (never past the declared size). Compression is
/// recognised by content (gzip magic), multi-member gzip included.
pub fn read_volume_with(path: &Path, limits: &ReadLimits) -> Result<Volume> {
    if !path.exists() {
        bail!("NIfTI file {} does not exist", path.display());
    }
    if path.is_dir() {
        bail!(
            "{} is a folder, not a NIfTI file: give the path of a .nii or .nii.gz volume",
            path.display()
        );
    }
    if !is_nifti_path(path) {
        bail!(
            "{} is not a NIfTI file name: expected a .nii or .nii.gz file (convert DICOM with e.g. dcm2niix)",
            path.display()
        );
    }
    let p = path.display();
    let file = File::open(path).with_context(|| format!("cannot open NIfTI file {p}"))?;
    let file_len = file
        .metadata()
        .with_context(|| format!("cannot read the size of {p}"))?
        .len();
    let mut buffered = BufReader::new(file);
    let gz = buffered
        .fill_buf()
        .with_context(|| format!("cannot read {p}"))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(GzMembers {
            current: Some(GzDecoder::new(buffered)),
        })
    } else {
        Box::new(buffered)
    };
    let stream = if gz {
        "the decompressed data"
    } else {
        "the file"
    };
    let io_error = |e: std::io::Error| {
        if gz {
            anyhow::anyhow!(
                "{p}: corrupt or truncated gzip data ({e}): re-download or re-compress the file"
            )
        } else {
            anyhow::anyhow!("cannot read {p}: {e}")
        }
    };

    let mut head = Vec::with_capacity(HEADER_BYTES);
    let got = read_up_to(&mut reader, &mut head, HEADER_BYTES as u64).map_err(io_error)?;
    if got < HEADER_BYTES as u64 {
        bail!(
            "cannot read {p} as NIfTI-1: {stream} hold only {got} bytes, a NIfTI-1 header has \
             {HEADER_BYTES} (is the file truncated, or not a NIfTI file? re-export or re-download it)"
        );
    }
    let layout = validate_header(path, &head, limits)?;

    // Plain files: the file must hold every declared byte before anything is allocated.
    let end = layout.vox_offset + layout.data_bytes;
    if !gz && file_len < end {
        bail!(
            "{p}: the header declares {} ({} bytes, up to byte {end}), but the file has only \
             {file_len} bytes: the file is truncated or vox_offset is wrong; re-export or \
             re-download it",
            layout.describe(),
            layout.data_bytes
        );
    }
    // Skip the extensions (or padding) between the header and vox_offset.
    let skip = layout.vox_offset - HEADER_BYTES as u64;
    let skipped =
        std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink()).map_err(io_error)?;
    if skipped < skip {
        bail!(
            "{p}: {stream} end at byte {}, before the voxel data start at vox_offset = {}: \
             the file is truncated or vox_offset is wrong; re-export or re-download it",
            HEADER_BYTES as u64 + skipped,
            layout.vox_offset
        );
    }
    // The voxel data: allocated in full for a plain file (its size is checked above); for a
    // compressed stream, grown as bytes actually arrive, never past the declared size.
    let total = layout.data_bytes;
    let mut raw: Vec<u8> = Vec::new();
    let mut target = if gz { total.min(GZ_FIRST_CHUNK) } else { total };
    loop {
        let more = (target - raw.len() as u64) as usize;
        raw.try_reserve_exact(more).map_err(|_| {
            anyhow::anyhow!(
                "{p}: not enough memory for the {} of voxel data ({}); free memory or lower the \
                 volume's size",
                human_bytes(total),
                layout.describe()
            )
        })?;
        let want = target - raw.len() as u64;
        let got = read_up_to(&mut reader, &mut raw, want).map_err(io_error)?;
        if got < want {
            bail!(
                "{p}: {stream} hold {} of the {total} voxel bytes the header declares ({}): the \
                 file is truncated or its header is wrong; re-export or re-download it",
                raw.len(),
                layout.describe()
            );
        }
        if target == total {
            break;
        }
        target = total.min(target.saturating_mul(2));
    }
    if gz {
        // One byte more makes the decoder reach the end of the last member and check its CRC
        // (bytes after the volume are ignored, as in a plain file).
        read_up_to(&mut reader, &mut Vec::new(), 1).map_err(io_error)?;
    }
    drop(reader);

    let Layout { header, shape, .. } = layout;
    let arr = InMemNiftiVolume::from_raw_data(&header, raw)
        .and_then(|v| v.into_ndarray::<f32>())
        .map_err(|e| anyhow::anyhow!("{p}: cannot decode voxel data: {e}"))?;
    // The reader yields the header's shape in Fortran layout; collect in logical order.
    let logical: Vec<f32> = arr.iter().copied().collect(); // logical (C) order of the original shape
    drop(arr);
    let data = Array3::from_shape_vec(shape, logical)
        .with_context(|| format!("{p}: voxel count does not match the header's dimensions"))?;
    if data.iter().any(|v| !v.is_finite()) {
        bail!("{p}: volume contains NaN or infinite values; fix or mask them first");
    }
    Ok(Volume { data, header })
}

/// Writes `data` (`[x, y, z]`) as float32 NIfTI-1 at `path` (`.nii` or `.nii.gz`), keeping the
/// geometry and descriptive fields of `reference`. Atomic ([`crate::atomic`]): whole or not at all.
pub fn write_volume(path: &Path, data: &Array3<f32>, reference: &NiftiHeader) -> Result<()> {
    if !is_nifti_path(path) {
        bail!("output {} must end in .nii or .nii.gz", path.display());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let gz = path.to_string_lossy().to_lowercase().ends_with(".gz");
    // The NIfTI writer opens its file by name and forces a .nii / .nii.gz extension, so the
    // temporary carries one; the writer rewrites it in place and `commit` moves it over.
    let file = AtomicFile::create_with_temp_extension(path, if gz { "nii.gz" } else { "nii" })?;
    let mut header = reference.clone();
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    header.glmin = 0;
    header.glmax = 0;
    if header.dim[0] > 3 {
        header.dim[0] = 3;
        header.pixdim[4..].iter_mut().for_each(|p| *p = 1.0);
    }
    if header.descrip.len() != 80 {
        header.descrip.resize(80, 0);
    }
    // Write in Fortran order via a standard-layout copy of the data.
    let c = data.as_standard_layout();
    WriterOptions::new(file.temp_path())
        .compress(gz)
        .reference_header(&header)
        .write_nifti(&c.view().into_dimensionality::<Ix3>()?)
        .map_err(|e| match e {
            // The crate's I/O variant has no message of its own (it prints as a Rust debug
            // value): say what failed the way every other write does.
            nifti::NiftiError::Io(err) => AtomicFile::write_error(path, err),
            other => anyhow::anyhow!(
                "cannot write NIfTI {}: {other}; nothing was written",
                path.display()
            ),
        })?;
    file.commit()
}

/// Writes a [`Volume`] (its own header as reference).
pub fn write(path: &Path, volume: &Volume) -> Result<()> {
    write_volume(path, &volume.data, &volume.header)
}

/// The NIfTI files of a folder (sorted by name), or the paths listed in a text file (one per
/// line, `#` comments, relative to the list file's folder).
pub fn list_volumes(source: &Path) -> Result<Vec<PathBuf>> {
    if source.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(source)
            .with_context(|| format!("cannot list folder {}", source.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && is_nifti_path(p)
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("folder {} holds no .nii or .nii.gz files", source.display());
        }
        return Ok(files);
    }
    if source.is_file() && !is_nifti_path(source) {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("cannot read list file {}", source.display()))?;
        let base = source.parent().unwrap_or(Path::new("."));
        let files: Vec<PathBuf> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| base.join(l))
            .collect();
        if files.is_empty() {
            bail!("list file {} names no volumes", source.display());
        }
        return Ok(files);
    }
    if source.is_file() {
        return Ok(vec![source.to_path_buf()]);
    }
    bail!(
        "{} is neither a folder of NIfTI volumes, a list file nor a NIfTI file",
        source.display()
    )
}
