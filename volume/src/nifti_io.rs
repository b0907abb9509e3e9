//! NIfTI-1 in and out (`.nii` and `.nii.gz`) through the `nifti` crate.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use ndarray::{Array3, Ix3};
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

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

/// Reads a NIfTI-1 volume; errors name the file and say what was wrong.
pub fn read_volume(path: &Path) -> Result<Volume> {
    if !path.exists() {
        bail!("NIfTI file {} does not exist", path.display());
    }
    if !is_nifti_path(path) {
        bail!(
            "{} is not a NIfTI file name: expected a .nii or .nii.gz file (convert DICOM with e.g. dcm2niix)",
            path.display()
        );
    }
    let obj = ReaderOptions::new().read_file(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {} as NIfTI-1: {e} (is the file truncated, or not a NIfTI file? re-export or re-download it)",
            path.display()
        )
    })?;
    let header = obj.header().clone();
    let ndim = header.dim[0] as usize;
    if !(1..=7).contains(&ndim) {
        bail!(
            "{}: invalid NIfTI header (dim[0] = {})",
            path.display(),
            header.dim[0]
        );
    }
    let dims: Vec<usize> = header.dim[1..=ndim].iter().map(|&d| d as usize).collect();
    let (nx, ny, nz) = match dims.as_slice() {
        [x] => (*x, 1, 1),
        [x, y] => (*x, *y, 1),
        [x, y, z] => (*x, *y, *z),
        [x, y, z, rest @ ..] if rest.iter().all(|&d| d == 1) => (*x, *y, *z),
        _ => bail!(
            "{}: {}D NIfTI with dimensions {:?} holds more than one volume; dicyc reads single 3D \
             volumes (processed as 2D axial slices): split it first (e.g. `fslsplit`)",
            path.display(),
            ndim,
            dims
        ),
    };
    let dtype = header.data_type().with_context(|| {
        format!(
            "{}: unknown NIfTI datatype code {}",
            path.display(),
            header.datatype
        )
    })?;
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
            "{}: NIfTI datatype {other:?} is not supported (expected an integer or real scalar type)",
            path.display()
        ),
    }
    let arr = obj.into_volume().into_ndarray::<f32>().map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot decode voxel data: {e} (file truncated?)",
            path.display()
        )
    })?;
    // The reader yields the header's shape in Fortran layout; collect in logical order.
    let logical: Vec<f32> = arr.iter().copied().collect(); // logical (C) order of the original shape
    let data = Array3::from_shape_vec((nx, ny, nz), logical).with_context(|| {
        format!(
            "{}: voxel count does not match the header's dimensions",
            path.display()
        )
    })?;
    if data.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: volume contains NaN or infinite values; fix or mask them first",
            path.display()
        );
    }
    Ok(Volume { data, header })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` (`[x, y, z]`) as float32 NIfTI-1 at `path` (`.nii` or `.nii.gz`), keeping the
/// geometry and descriptive fields of `reference`. Atomic: temp file + rename.
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
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    // No dots in the stem: the nifti writer rewrites extensions after the first dot.
    let tmp: PathBuf = dir.join(format!(
        ".dicyc-tmp-{}-{n}.{}",
        std::process::id(),
        if gz { "nii.gz" } else { "nii" }
    ));
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
    let result = WriterOptions::new(&tmp)
        .reference_header(&header)
        .write_nifti(&c.view().into_dimensionality::<Ix3>()?);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write NIfTI {}: {e}", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot move the written volume into place at {}",
            path.display()
        )
    })?;
    Ok(())
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
