//! Fixtures shared by the `firmware-sim` integration tests: the tiny generator they all
//! flash, its weight files, the roomy device profile they flash it for, and the few ways they
//! call the `firmware-sim` binary. One copy here keeps every test file describing the same
//! model and device; where tests need different inputs (the LCG seed, a weight scale, the
//! normalisation, the slice size) those are parameters, so each test's bytes stay its own.
//!
//! Not every test file uses every helper, hence the crate-level `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use dicyc_core::format::{file_size, write_weight_file, TensorSink};
use dicyc_core::{
    ModelConfig, Normalization, OffsetForm, OffsetLayers, Pass, TensorSpec, WriteError,
};
use dicyc_firmware_sim::device::Device;
use dicyc_firmware_sim::flash::build_image;
use dicyc_firmware_sim::profile::DeviceProfile;

/// The slice side most tests plan images for and run: small enough that exhaustive fault
/// sweeps over an image stay fast.
pub const SIDE: usize = 16;

/// A normalisation into target units (offset 120, scale 40) for the tests of `firmware-sim
/// run`, which check that the output volume is in the weight file's units.
pub const NORM: Normalization = Normalization {
    input_offset: 0.0,
    input_scale: 1.0 / 3.0,
    output_offset: 120.0,
    output_scale: 40.0,
};

/// The smallest generator the tests flash: one channel in and out, `ngf` 2, one residual
/// block, offsets at every layer (so every kind of tensor is in the file).
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetLayers::ALL,
    }
}

/// [`tiny_config`] with one shared field per offset layer instead of per-channel ones.
pub fn tiny_shared_config() -> ModelConfig {
    ModelConfig {
        offset_layers: OffsetLayers::ALL.with_form(OffsetForm::Shared),
        ..tiny_config()
    }
}

/// A weight file of [`tiny_config`] with `norm`, its tensors filled by `fill` (as
/// `dicyc_core::format::write_weight_file` calls it, tensor by tensor).
pub fn weight_file_with(
    norm: &Normalization,
    fill: impl FnMut(&TensorSpec, &mut TensorSink<'_>) -> Result<(), WriteError>,
) -> Vec<u8> {
    weight_file_of(&tiny_config(), norm, fill)
}

/// [`weight_file_with`] for another configuration.
pub fn weight_file_of(
    config: &ModelConfig,
    norm: &Normalization,
    fill: impl FnMut(&TensorSpec, &mut TensorSink<'_>) -> Result<(), WriteError>,
) -> Vec<u8> {
    let mut bytes = vec![0u8; file_size(config).unwrap()];
    write_weight_file(&mut bytes, config, norm, fill).unwrap();
    bytes
}

/// A weight file of [`tiny_config`] with deterministic pseudo-random weights: a linear
/// congruential generator started at `seed` gives values uniform in ±0.2, times `scale`
/// (1.0 leaves them as they are; more perturbs them). Different seeds give different but
/// equally valid models, so tests that must not share a model pick their own.
pub fn lcg_weight_file(seed: u32, scale: f32, norm: &Normalization) -> Vec<u8> {
    lcg_weight_file_of(&tiny_config(), seed, scale, norm)
}

/// [`lcg_weight_file`] for another configuration.
pub fn lcg_weight_file_of(
    config: &ModelConfig,
    seed: u32,
    scale: f32,
    norm: &Normalization,
) -> Vec<u8> {
    let mut state = seed;
    weight_file_of(config, norm, |_, sink| {
        while sink.remaining() > 0 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            sink.push(scale * ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.4)?;
        }
        Ok(())
    })
}

/// A device with 1 MiB of flash and 1 MiB of RAM: room for the tiny model at every slice size
/// the tests use, so that only the fault under test can make a run fail.
pub fn roomy() -> DeviceProfile {
    DeviceProfile {
        name: "test".into(),
        flash_bytes: 1 << 20,
        ram_bytes: 1 << 20,
    }
}

/// The flash image of `weights` for the [`roomy`] device, planned for `side` × `side` slices.
pub fn roomy_image(weights: &[u8], side: usize) -> Vec<u8> {
    build_image(weights, &roomy(), side, side).unwrap()
}

/// `len` deterministic input values spread over ±0.9 (inside the generator's input range),
/// one slice's worth per `SIDE * SIDE`.
pub fn input_signal(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.9)
        .collect()
}

/// `device`'s deformed and undeformed outputs for the `SIDE` × `SIDE` slice `x`: the
/// reference outputs of a golden bundle that the device must reproduce.
pub fn both_passes(device: &mut Device, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut deformed = vec![0f32; SIDE * SIDE];
    let mut undeformed = vec![0f32; SIDE * SIDE];
    device
        .run_slice(x, SIDE, SIDE, Pass::Deformed, &mut deformed)
        .unwrap();
    device
        .run_slice(x, SIDE, SIDE, Pass::Undeformed, &mut undeformed)
        .unwrap();
    (deformed, undeformed)
}

/// The `firmware-sim` binary Cargo built for these tests, as a command to add arguments to.
pub fn firmware_sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
}

/// `firmware-sim inspect PATH ARGS`: whether it succeeded, and its standard error.
pub fn inspect_cli(path: &Path, args: &[&str]) -> (bool, String) {
    let out = firmware_sim()
        .arg("inspect")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `firmware-sim run --image IMAGE --flash 1M --ram RAM --input INPUT --output OUTPUT`, to
/// add more arguments or environment to.
pub fn run_command(image: &Path, input: &Path, output: &Path, ram: &str) -> Command {
    let mut command = firmware_sim();
    command
        .arg("run")
        .arg("--image")
        .arg(image)
        .args(["--flash", "1M", "--ram", ram, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output);
    command
}
