//! The `firmware-sim` command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use dicyc_core::Pass;
use dicyc_volume::atomic::{ensure_not_an_input, write_atomic};
use dicyc_volume::golden::read_manifest;
use dicyc_volume::slicewise::parse_pass;

use crate::device::Device;
use crate::fault::FaultArgs;
use crate::flash::{build_image, FaultMap, FlashImage, FLASH_MAGIC};
use crate::inspect::Inspection;
use crate::profile::{human_bytes, parse_size, DeviceProfile, NAMED_PROFILES};
use crate::run::{describe, run_file};
use crate::verify::{MAX_ABS_TOLERANCE, REL_L2_TOLERANCE};

/// Simulates the scanner-attached device that runs the dicyc generator.
#[derive(Debug, Parser)]
#[command(name = "firmware-sim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which device: a named profile, optionally with either size overridden.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// A named device profile (see `firmware-sim profiles`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Flash capacity (e.g. 64M), overriding the profile's.
    #[arg(long, value_parser = parse_size)]
    pub flash: Option<u64>,
    /// RAM for inference (e.g. 32M), overriding the profile's.
    #[arg(long, value_parser = parse_size)]
    pub ram: Option<u64>,
}

impl ProfileArgs {
    fn resolve(&self) -> anyhow::Result<DeviceProfile> {
        DeviceProfile::resolve(self.profile.as_deref(), self.flash, self.ram)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a weight file or a flash image and print its header, configuration, tensor
    /// table and checksums; exits non-zero with the exact error for a bad file.
    Inspect {
        /// A weight file or a flash image.
        file: PathBuf,
        /// Print JSON instead of the human-readable report.
        #[arg(long)]
        json: bool,
        /// Corrupt the file before validating it (to see that the fault is caught).
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// List the named device profiles.
    Profiles,
    /// Build a device flash image from a weight file; refuses when the image does not fit
    /// the profile's flash or a slice's scratch does not fit its RAM.
    Flash {
        /// The weight file (from `trainer export`).
        weights: PathBuf,
        /// The device.
        #[command(flatten)]
        profile: ProfileArgs,
        /// Slice height the device must handle.
        #[arg(long, default_value_t = 256)]
        height: usize,
        /// Slice width the device must handle.
        #[arg(long, default_value_t = 256)]
        width: usize,
        /// Where to write the image.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Run a golden bundle (from `trainer export`) on the device and compare both passes
    /// with libtorch's outputs; exits non-zero beyond rel L2 1e-2 or max abs 3e-2.
    Verify {
        /// The flash image.
        #[arg(long)]
        image: PathBuf,
        /// The golden bundle directory.
        #[arg(long)]
        golden: PathBuf,
        /// The device.
        #[command(flatten)]
        profile: ProfileArgs,
        /// Corrupt the image before loading it.
        #[command(flatten)]
        faults: FaultArgs,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run the generator from a flash image within the profile's RAM on a NIfTI volume,
    /// slice by slice, and write the result (target domain's units, the source's geometry);
    /// reports peak scratch and time per slice. A corrupted image writes nothing.
    Run {
        /// The flash image.
        #[arg(long)]
        image: PathBuf,
        /// The device.
        #[command(flatten)]
        profile: ProfileArgs,
        /// The source volume (.nii or .nii.gz).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the synthesised volume (.nii or .nii.gz).
        #[arg(long, short)]
        output: PathBuf,
        /// Which pass: `undeformed` (aligned with the source) or `deformed`.
        #[arg(long, value_parser = parse_pass, default_value = "undeformed")]
        pass: Pass,
        /// Corrupt the image before loading it.
        #[command(flatten)]
        faults: FaultArgs,
    },
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Inspect { file, json, faults } => inspect(&file, json, &faults),
            Command::Verify {
                image,
                golden,
                profile,
                faults,
                json,
            } => verify(
                &image,
                &golden,
                &profile.resolve()?,
                &faults,
                json.as_deref(),
            ),
            Command::Run {
                image,
                profile,
                input,
                output,
                pass,
                faults,
            } => {
                ensure_not_an_input(
                    &output,
                    &[(&input, "input volume"), (&image, "flash image")],
                )?;
                let profile = profile.resolve()?;
                let bytes = read_with_faults(&image, &faults)?;
                let mut device = Device::boot(&bytes, &profile)
                    .with_context(|| format!("loading {}", image.display()))?;
                let report = run_file(&mut device, &input, &output, pass)?;
                println!("{}", describe(&report, profile.ram_bytes));
                println!("run: {} -> {}", input.display(), output.display());
                Ok(())
            }
            Command::Profiles => {
                println!("{:<10} {:>10} {:>10}  use", "profile", "flash", "RAM");
                for (name, flash, ram, what) in NAMED_PROFILES {
                    println!(
                        "{name:<10} {:>10} {:>10}  {what}",
                        human_bytes(*flash),
                        human_bytes(*ram)
                    );
                }
                Ok(())
            }
            Command::Flash {
                weights,
                profile,
                height,
                width,
                output,
            } => {
                ensure_not_an_input(&output, &[(&weights, "weight file")])?;
                let profile = profile.resolve()?;
                let file = read(&weights, "weight file")?;
                let image = build_image(&file, &profile, height, width).with_context(|| {
                    format!("cannot flash {} onto {profile}", weights.display())
                })?;
                // The image is checked as the device will check it before it is written.
                let loaded = FlashImage::new_checked(&image).with_context(|| {
                    format!(
                        "cannot flash {}: the image built from it is invalid",
                        weights.display()
                    )
                })?;
                write_atomic(&output, &image)?;
                println!(
                    "flash: {} -> {} ({} of {} flash; a {height}x{width} slice needs {} of {} RAM)",
                    weights.display(),
                    output.display(),
                    human_bytes(image.len() as u64),
                    human_bytes(profile.flash_bytes),
                    human_bytes(loaded.planned_ram),
                    human_bytes(profile.ram_bytes),
                );
                Ok(())
            }
        }
    }
}

/// Reads a weight file or a flash image; a device (`/dev/zero`), a pipe or a folder is
/// refused from its metadata, before it is opened, instead of being read without end.
fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "cannot read {what} {}: not a regular file (give the path of a weight file or a flash image)",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Reads an image (or a weight file), applies the requested faults and reports each one
/// with the section it hit, named from the pristine file's layout. Faults are aimed at the
/// bytes the loader reads: flips land within the image proper, and a truncation that would
/// cut nothing of it is refused.
pub fn read_with_faults(path: &Path, faults: &FaultArgs) -> anyhow::Result<Vec<u8>> {
    let mut bytes = read(path, "file")?;
    if !faults.any() {
        return Ok(bytes);
    }
    let pristine = bytes.clone();
    let map = FaultMap::of(&pristine);
    let what = map.what();
    if let Some(len) = faults.truncate {
        anyhow::ensure!(
            len < pristine.len(),
            "nothing to corrupt: --truncate {len} is at or past the end of {} ({} bytes)",
            path.display(),
            pristine.len()
        );
        anyhow::ensure!(
            len < map.covered_len,
            "nothing to corrupt: --truncate {len} only cuts bytes after the {what} in {} (the {what} is its first {} bytes; the loader ignores the rest)",
            path.display(),
            map.covered_len
        );
    }
    if faults.flip_bits.is_some_and(|n| n > 0) {
        anyhow::ensure!(
            map.covered_len > 0,
            "nothing to corrupt: {} is empty",
            path.display()
        );
    }
    for flip in faults.apply(&mut bytes, map.covered_len) {
        eprintln!(
            "fault: flipped bit {} of byte {} ({})",
            flip.bit,
            flip.offset,
            map.region(flip.offset)
        );
    }
    if let Some(len) = faults.truncate {
        eprintln!(
            "fault: truncated {} bytes to {len}, cutting into the {}",
            pristine.len(),
            map.region(len)
        );
    }
    Ok(bytes)
}

fn inspect(path: &Path, json: bool, faults: &FaultArgs) -> anyhow::Result<()> {
    let bytes = read_with_faults(path, faults)?;
    let (flash, weights) = if bytes.starts_with(&FLASH_MAGIC) {
        let image = FlashImage::new_checked(&bytes)
            .with_context(|| format!("{} is not a valid flash image", path.display()))?;
        (Some(image), image.weights.bytes())
    } else {
        (None, &bytes[..])
    };
    let inspection = Inspection::of(weights)
        .with_context(|| format!("{} is not a valid dicyc weight file", path.display()))?;
    if json {
        let mut value = serde_json::to_value(&inspection)?;
        if let Some(image) = flash {
            value["flash"] = serde_json::json!({
                "image_bytes": image.image_len,
                "planned_height": image.planned_height,
                "planned_width": image.planned_width,
                "planned_ram_bytes": image.planned_ram,
                "header_crc32c": format!("{:08x}", image.header_crc32c),
            });
        }
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        if let Some(image) = flash {
            println!(
                "dicyc flash image, {} bytes: valid; provisioned for {}x{} slices needing {} of RAM; flash header crc32c {:08x}",
                image.image_len,
                image.planned_height,
                image.planned_width,
                human_bytes(image.planned_ram),
                image.header_crc32c
            );
        }
        print_stdout(&inspection.to_string())?;
    }
    Ok(())
}

fn verify(
    image_path: &Path,
    golden: &Path,
    profile: &DeviceProfile,
    faults: &FaultArgs,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let image = read_with_faults(image_path, faults)?;
    let mut device = Device::boot(&image, profile)
        .with_context(|| format!("loading {}", image_path.display()))?;
    // The manifest is checked against the model before any slice data is read.
    let manifest = read_manifest(golden)?;
    let crc = format!("{:08x}", device.image().weights.crc32c());
    anyhow::ensure!(
        manifest.weights_crc32c.eq_ignore_ascii_case(&crc),
        "the golden bundle {} was made for the weight file with CRC {}, the image {} holds {crc}: verify the bundle with the image of its own weights",
        golden.display(),
        manifest.weights_crc32c,
        image_path.display()
    );
    manifest.check_model(&device.config()).with_context(|| {
        format!(
            "{} does not fit the model in {}",
            golden.join(dicyc_volume::golden::MANIFEST).display(),
            image_path.display()
        )
    })?;
    if let Some(path) = json {
        let manifest_path = golden.join(dicyc_volume::golden::MANIFEST);
        let files: Vec<_> = manifest
            .slices
            .iter()
            .flat_map(|s| [&s.input, &s.deformed, &s.undeformed])
            .map(|name| golden.join(name))
            .collect();
        let mut inputs = vec![
            (image_path, "flash image"),
            (manifest_path.as_path(), "golden bundle manifest"),
        ];
        inputs.extend(files.iter().map(|f| (f.as_path(), "golden bundle file")));
        ensure_not_an_input(path, &inputs)?;
    }
    let report = crate::verify::verify(&mut device, golden, &manifest)?;
    for (name, pass) in [
        ("deformed", &report.deformed),
        ("undeformed", &report.undeformed),
    ] {
        println!(
            "verify {name:<10} rel_l2={:.3e} max_abs={:.3e} psnr={:.1} dB over {} slices: {}",
            pass.rel_l2,
            pass.max_abs,
            pass.psnr_db,
            pass.slices,
            if pass.passes() { "ok" } else { "FAIL" }
        );
    }
    println!(
        "verify: peak scratch {} ({} B), peak RAM {} of {}, {:.1} ms per slice and pass",
        human_bytes(report.peak_scratch_bytes as u64),
        report.peak_scratch_bytes,
        human_bytes(report.peak_ram_bytes as u64),
        human_bytes(profile.ram_bytes),
        report.mean_ms_per_slice
    );
    if let Some(path) = json {
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    anyhow::ensure!(
        report.passes(),
        "the device's output differs from libtorch's beyond tolerance (rel L2 <= {REL_L2_TOLERANCE}, max abs <= {MAX_ABS_TOLERANCE})"
    );
    Ok(())
}

/// Prints a report; a closed pipe (`firmware-sim inspect X | head`) ends the output quietly
/// instead of panicking.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
