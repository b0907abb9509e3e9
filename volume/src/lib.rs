//! `dicyc-volume`: the libtorch-free host code shared by the trainer and the device
//! simulator — NIfTI-1 in and out, voxel-grid resampling, training augmentation, the
//! per-volume intensity normalisation (`preprocess`), a volume through the core slice by
//! slice (`slicewise`), the golden bundle (`golden`), InVesalius projects in (`inv3`) and
//! whole-or-nothing file writes (`atomic`) — so that the device maps intensities with exactly
//! the trainer's code and neither host tool depends on the other. See docs/DATA.md.

pub mod atomic;
pub mod augment;
pub mod golden;
pub mod inv3;
pub mod nifti_io;
pub mod preprocess;
pub mod resample;
pub mod slicewise;
pub mod testing;
pub mod volume;

pub use nifti_io::{read_volume, write_volume};
pub use preprocess::PreprocessOptions;
pub use volume::Volume;
