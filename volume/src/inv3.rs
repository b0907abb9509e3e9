//! InVesalius projects (`.inv3`) in: the CT (or MR) volume a project holds, as a [`Volume`]
//! with its real voxel size, and written as NIfTI-1 ([`convert_inv3`]).
//!
//! An `.inv3` is a tar archive, gzip-compressed (`tarfile` mode `w:gz`; newer InVesalius can
//! also save it uncompressed: both are read, told apart by content), whose members sit in one
//! folder (`tmpXXXX/`):
//!
//! - `main.plist`: an XML property list: `matrix` (`shape` = `[z, y, x]`, `dtype`, `filename`,
//!   normally `matrix.dat`), `spacing` (`[x, y, z]` in mm), `modality`, `orientation` (the
//!   acquisition plane: 1 or `AXIAL`, 2 `CORONAL`, 3 `SAGITAL`), `window_level`,
//!   `window_width`, `scalar_range`, `masks`, `surfaces`, `measurements` (file names of
//!   further plists);
//! - `matrix.dat`: the voxels, raw little-endian `int16`, C order `[z][y][x]` (x fastest), no
//!   header, exactly `z · y · x · 2` bytes;
//! - optional `mask_N.plist` + `mask_N.dat` (uint8, `(z+1)·(y+1)·(x+1)`), `surface_N.plist`
//!   + `surface_N.vtp`, `measurements.plist`: not read.
//!
//! **Values**: the int16 values as stored (InVesalius keeps CT in Hounsfield units; there is
//! no slope or intercept in the format), as float32 (exact).
//!
//! **Orientation**: InVesalius reorders every acquisition into one internal frame (its DICOM
//! loader puts coronal and sagittal series into the same `[z][y][x]` layout), so the
//! `orientation` key says how the scan was acquired, not how the matrix is laid out. In that
//! frame, for an axial DICOM series stored the standard way (image orientation
//! `1\0\0\0\1\0`), `x` runs from the patient's right to left (DICOM columns), `y` from
//! posterior to anterior (DICOM rows, reversed by the loader), `z` from inferior to superior.
//! The plist holds no patient orientation or position, so this is the one assumption: left
//! and right cannot be told apart from the file (anterior and superior can, and were checked
//! on the real `Cranium.inv3`: face at high `y`, vertex at high `z`). The volume is written
//! RAS+ like the MNI and Colin27 volumes (`i` towards the right, `j` anterior, `k` superior,
//! axial slices the `k` planes, sform and qform the diagonal voxel size): NIfTI voxel
//! `(i, j, k)` = `matrix[k][j][x − 1 − i]`, i.e. only `x` is mirrored. The world origin is the
//! volume's centre (the file has no position).
//!
//! **Hostile input** (docs/SECURITY.md): a file that is not gzip or tar, a damaged or
//! truncated archive (every byte is read, and the gzip trailer's CRC checked, before a volume
//! is returned), a missing or oversized `main.plist`, missing keys, a shape or spacing that
//! is not three positive numbers, another dtype, a `matrix.dat` whose size is not what the
//! shape needs: each is an error naming the file and what is wrong. The size `matrix.dat`
//! needs is checked against the volume limit ([`ReadLimits`], `DICYC_MAX_VOLUME_BYTES`)
//! and against the member's size before anything is allocated for it, and the whole archive
//! may decompress to at most that limit, which bounds what the tar reader buffers.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::Array3;

use crate::nifti_io::{human_bytes, write, ReadLimits, MAX_VOLUME_BYTES_ENV};
use crate::volume::Volume;

/// The largest `main.plist` read (it is about 1.5 KiB in real projects).
pub const MAX_PLIST_BYTES: u64 = 1 << 20;

/// The largest side of a volume: NIfTI-1 stores dimensions as 16-bit signed integers.
const MAX_SIDE: usize = i16::MAX as usize;

/// What a project's `main.plist` says about its volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Inv3Info {
    /// `matrix.shape`: slices, rows, columns (`[z, y, x]`).
    pub shape_zyx: [usize; 3],
    /// `spacing`: voxel size in mm along x, y, z.
    pub spacing_xyz: [f64; 3],
    /// `modality` (`CT`, `MRI`, …), when given.
    pub modality: Option<String>,
    /// `orientation` as written (`1`, `AXIAL`, …), when given: the acquisition plane.
    pub orientation: Option<String>,
    /// `window_level` and `window_width` (the display window saved with the project).
    pub window_level: Option<f64>,
    /// See [`Inv3Info::window_level`].
    pub window_width: Option<f64>,
    /// `scalar_range` as saved (`[min, max]`).
    pub scalar_range: Option<[f64; 2]>,
    /// The archive member the voxels were read from (`tmpXXXX/matrix.dat`).
    pub matrix_member: String,
    /// Members of the archive, in order.
    pub members: Vec<String>,
}

/// A project's volume: NIfTI grid RAS+ (module documentation), values as stored.
#[derive(Clone, Debug)]
pub struct Inv3Scan {
    /// What `main.plist` says.
    pub info: Inv3Info,
    /// The volume, `[x, y, z]`, with its voxel size and a RAS+ affine centred on the volume.
    pub volume: Volume,
    /// Smallest and largest voxel value.
    pub range: [i16; 2],
}

/// Reads an `.inv3` with the limits of the environment ([`ReadLimits::from_env`]).
pub fn read_inv3(path: &Path) -> Result<Inv3Scan> {
    read_inv3_with(path, &ReadLimits::from_env()?)
}

/// Reads an `.inv3` (module documentation) within `limits`.
pub fn read_inv3_with(path: &Path, limits: &ReadLimits) -> Result<Inv3Scan> {
    let p = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {p}"))?;
    if !meta.is_file() {
        bail!("{p} is not a regular file: give an InVesalius project (.inv3)");
    }
    // Pass 1: main.plist (the first member in InVesalius's own files).
    let mut main = None;
    for_each_member(path, limits, |name, entry| {
        if !is_main_plist(name) {
            return Ok(());
        }
        if main.is_some() {
            bail!("{p} holds more than one main.plist (a second at {name:?}): not an InVesalius project");
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_PLIST_BYTES {
            bail!(
                "{p}: {name} declares {size} bytes, more than the {} a project's main.plist may have",
                human_bytes(MAX_PLIST_BYTES)
            );
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .take(MAX_PLIST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| damaged(path, name, e))?;
        main = Some((name.to_string(), bytes));
        Ok(())
    })?;
    let Some((main_name, bytes)) = main else {
        bail!("{p} holds no main.plist: not an InVesalius project (.inv3), or a damaged one");
    };
    let mut info = parse_main_plist(path, &main_name, &bytes)?;
    let [nz, ny, nx] = info.shape_zyx;
    let voxels = nz * ny * nx; // checked in parse_main_plist
    let need = voxels as u64 * 2;
    let in_memory = voxels as u64 * 4;
    if in_memory > limits.max_volume_bytes {
        bail!(
            "{p}: the volume {nz}×{ny}×{nx} would take {} in memory, over the limit of {}: set {MAX_VOLUME_BYTES_ENV} (e.g. {MAX_VOLUME_BYTES_ENV}=8G) to read it",
            human_bytes(in_memory),
            human_bytes(limits.max_volume_bytes)
        );
    }
    let dir = main_name.rsplit_once('/').map_or("", |(d, _)| d);
    let wanted = if dir.is_empty() {
        info.matrix_member.clone()
    } else {
        format!("{dir}/{}", info.matrix_member)
    };
    // Pass 2: the voxels, then the rest of the archive (so that damage anywhere is seen).
    let mut raw: Option<Vec<u8>> = None;
    let mut members = Vec::new();
    for_each_member(path, limits, |name, entry| {
        members.push(name.to_string());
        if name.trim_start_matches("./") != wanted.trim_start_matches("./") {
            return Ok(());
        }
        if raw.is_some() {
            bail!("{p} holds {wanted} twice: not an InVesalius project, or a damaged one");
        }
        if !entry.header().entry_type().is_file() {
            bail!("{p}: {name} is not a regular file in the archive");
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size != need {
            bail!(
                "{p}: {name} holds {size} bytes, but main.plist's shape {nz}×{ny}×{nx} (z, y, x) of int16 needs {need}: the project is damaged or its plist does not describe this matrix"
            );
        }
        let mut buf = vec![0u8; need as usize];
        entry
            .read_exact(&mut buf)
            .map_err(|e| damaged(path, name, e))?;
        raw = Some(buf);
        Ok(())
    })?;
    let Some(raw) = raw else {
        bail!(
            "{p} has no {wanted} (main.plist names {:?} as the matrix): the project is incomplete",
            info.matrix_member
        );
    };
    info.matrix_member = wanted;
    info.members = members;
    let (volume, range) = volume_from_matrix(&info, &raw);
    Ok(Inv3Scan {
        info,
        volume,
        range,
    })
}

/// Reads `src` ([`read_inv3`]) and writes its volume to `dst` (`.nii` / `.nii.gz`) as float32
/// NIfTI-1, atomically: on any error nothing is left at `dst`.
pub fn convert_inv3(src: &Path, dst: &Path) -> Result<Inv3Scan> {
    let scan = read_inv3(src)?;
    write(dst, &scan.volume)?;
    Ok(scan)
}

/// The NIfTI volume of `raw` (`matrix.dat`'s bytes, exactly the shape's size): RAS+,
/// `data[[i, j, k]] = matrix[k][j][x - 1 - i]`, the plist's voxel size, centred on 0.
fn volume_from_matrix(info: &Inv3Info, raw: &[u8]) -> (Volume, [i16; 2]) {
    let [nz, ny, nx] = info.shape_zyx;
    let mut range = [i16::MAX, i16::MIN];
    let mut data = Array3::<f32>::zeros((nx, ny, nz));
    for (n, b) in raw.chunks_exact(2).enumerate() {
        let v = i16::from_le_bytes([b[0], b[1]]);
        range = [range[0].min(v), range[1].max(v)];
        let (x, rest) = (n % nx, n / nx);
        let (y, z) = (rest % ny, rest / ny);
        data[[nx - 1 - x, y, z]] = f32::from(v);
    }
    let spacing = info.spacing_xyz.map(|s| s as f32);
    let dims = [nx, ny, nz];
    let origin = std::array::from_fn(|a| -((dims[a] - 1) as f32) * spacing[a] / 2.0);
    let mut volume = Volume::new(data, spacing, origin);
    let what = info.modality.as_deref().unwrap_or("volume");
    let mut descrip = format!("{what} from InVesalius .inv3").into_bytes();
    descrip.truncate(80);
    volume.header.descrip = descrip;
    (volume, range)
}

/// Whether the member is the project's `main.plist` (at the top or in one folder).
fn is_main_plist(name: &str) -> bool {
    let name = name.trim_start_matches("./");
    name == "main.plist"
        || name
            .split_once('/')
            .is_some_and(|(d, f)| f == "main.plist" && !d.is_empty() && !d.contains('/'))
}

/// Calls `visit` with each member (name, entry) of the archive at `path`, then reads the
/// archive to its end (the gzip trailer's CRC checked). Decompression past
/// `limits.max_volume_bytes` is an error.
fn for_each_member<F>(path: &Path, limits: &ReadLimits, mut visit: F) -> Result<()>
where
    F: FnMut(&str, &mut tar::Entry<'_, Box<dyn Read>>) -> Result<()>,
{
    let p = path.display();
    let mut file = BufReader::new(File::open(path).with_context(|| format!("cannot open {p}"))?);
    let mut head = [0u8; 512];
    let got = read_up_to(&mut file, &mut head).with_context(|| format!("cannot read {p}"))?;
    file.rewind().with_context(|| format!("cannot read {p}"))?;
    let reader: Box<dyn Read> = if got >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if got >= 262 && &head[257..262] == b"ustar" {
        Box::new(file)
    } else if got == 0 {
        bail!("{p} is empty: not an InVesalius project (.inv3)");
    } else {
        bail!("{p} is neither gzip-compressed nor a tar archive: not an InVesalius project (.inv3), which is a gzip'd tar");
    };
    let limited: Box<dyn Read> = Box::new(Limited {
        inner: reader,
        left: limits.max_volume_bytes,
        limit: limits.max_volume_bytes,
    });
    let mut archive = tar::Archive::new(limited);
    let entries = archive
        .entries()
        .map_err(|e| damaged(path, "the archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(path, "the archive", e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        visit(&name, &mut entry)?;
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| damaged(path, "the archive's end", e))?;
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An error reading `what` inside the archive: truncated, damaged or over the limit.
fn damaged(path: &Path, what: &str, e: io::Error) -> anyhow::Error {
    let p = path.display();
    if e.kind() == io::ErrorKind::UnexpectedEof {
        anyhow::anyhow!("{p} is truncated: it ends inside {what}; download or copy it again")
    } else {
        anyhow::anyhow!("{p} is damaged (reading {what}: {e}); download or copy it again")
    }
}

/// A reader that fails once more than `limit` bytes came through.
struct Limited {
    inner: Box<dyn Read>,
    left: u64,
    limit: u64,
}

impl Read for Limited {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "the archive decompresses to more than the limit of {}; set {MAX_VOLUME_BYTES_ENV} to read larger projects",
                human_bytes(self.limit)
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Parses and checks `main.plist`.
fn parse_main_plist(path: &Path, name: &str, bytes: &[u8]) -> Result<Inv3Info> {
    let p = path.display();
    let value = plist::Value::from_reader(io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("{p}: {name} is not a valid property list ({e})"))?;
    let Some(top) = value.as_dictionary() else {
        bail!("{p}: {name} is not a dictionary: not an InVesalius project");
    };
    let key = |k: &str| {
        top.get(k)
            .with_context(|| format!("{p}: {name} has no {k:?}: not an InVesalius project, or one this reader does not know"))
    };
    let matrix = key("matrix")?
        .as_dictionary()
        .with_context(|| format!("{p}: {name}'s \"matrix\" is not a dictionary"))?;
    let mkey = |k: &str| {
        matrix
            .get(k)
            .with_context(|| format!("{p}: {name}'s \"matrix\" has no {k:?}"))
    };
    let dtype = mkey("dtype")?.as_string().unwrap_or("");
    if dtype != "int16" {
        bail!(
            "{p}: {name}'s matrix dtype is {dtype:?}; only int16 (what InVesalius writes) is read"
        );
    }
    let file = mkey("filename")?
        .as_string()
        .with_context(|| format!("{p}: {name}'s matrix filename is not a string"))?;
    if file.is_empty() || file.contains(['/', '\\']) || file == "." || file == ".." {
        bail!("{p}: {name}'s matrix filename {file:?} is not a plain file name");
    }
    let shape = numbers(mkey("shape")?)
        .filter(|s| s.len() == 3)
        .with_context(|| format!("{p}: {name}'s matrix shape is not three numbers (z, y, x)"))?;
    let mut shape_zyx = [0usize; 3];
    for (a, &s) in shape.iter().enumerate() {
        if s.fract() != 0.0 || !(1.0..=MAX_SIDE as f64).contains(&s) {
            bail!("{p}: {name}'s matrix shape {shape:?} (z, y, x) must be whole numbers from 1 to {MAX_SIDE}");
        }
        shape_zyx[a] = s as usize;
    }
    // Each side ≤ 32767, so the product fits in 64 bits; the limit check follows.
    let spacing = numbers(key("spacing")?)
        .filter(|s| s.len() == 3)
        .with_context(|| format!("{p}: {name}'s spacing is not three numbers (x, y, z, mm)"))?;
    if spacing
        .iter()
        .any(|s| !s.is_finite() || *s <= 0.0 || *s > 1e4)
    {
        bail!("{p}: {name}'s spacing {spacing:?} (x, y, z) must be positive sizes in mm");
    }
    let num = |k: &str| top.get(k).and_then(number);
    let text = |k: &str| match top.get(k)? {
        plist::Value::String(s) => Some(s.clone()),
        v => number(v).map(|n| format!("{n}")),
    };
    let scalar_range = top
        .get("scalar_range")
        .and_then(numbers)
        .filter(|r| r.len() == 2)
        .map(|r| [r[0], r[1]]);
    Ok(Inv3Info {
        shape_zyx,
        spacing_xyz: [spacing[0], spacing[1], spacing[2]],
        modality: text("modality"),
        orientation: text("orientation"),
        window_level: num("window_level"),
        window_width: num("window_width"),
        scalar_range,
        matrix_member: file.to_string(),
        members: Vec::new(),
    })
}

fn number(v: &plist::Value) -> Option<f64> {
    match v {
        plist::Value::Integer(i) => i.as_signed().map(|i| i as f64),
        plist::Value::Real(r) => Some(*r),
        _ => None,
    }
}

fn numbers(v: &plist::Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(number).collect()
}
