//! Small phantom volumes for tests and examples of the crates that read volumes.

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
