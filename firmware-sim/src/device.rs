//! The simulated device: a flash image read in place and one fixed block of RAM.
//!
//! At boot the device validates its flash image and allocates its RAM once, the profile's
//! size. Every slice then runs entirely inside that block: input slice, output slice and
//! the core's scratch are carved from it, and nothing else is allocated on the inference
//! path — as on the real accelerator.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dicyc_core::{ModelConfig, Pass};
use dicyc_volume::slicewise::{run_core_slice, scratch_for_slice};

use crate::flash::FlashImage;
use crate::profile::{human_bytes, DeviceProfile};

/// Byte pattern the scratch is painted with, to measure how much of it a slice touched.
const CANARY: u8 = 0xa5;

/// What running one slice took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceStats {
    /// Scratch the core asked for (`required_scratch_bytes`).
    pub scratch_bytes: usize,
    /// RAM in use: scratch + input + output.
    pub ram_bytes: usize,
    /// Wall time of the core's `synthesize`.
    pub elapsed: Duration,
}

/// A booted device.
pub struct Device<'a> {
    image: FlashImage<'a>,
    profile: DeviceProfile,
    /// The whole RAM, as f32 so that the input and output views are aligned.
    ram: Vec<f32>,
}

impl<'a> Device<'a> {
    /// Validates the image (every byte checksummed) and allocates the profile's RAM.
    pub fn boot(image_bytes: &'a [u8], profile: &DeviceProfile) -> anyhow::Result<Device<'a>> {
        let image = FlashImage::new_checked(image_bytes)
            .context("the device refuses to boot this flash image")?;
        if image.image_len as u64 > profile.flash_bytes {
            bail!(
                "the flash image ({}) is larger than {}'s flash",
                human_bytes(image.image_len as u64),
                profile
            );
        }
        // Whole f32 words; up to 3 bytes of rounding that no slice may use (checked below).
        let words = usize::try_from(profile.ram_bytes.div_ceil(4))
            .context("RAM size does not fit in memory")?;
        Ok(Device {
            image,
            profile: profile.clone(),
            ram: vec![0f32; words],
        })
    }

    /// The generator's configuration.
    pub fn config(&self) -> ModelConfig {
        self.image.weights.config()
    }

    /// The validated flash image.
    pub fn image(&self) -> &FlashImage<'a> {
        &self.image
    }

    /// The scratch and the whole RAM (scratch + input + output) one `height × width` slice
    /// takes, or an error when the core cannot run that size or the device's RAM cannot hold
    /// it: checked before any slice data is read or copied.
    pub fn ram_for_slice(&self, height: usize, width: usize) -> anyhow::Result<(usize, usize)> {
        let config = self.config();
        let scratch_bytes = scratch_for_slice(&config, height, width)?;
        // The scratch size bounds the products: a slice the core runs fits in memory.
        let io_values = (config.in_channels + config.out_channels) as usize * height * width;
        let ram_bytes = scratch_bytes + 4 * io_values;
        if ram_bytes as u64 > self.profile.ram_bytes {
            bail!(
                "a {height}x{width} slice needs {} of RAM, {} has {}: {} short (choose a \
                 device profile with more RAM, --ram, or smaller slices)",
                human_bytes(ram_bytes as u64),
                self.profile.name,
                human_bytes(self.profile.ram_bytes),
                human_bytes(ram_bytes as u64 - self.profile.ram_bytes)
            );
        }
        Ok((scratch_bytes, ram_bytes))
    }

    /// Runs one CHW slice (in the generator's range) through the core within the device RAM.
    pub fn run_slice(
        &mut self,
        input: &[f32],
        height: usize,
        width: usize,
        pass: Pass,
        output: &mut [f32],
    ) -> anyhow::Result<SliceStats> {
        let config = self.config();
        // First the size (which bounds every product below), then the slices' lengths: a
        // caller's mismatch is an error, never a panic of the copies into the device RAM.
        let (scratch_bytes, ram_bytes) = self.ram_for_slice(height, width)?;
        let (cin, cout) = (config.in_channels as usize, config.out_channels as usize);
        let n_in = cin * height * width;
        let n_out = cout * height * width;
        if input.len() != n_in {
            bail!(
                "the input slice has {} values, the model's {cin}x{height}x{width} input needs {n_in}",
                input.len()
            );
        }
        if output.len() != n_out {
            bail!(
                "the output slice has room for {} values, the model's {cout}x{height}x{width} output needs {n_out}",
                output.len()
            );
        }
        let (io, rest) = self.ram.split_at_mut(n_in + n_out);
        let (device_in, device_out) = io.split_at_mut(n_in);
        device_in.copy_from_slice(input);
        let scratch = &mut bytemuck::cast_slice_mut::<f32, u8>(rest)[..scratch_bytes];
        let start = Instant::now();
        run_core_slice(
            &self.image.weights,
            device_in,
            height,
            width,
            pass,
            scratch,
            device_out,
        )?;
        let elapsed = start.elapsed();
        output.copy_from_slice(device_out);
        Ok(SliceStats {
            scratch_bytes,
            ram_bytes,
            elapsed,
        })
    }

    /// Measures the scratch a slice really touches: paints the RAM with a canary, runs the
    /// slice, and finds the last byte that changed. Must be ≤ what the core asked for.
    pub fn measure_scratch_touched(
        &mut self,
        input: &[f32],
        height: usize,
        width: usize,
        pass: Pass,
    ) -> anyhow::Result<usize> {
        let config = self.config();
        let n_io = (config.in_channels + config.out_channels) as usize * height * width;
        bytemuck::cast_slice_mut::<f32, u8>(&mut self.ram).fill(CANARY);
        let mut output = vec![0f32; config.out_channels as usize * height * width];
        self.run_slice(input, height, width, pass, &mut output)?;
        let scratch = &bytemuck::cast_slice::<f32, u8>(&self.ram)[n_io * 4..];
        Ok(scratch
            .iter()
            .rposition(|&b| b != CANARY)
            .map_or(0, |last| last + 1))
    }
}
