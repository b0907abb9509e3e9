//! The device simulation: corruption of a flash image is always caught, profiles refuse
//! what does not fit (and accept what fits exactly), and `verify` can fail.

mod common;

use common::{
    both_passes, firmware_sim, input_signal, inspect_cli, lcg_weight_file, lcg_weight_file_of,
    roomy, roomy_image, tiny_shared_config, SIDE,
};
use dicyc_core::format::Normalization;
use dicyc_core::Pass;
use dicyc_firmware_sim::device::Device;
use dicyc_firmware_sim::flash::{build_image, ram_needed, FlashImage};
use dicyc_firmware_sim::profile::DeviceProfile;
use dicyc_volume::golden::{read_bundle, BundleWriter};
use proptest::prelude::*;

/// This suite's model: the shared tiny generator, LCG seed 1, its weights times `scale`
/// (> 1 perturbs them).
fn weight_file(scale: f32) -> Vec<u8> {
    lcg_weight_file(1, scale, &Normalization::IDENTITY)
}

fn image() -> Vec<u8> {
    roomy_image(&weight_file(1.0), SIDE)
}

/// One slice of input.
fn input() -> Vec<f32> {
    input_signal(SIDE * SIDE)
}

#[test]
fn every_single_bit_flip_in_an_image_is_detected() {
    let pristine = image();
    assert!(FlashImage::new_checked(&pristine).is_ok());
    let mut image = pristine.clone();
    for bit in 0..image.len() * 8 {
        image[bit / 8] ^= 1 << (bit % 8);
        assert!(
            FlashImage::new_checked(&image).is_err(),
            "flip of bit {bit} went undetected"
        );
        image[bit / 8] ^= 1 << (bit % 8);
    }
}

#[test]
fn every_truncation_is_detected() {
    let image = image();
    for len in 0..image.len() {
        assert!(
            FlashImage::new_checked(&image[..len]).is_err(),
            "truncation to {len} bytes went undetected"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_multi_bit_faults_are_detected(seed in any::<u64>(), n in 1usize..64) {
        let mut image = image();
        dicyc_firmware_sim::fault::flip_bits(&mut image, n, seed);
        prop_assert!(FlashImage::new_checked(&image).is_err());
    }

    #[test]
    fn a_device_never_boots_a_corrupted_image(bit in 0usize..8 * 10_000) {
        let mut image = image();
        let bit = bit % (image.len() * 8);
        image[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Device::boot(&image, &roomy()).is_err());
    }
}

#[test]
fn a_profile_that_fits_exactly_runs_and_one_byte_less_is_refused() {
    profile_fits_exactly(&weight_file(1.0));
    // One shared field per offset layer: its own (smaller) scratch, planned just as exactly.
    profile_fits_exactly(&lcg_weight_file_of(
        &tiny_shared_config(),
        3,
        1.0,
        &Normalization::IDENTITY,
    ));
}

fn profile_fits_exactly(weights: &[u8]) {
    let weights = weights.to_vec();
    let file = dicyc_core::WeightFile::new_checked(&weights).unwrap();
    let ram = ram_needed(&file, SIDE, SIDE).unwrap();
    let image_len = roomy_image(&weights, SIDE).len() as u64;

    let exact = DeviceProfile {
        name: "exact".into(),
        flash_bytes: image_len,
        ram_bytes: ram,
    };
    let image = build_image(&weights, &exact, SIDE, SIDE).unwrap();
    let mut device = Device::boot(&image, &exact).unwrap();
    let mut output = vec![0f32; SIDE * SIDE];
    let stats = device
        .run_slice(&input(), SIDE, SIDE, Pass::Deformed, &mut output)
        .unwrap();
    assert_eq!(stats.ram_bytes as u64, ram);
    assert!(output.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    let touched = device
        .measure_scratch_touched(&input(), SIDE, SIDE, Pass::Deformed)
        .unwrap();
    assert!(
        touched > 0 && touched <= stats.scratch_bytes,
        "touched {touched} of {}",
        stats.scratch_bytes
    );

    let small_flash = DeviceProfile {
        flash_bytes: image_len - 1,
        ..exact.clone()
    };
    let err = build_image(&weights, &small_flash, SIDE, SIDE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not fit") && err.contains("1 B too large"),
        "{err}"
    );
    let small_ram = DeviceProfile {
        ram_bytes: ram - 1,
        ..exact.clone()
    };
    let err = build_image(&weights, &small_ram, SIDE, SIDE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 B short"), "{err}");
    // A device whose RAM shrank after flashing refuses the slice instead of overrunning.
    let mut device = Device::boot(&image, &small_ram).unwrap();
    let err = device
        .run_slice(&input(), SIDE, SIDE, Pass::Undeformed, &mut output)
        .unwrap_err()
        .to_string();
    assert!(err.contains("short"), "{err}");
}

/// A golden bundle computed with one set of weights, replayed on a device with `image`.
fn verify_cli(reference_weights: &[u8], image: &[u8]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!(
        "dicyc-verify-{}-{}",
        std::process::id(),
        image.len() ^ reference_weights[200] as usize
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The reference outputs come from the core on the reference weights.
    let reference_image = roomy_image(reference_weights, SIDE);
    let mut reference = Device::boot(&reference_image, &roomy()).unwrap();
    let image_crc = FlashImage::new_checked(image).unwrap().weights.crc32c();
    let mut bundle = BundleWriter::create(&dir.join("golden"), image_crc, 1, 1).unwrap();
    for k in 0..2 {
        let x: Vec<f32> = input().iter().map(|v| v * (1.0 - 0.3 * k as f32)).collect();
        let (deformed, undeformed) = both_passes(&mut reference, &x);
        bundle
            .add(
                &format!("slice {k}"),
                SIDE,
                SIDE,
                &x,
                &deformed,
                &undeformed,
            )
            .unwrap();
    }
    bundle.finish().unwrap();
    assert_eq!(read_bundle(&dir.join("golden")).unwrap().1.len(), 2);
    std::fs::write(dir.join("image.flash"), image).unwrap();
    firmware_sim()
        .args(["verify", "--profile", "edge-8m", "--image"])
        .arg(dir.join("image.flash"))
        .arg("--golden")
        .arg(dir.join("golden"))
        .output()
        .unwrap()
}

#[test]
fn verify_passes_on_the_same_weights_and_fails_on_perturbed_ones() {
    let weights = weight_file(1.0);
    let out = verify_cli(&weights, &roomy_image(&weights, SIDE));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verify deformed") && stdout.contains("ok"),
        "{stdout}"
    );

    // Same architecture, weights scaled by 1.5: the device output must be flagged.
    let perturbed = weight_file(1.5);
    let out = verify_cli(&weights, &roomy_image(&perturbed, SIDE));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "perturbed weights passed verify:\n{stdout}"
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("beyond tolerance"));
}

/// The section of a flash image of `weights` that byte `offset` is in, from the documented
/// layouts (docs/FIRMWARE.md, docs/FORMAT.md) and the tensor table's first data offset.
fn expected_region(weights: &[u8], offset: usize) -> &'static str {
    let data_start = dicyc_firmware_sim::inspect::Inspection::of(weights)
        .unwrap()
        .tensors[0]
        .offset;
    match offset {
        o if o < 64 => "flash header",
        o if o < 64 + dicyc_core::format::HEADER_LEN => "weight-file header",
        o if o < 64 + data_start => "weight-file tensor table",
        o if o < 64 + weights.len() => "weight-file data",
        _ => "past the image",
    }
}

#[test]
fn faults_injected_on_the_command_line_are_reported_with_their_section_and_refused() {
    let dir = dicyc_volume::testing::scratch_dir("device", "faults");
    let weights = weight_file(1.0);
    let pristine = image();
    let path = dir.join("image.flash");
    std::fs::write(&path, &pristine).unwrap();

    // Truncations name the section they cut into.
    for len in [10, 100, 300, 1000, pristine.len() - 1] {
        let (ok, stderr) = inspect_cli(&path, &["--truncate", &len.to_string()]);
        assert!(!ok, "truncation to {len} not detected");
        let region = expected_region(&weights, len);
        assert!(
            stderr.contains(&format!("to {len}, cutting into the {region}")),
            "truncate {len}: {stderr}"
        );
        assert!(stderr.contains("not a valid flash image"), "{stderr}");
    }
    // Bit flips: every reported byte is in the image, in the section the layout says.
    for seed in 0..8u64 {
        let (ok, stderr) = inspect_cli(&path, &["--flip-bits", "3", "--seed", &seed.to_string()]);
        assert!(!ok, "flips with seed {seed} not detected");
        let flips: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("fault: flipped bit"))
            .collect();
        assert_eq!(flips.len(), 3, "{stderr}");
        for line in flips {
            let offset: usize = line
                .split("of byte ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no byte offset in {line:?}"));
            let region = expected_region(&weights, offset);
            assert_ne!(region, "past the image", "{line}");
            assert!(line.ends_with(&format!("({region})")), "{line}");
        }
    }
    // Nothing to corrupt: a truncation at or past the end is refused as such.
    for len in [pristine.len(), pristine.len() + 5] {
        let (ok, stderr) = inspect_cli(&path, &["--truncate", &len.to_string()]);
        assert!(!ok);
        assert!(stderr.contains("nothing to corrupt"), "{stderr}");
        assert!(!stderr.contains("fault:"), "{stderr}");
    }

    // Erased flash after the image: flips still land in the image and are caught, and a
    // truncation that only cuts the erased bytes is refused.
    let padded = dir.join("padded.flash");
    let mut bytes = pristine.clone();
    bytes.resize(5 * pristine.len(), 0xff);
    std::fs::write(&padded, &bytes).unwrap();
    let (ok, _) = inspect_cli(&padded, &[]);
    assert!(ok, "trailing erased bytes must not invalidate the image");
    for seed in 0..8u64 {
        let (ok, stderr) = inspect_cli(&padded, &["--flip-bits", "1", "--seed", &seed.to_string()]);
        assert!(!ok, "a flip with seed {seed} was not caught: {stderr}");
        assert!(!stderr.contains("past the image"), "{stderr}");
    }
    let (ok, stderr) = inspect_cli(&padded, &["--truncate", &pristine.len().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("nothing to corrupt") && stderr.contains("only cuts bytes after"),
        "{stderr}"
    );

    let out = firmware_sim().arg("inspect").arg(&path).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let header_crc = u32::from_le_bytes(pristine[60..64].try_into().unwrap());
    assert!(
        stdout.contains("dicyc flash image")
            && stdout.contains(&format!("flash header crc32c {header_crc:08x}")),
        "{stdout}"
    );
}
