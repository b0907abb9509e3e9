//! `dicyc-volume`: the libtorch-free volume code shared by the trainer and the device
//! simulator — NIfTI-1 in and out, voxel-grid resampling, training augmentation and the
//! per-volume intensity normalisation (`preprocess`), so that the device maps intensities
//! with exactly the trainer's code. See docs/DATA.md.

pub mod atomic;
pub mod augment;
pub mod nifti_io;
pub mod preprocess;
pub mod resample;
pub mod testing;
pub mod volume;

pub use nifti_io::{read_volume, write_volume};
pub use preprocess::PreprocessOptions;
pub use volume::Volume;
