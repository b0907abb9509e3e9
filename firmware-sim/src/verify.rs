//! `firmware-sim verify`: the device's output against libtorch's, slice by slice.

use std::path::Path;

use anyhow::Context;
use dicyc_core::Pass;
use dicyc_volume::golden::{load_slice, Manifest};
use serde::Serialize;

use crate::device::Device;

pub use dicyc_volume::golden::{MAX_ABS_TOLERANCE, REL_L2_TOLERANCE};

/// Agreement of the device with the reference over all slices of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PassReport {
    /// `‖device − reference‖₂ / ‖reference‖₂` over all slices together.
    pub rel_l2: f64,
    /// Largest `|device − reference|`.
    pub max_abs: f64,
    /// PSNR in dB with the tanh range's peak-to-peak of 2 (infinite when identical).
    pub psnr_db: f64,
    /// Slices compared.
    pub slices: usize,
}

impl PassReport {
    /// Whether both tolerances of docs/DESIGN.md §3.3 hold.
    pub fn passes(&self) -> bool {
        self.rel_l2 <= REL_L2_TOLERANCE && self.max_abs <= MAX_ABS_TOLERANCE
    }
}

/// Running sums for one pass.
#[derive(Default)]
struct Accumulator {
    diff_sq: f64,
    ref_sq: f64,
    max_abs: f64,
    count: usize,
    slices: usize,
}

impl Accumulator {
    fn add(&mut self, device: &[f32], reference: &[f32]) {
        for (&d, &r) in device.iter().zip(reference) {
            let diff = f64::from(d) - f64::from(r);
            self.diff_sq += diff * diff;
            self.ref_sq += f64::from(r) * f64::from(r);
            // NaN never compares greater: treat it as the worst possible difference.
            self.max_abs = if diff.is_nan() {
                f64::INFINITY
            } else {
                self.max_abs.max(diff.abs())
            };
        }
        self.count += device.len();
        self.slices += 1;
    }

    fn report(&self) -> PassReport {
        let mse = self.diff_sq / self.count.max(1) as f64;
        PassReport {
            rel_l2: if self.ref_sq > 0.0 {
                (self.diff_sq / self.ref_sq).sqrt()
            } else {
                self.diff_sq.sqrt()
            },
            max_abs: self.max_abs,
            psnr_db: if mse > 0.0 {
                10.0 * (4.0 / mse).log10()
            } else {
                f64::INFINITY
            },
            slices: self.slices,
        }
    }
}

/// Both passes' agreement, plus the device's resource use.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Deformed pass.
    pub deformed: PassReport,
    /// Undeformed pass.
    pub undeformed: PassReport,
    /// Largest scratch the core asked for over all slices.
    pub peak_scratch_bytes: usize,
    /// Largest RAM in use (scratch + input + output).
    pub peak_ram_bytes: usize,
    /// Mean core time per slice and pass, milliseconds.
    pub mean_ms_per_slice: f64,
}

impl VerifyReport {
    /// Whether both passes are within tolerance.
    pub fn passes(&self) -> bool {
        self.deformed.passes() && self.undeformed.passes()
    }
}

/// Runs every golden slice of the bundle in `dir` through the device in both passes and
/// compares. Every slice's size is checked against the core and the device's RAM first, then
/// the slices are read and replayed one at a time, so the host holds one slice, whatever the
/// bundle lists.
pub fn verify(
    device: &mut Device<'_>,
    dir: &Path,
    manifest: &Manifest,
) -> anyhow::Result<VerifyReport> {
    anyhow::ensure!(
        !manifest.slices.is_empty(),
        "the golden bundle holds no slices"
    );
    for (i, meta) in manifest.slices.iter().enumerate() {
        device
            .ram_for_slice(meta.height, meta.width)
            .with_context(|| {
                format!(
                    "golden slice {i} ({:?}) in {} cannot run on this device",
                    meta.name,
                    dir.display()
                )
            })?;
    }
    let mut deformed = Accumulator::default();
    let mut undeformed = Accumulator::default();
    let (mut peak_scratch, mut peak_ram, mut total_ms, mut runs) = (0, 0, 0.0, 0usize);
    for index in 0..manifest.slices.len() {
        let slice = load_slice(dir, manifest, index)?;
        let m = &slice.meta;
        let mut output = vec![0f32; slice.deformed.len()];
        for (pass, reference, acc) in [
            (Pass::Deformed, &slice.deformed, &mut deformed),
            (Pass::Undeformed, &slice.undeformed, &mut undeformed),
        ] {
            let stats = device.run_slice(&slice.input, m.height, m.width, pass, &mut output)?;
            acc.add(&output, reference);
            peak_scratch = peak_scratch.max(stats.scratch_bytes);
            peak_ram = peak_ram.max(stats.ram_bytes);
            total_ms += stats.elapsed.as_secs_f64() * 1e3;
            runs += 1;
        }
    }
    Ok(VerifyReport {
        deformed: deformed.report(),
        undeformed: undeformed.report(),
        peak_scratch_bytes: peak_scratch,
        peak_ram_bytes: peak_ram,
        mean_ms_per_slice: total_ms / runs as f64,
    })
}
