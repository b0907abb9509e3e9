//! `firmware-sim` never writes over its own inputs: an output path that is the input volume,
//! the flash image, the weight file or a file of the golden bundle (by any spelling or link)
//! is refused before anything runs, and the input is left byte for byte (issue 11).

mod common;

use std::path::Path;
use std::process::Output;

use common::{firmware_sim, lcg_weight_file, roomy_image, run_command, SIDE};
use dicyc_core::format::Normalization;
use dicyc_firmware_sim::flash::FlashImage;
use dicyc_volume::golden::BundleWriter;
use dicyc_volume::nifti_io::write;
use dicyc_volume::Volume;
use ndarray::Array3;

fn weight_file() -> Vec<u8> {
    lcg_weight_file(13, 1.0, &Normalization::IDENTITY)
}

/// Refused cleanly, naming both paths, and `kept` still holds `bytes`.
fn assert_refused_and_kept(out: &Output, output: &Path, kept: &Path, bytes: &[u8]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for path in [output, kept] {
        assert!(
            stderr.contains(&path.display().to_string()),
            "{} missing from: {stderr}",
            path.display()
        );
    }
    assert!(stderr.contains("choose another output path"), "{stderr}");
    assert_eq!(std::fs::read(kept).unwrap(), bytes, "{}", kept.display());
}

#[test]
fn run_refuses_to_write_over_its_input_volume_or_image() {
    let dir = dicyc_volume::testing::scratch_dir("inputs-kept", "run");
    let image = dir.join("image.flash");
    std::fs::write(&image, roomy_image(&weight_file(), SIDE)).unwrap();
    let input = dir.join("in.nii.gz");
    let data = Array3::from_shape_fn((SIDE, SIDE, 2), |(i, j, k)| (i + 2 * j + k) as f32);
    write(&input, &Volume::new(data, [1.0; 3], [0.0; 3])).unwrap();
    let (input_bytes, image_bytes) = (
        std::fs::read(&input).unwrap(),
        std::fs::read(&image).unwrap(),
    );

    let out = run_command(&image, &input, &input, "1M").output().unwrap();
    assert_refused_and_kept(&out, &input, &input, &input_bytes);
    // Another spelling of the same file.
    let spelled = dir.join(".").join("in.nii.gz");
    let out = run_command(&image, &input, &spelled, "1M")
        .output()
        .unwrap();
    assert_refused_and_kept(&out, &spelled, &input, &input_bytes);
    // A symbolic link to the image, with a NIfTI name.
    let link = dir.join("image-link.nii");
    std::os::unix::fs::symlink(&image, &link).unwrap();
    let out = run_command(&image, &input, &link, "1M").output().unwrap();
    assert_refused_and_kept(&out, &link, &image, &image_bytes);
    // The control: a new output is written.
    let fresh = dir.join("out.nii.gz");
    let out = run_command(&image, &input, &fresh, "1M").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fresh.is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flash_refuses_to_write_over_its_weight_file() {
    let dir = dicyc_volume::testing::scratch_dir("inputs-kept", "flash");
    let weights = dir.join("w.dcw");
    let bytes = weight_file();
    std::fs::write(&weights, &bytes).unwrap();
    let hard = dir.join("w-hard.flash");
    std::fs::hard_link(&weights, &hard).unwrap();
    for output in [&weights, &hard] {
        let out = firmware_sim()
            .arg("flash")
            .arg(&weights)
            .args([
                "--flash", "1M", "--ram", "1M", "--height", "16", "--width", "16", "-o",
            ])
            .arg(output)
            .output()
            .unwrap();
        assert_refused_and_kept(&out, output, &weights, &bytes);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_json_refuses_to_write_over_the_image_or_the_bundle() {
    let dir = dicyc_volume::testing::scratch_dir("inputs-kept", "verify");
    let image_bytes = roomy_image(&weight_file(), SIDE);
    let crc = FlashImage::new_checked(&image_bytes)
        .unwrap()
        .weights
        .crc32c();
    let image = dir.join("image.flash");
    std::fs::write(&image, &image_bytes).unwrap();
    let golden = dir.join("golden");
    let mut bundle = BundleWriter::create(&golden, crc, 1, 1).unwrap();
    let x = common::input_signal(SIDE * SIDE);
    bundle.add("s", SIDE, SIDE, &x, &x, &x).unwrap();
    let manifest = bundle.finish().unwrap();
    let verify = |json: &Path| {
        firmware_sim()
            .arg("verify")
            .arg("--image")
            .arg(&image)
            .arg("--golden")
            .arg(&golden)
            .args(["--flash", "1M", "--ram", "1M", "--json"])
            .arg(json)
            .output()
            .unwrap()
    };
    let out = verify(&image);
    assert_refused_and_kept(&out, &image, &image, &image_bytes);
    for name in ["golden.json", manifest.slices[0].deformed.as_str()] {
        let file = golden.join(name);
        let bytes = std::fs::read(&file).unwrap();
        assert_refused_and_kept(&verify(&file), &file, &file, &bytes);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
