//! `firmware-sim run`: the device synthesising a whole NIfTI volume, slice by slice.
//!
//! Intensities are mapped and slices padded exactly as `trainer synth` does
//! ([`dicyc_volume::slicewise`]: the weight file's constants, written by `trainer export`,
//! and the trainer's own per-volume statistics). The device runs at the volume's own voxel
//! size: it does not resample (train without `--spacing`, or resample volumes before sending
//! them).
//!
//! The volume arrays are host-side I/O; per slice, only the device's fixed RAM is used: the
//! padded input and output buffers are allocated once per volume.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use dicyc_core::Pass;
use dicyc_volume::nifti_io::{read_volume, write_volume};
use dicyc_volume::slicewise::{ensure_single_channel, synthesize_slices};
use dicyc_volume::Volume;
use ndarray::Array3;

use crate::device::Device;
use crate::profile::human_bytes;

/// What synthesising one volume took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeStatsReport {
    /// Axial slices run.
    pub slices: usize,
    /// Padded slice size `(height, width)`.
    pub padded: (usize, usize),
    /// Shortest wall time of the core on one slice.
    pub min_per_slice: Duration,
    /// Mean wall time of the core per slice.
    pub mean_per_slice: Duration,
    /// Longest wall time of the core on one slice (the one a device's deadline must cover).
    pub max_per_slice: Duration,
    /// Scratch the core asked for (largest over the slices).
    pub scratch_bytes: usize,
    /// Scratch the first slice really touched (canary measurement).
    pub scratch_touched_bytes: usize,
    /// RAM in use (scratch + input + output; largest over the slices).
    pub ram_bytes: usize,
}

/// Runs every axial slice of `volume` on the device; returns the output volume (target
/// units, the source's grid) and what it took.
pub fn synthesize_volume(
    device: &mut Device<'_>,
    volume: &Volume,
    pass: Pass,
) -> anyhow::Result<(Array3<f32>, VolumeStatsReport)> {
    ensure_single_channel(&device.config())?;
    let norm = device.image().weights.normalization();
    let mut report = VolumeStatsReport {
        slices: volume.dim().2,
        padded: (0, 0),
        min_per_slice: Duration::MAX,
        mean_per_slice: Duration::ZERO,
        max_per_slice: Duration::ZERO,
        scratch_bytes: 0,
        scratch_touched_bytes: 0,
        ram_bytes: 0,
    };
    let mut total = Duration::ZERO;
    let (out, padded) = synthesize_slices(volume, norm, |k, input, h, w, output| {
        if k == 0 {
            report.scratch_touched_bytes = device.measure_scratch_touched(input, h, w, pass)?;
        }
        let stats = device.run_slice(input, h, w, pass, output)?;
        total += stats.elapsed;
        report.min_per_slice = report.min_per_slice.min(stats.elapsed);
        report.max_per_slice = report.max_per_slice.max(stats.elapsed);
        report.scratch_bytes = report.scratch_bytes.max(stats.scratch_bytes);
        report.ram_bytes = report.ram_bytes.max(stats.ram_bytes);
        Ok(())
    })?;
    report.padded = padded;
    report.mean_per_slice = total / report.slices.max(1) as u32;
    if report.slices == 0 {
        report.min_per_slice = Duration::ZERO;
    }
    Ok((out, report))
}

/// `firmware-sim run` on one volume: reads `input`, synthesises, writes `output` (atomically,
/// only when every slice ran).
pub fn run_file(
    device: &mut Device<'_>,
    input: &Path,
    output: &Path,
    pass: Pass,
) -> anyhow::Result<VolumeStatsReport> {
    let volume = read_volume(input)?;
    let (data, report) = synthesize_volume(device, &volume, pass)
        .with_context(|| format!("running {} on the device", input.display()))?;
    anyhow::ensure!(
        data.iter().all(|v| v.is_finite()),
        "the device produced non-finite values for {}",
        input.display()
    );
    let mut header = volume.header.clone();
    let _ = header.set_description_str(format!("dicyc firmware-sim run {pass:?}"));
    write_volume(output, &data, &header)?;
    Ok(report)
}

/// One line of the report.
pub fn describe(report: &VolumeStatsReport, ram_total: u64) -> String {
    format!(
        "run: {} slices padded to {}x{}, {:.1}/{:.1}/{:.1} ms per slice (min/mean/max); peak scratch {} asked ({} B), {} touched ({} B); RAM used {} of {}",
        report.slices,
        report.padded.0,
        report.padded.1,
        report.min_per_slice.as_secs_f64() * 1e3,
        report.mean_per_slice.as_secs_f64() * 1e3,
        report.max_per_slice.as_secs_f64() * 1e3,
        human_bytes(report.scratch_bytes as u64),
        report.scratch_bytes,
        human_bytes(report.scratch_touched_bytes as u64),
        report.scratch_touched_bytes,
        human_bytes(report.ram_bytes as u64),
        human_bytes(ram_total),
    )
}
