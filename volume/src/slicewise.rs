//! A volume through a 2-D slice generator, the way the core's weight file prescribes: the
//! per-volume intensity map into the generator's range ([`DeviceMap`]), and each axial slice
//! padded (bottom/right) to multiples of 4 with the normalised background, run, cropped back
//! and mapped into the target's units ([`synthesize_slices`]).
//!
//! One home for the loop that `firmware-sim run` (the simulated device) and `trainer synth
//! --weights` (the core on the workstation) share, so both map intensities and pad exactly
//! alike; what runs a slice is the caller's closure.
//!
//! ```text
//! z               = (x - mean) / sd             per volume, over every voxel (NormRegion::Volume)
//! generator_input = clamp((z - input_offset) * input_scale, -1, 1)
//! output          = generator_output * output_scale + output_offset   (target domain's units)
//! ```

use anyhow::{bail, Context};
use dicyc_core::format::Normalization;
use dicyc_core::{required_scratch_bytes, synthesize, ModelConfig, Pass, Weights};
use ndarray::{Array3, Axis};

use crate::preprocess::{runnable_padded_shape, NormRegion, Normalization as VolumeStats};
use crate::volume::Volume;

/// The per-volume intensity map of the device: the trainer's own per-volume statistics
/// (`preprocess::Normalization` with `sd_range` 1: the z-score) composed with the weight
/// file's constants, which carry the trainer's `sd_range` and the target domain's map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceMap {
    /// The volume's mean and standard deviation (source units).
    pub stats: VolumeStats,
    /// The weight file's constants.
    pub norm: Normalization,
}

impl DeviceMap {
    /// The map of a volume (statistics over every voxel, as the trainer's default).
    pub fn of(data: &Array3<f32>, norm: Normalization) -> Self {
        Self {
            stats: VolumeStats::of(data, NormRegion::Volume, 1.0),
            norm,
        }
    }

    /// Source units → generator input.
    pub fn forward(&self, x: f32) -> f32 {
        self.norm.to_generator(self.stats.standardize(x))
    }

    /// Generator output → target units.
    pub fn inverse(&self, y: f32) -> f32 {
        self.norm.from_generator(y)
    }
}

/// The per-slice loop shared by `firmware-sim run` and `trainer synth --weights`: maps
/// `volume` with [`DeviceMap`] (constants `norm`), pads each axial slice to multiples of 4
/// with the normalised background, hands it to `run_slice(k, input, height, width, output)`
/// (CHW, one channel; height along the first voxel axis), crops the output back and maps it
/// into target units. The padded buffers are allocated once; returns the output volume and
/// the padded size.
pub fn synthesize_slices<F>(
    volume: &Volume,
    norm: Normalization,
    mut run_slice: F,
) -> anyhow::Result<(Array3<f32>, (usize, usize))>
where
    F: FnMut(usize, &[f32], usize, usize, &mut [f32]) -> anyhow::Result<()>,
{
    let (nx, ny, nz) = volume.dim();
    let (h, w) = runnable_padded_shape((nx, ny))?;
    let map = DeviceMap::of(&volume.data, norm);
    let min = volume.data.iter().copied().fold(f32::INFINITY, f32::min);
    let fill = map.forward(min);
    let mut input = vec![fill; h * w];
    let mut output = vec![0f32; h * w];
    let mut out = Array3::<f32>::zeros((nx, ny, nz));
    for k in 0..nz {
        let slice = volume.data.index_axis(Axis(2), k);
        for ((i, j), &x) in slice.indexed_iter() {
            input[i * w + j] = map.forward(x);
        }
        run_slice(k, &input, h, w, &mut output)
            .with_context(|| format!("slice {k} ({nx}x{ny}, padded to {h}x{w})"))?;
        let mut dst = out.index_axis_mut(Axis(2), k);
        for ((i, j), y) in dst.indexed_iter_mut() {
            *y = map.inverse(output[i * w + j]);
        }
    }
    Ok((out, (h, w)))
}

/// Checks that a generator is single-channel (what volume synthesis handles).
pub fn ensure_single_channel(config: &ModelConfig) -> anyhow::Result<()> {
    if config.in_channels != 1 || config.out_channels != 1 {
        bail!(
            "the generator has {} input and {} output channels; volume synthesis handles single-channel volumes",
            config.in_channels,
            config.out_channels
        );
    }
    Ok(())
}

/// The scratch the core needs for one `height × width` slice of `config`'s model, or an
/// error naming the slice's size (a size the core cannot run).
pub fn scratch_for_slice(
    config: &ModelConfig,
    height: usize,
    width: usize,
) -> anyhow::Result<usize> {
    required_scratch_bytes(config, height, width)
        .map_err(|err| anyhow::anyhow!("the core cannot run a {height}x{width} slice: {err}"))
}

/// One CHW slice through the core in `scratch` (at least [`scratch_for_slice`] bytes): the
/// one call `firmware-sim`'s device and `trainer synth --weights` share, with one wording
/// for the core's refusal.
pub fn run_core_slice<W: Weights + ?Sized>(
    weights: &W,
    input: &[f32],
    height: usize,
    width: usize,
    pass: Pass,
    scratch: &mut [u8],
    output: &mut [f32],
) -> anyhow::Result<()> {
    synthesize(weights, input, height, width, pass, scratch, output)
        .map_err(|err| anyhow::anyhow!("the core refused the slice: {err}"))
}

/// Parses a pass's name as the command lines take it (`--pass undeformed|deformed`): one
/// parser for `trainer synth`, `trainer eval` and `firmware-sim run` (a clap `value_parser`).
pub fn parse_pass(name: &str) -> Result<Pass, String> {
    match name {
        "undeformed" => Ok(Pass::Undeformed),
        "deformed" => Ok(Pass::Deformed),
        _ => Err(format!(
            "unknown pass {name:?}: expected undeformed (offset layers bypassed, aligned with \
             the source) or deformed (through the offset layers, the target's geometry)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_names_parse_and_others_are_errors_naming_both() {
        assert_eq!(parse_pass("undeformed"), Ok(Pass::Undeformed));
        assert_eq!(parse_pass("deformed"), Ok(Pass::Deformed));
        let err = parse_pass("Deformed").unwrap_err();
        assert!(
            err.contains("\"Deformed\"") && err.contains("undeformed") && err.contains("deformed"),
            "{err}"
        );
    }
}
