//! The data pipeline: NIfTI in and out, preprocessing, unpaired slice sampling with
//! augmentation, the simulated IXI-like benchmark, the deformation experiment and the real
//! scans fetched for MR→CT (`real`).
//! See docs/DATA.md for layouts, defaults and the rules (dimensionality, orientation).
//!
//! The libtorch-free parts (NIfTI I/O, volumes, resampling, augmentation, normalisation)
//! live in the `dicyc-volume` crate, shared with `firmware-sim`, and are re-exported here.

pub mod deform;
pub mod deform_dataset;
pub mod real;
pub mod sampling;
pub mod simulate;
pub mod template;

pub use dicyc_volume::{augment, nifti_io, preprocess, resample, volume};

pub use nifti_io::{read_volume, write_volume};
pub use preprocess::PreprocessOptions;
pub use sampling::NiftiSlices;
pub use volume::Volume;
