//! The data pipeline: NIfTI in and out, preprocessing, unpaired slice sampling with
//! augmentation, the simulated IXI-like benchmark and the deformation experiment.
//! See docs/DATA.md for layouts, defaults and the rules (dimensionality, orientation).

pub mod augment;
pub mod deform;
pub mod nifti_io;
pub mod preprocess;
pub mod resample;
pub mod sampling;
pub mod simulate;
pub mod template;
pub mod volume;

pub use nifti_io::{read_volume, write_volume};
pub use preprocess::PreprocessOptions;
pub use sampling::NiftiSlices;
pub use volume::Volume;
