//! `firmware-sim verify` on hostile golden bundles: a manifest that disagrees with the model,
//! or names a device, a folder or a file of the wrong size, is a clear error naming the file,
//! never a panic and never an unbounded read (issue 11, finding 6).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{input_signal, lcg_weight_file, roomy, roomy_image, SIDE};
use dicyc_core::format::Normalization;
use dicyc_core::Pass;
use dicyc_firmware_sim::device::Device;
use dicyc_firmware_sim::flash::FlashImage;
use dicyc_volume::golden::{read_bundle, BundleWriter};

/// This suite's model: the shared tiny generator, LCG seed 5.
fn weight_file() -> Vec<u8> {
    lcg_weight_file(5, 1.0, &Normalization::IDENTITY)
}

/// One slice of `channels` channels of input.
fn input(channels: usize) -> Vec<f32> {
    input_signal(channels * SIDE * SIDE)
}

/// A folder with `image.flash` and a bundle `golden/` of one slice, written for `cin` input
/// and `cout` output channels (the model has 1 and 1); the files are consistent with the
/// manifest, so only a check against the model can refuse them.
fn setup(name: &str, cin: usize, cout: usize) -> (PathBuf, PathBuf, PathBuf) {
    let dir = dicyc_volume::testing::scratch_dir("golden", name);
    let image = roomy_image(&weight_file(), SIDE);
    let crc = FlashImage::new_checked(&image).unwrap().weights.crc32c();
    let path = dir.join("image.flash");
    std::fs::write(&path, &image).unwrap();
    let golden = dir.join("golden");
    let mut bundle = BundleWriter::create(&golden, crc, cin, cout).unwrap();
    let out = vec![0.25f32; cout * SIDE * SIDE];
    bundle
        .add("s", SIDE, SIDE, &input(cin), &out, &out)
        .unwrap();
    bundle.finish().unwrap();
    (dir, path, golden)
}

/// `firmware-sim verify`, with the address space capped (4 GiB) so that an unbounded read
/// fails fast instead of exhausting the machine's memory.
fn verify(image: &Path, golden: &Path, extra: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(["verify", "--profile", "edge-8m", "--image"])
        .arg(image)
        .arg("--golden")
        .arg(golden)
        .args(extra)
        .output()
        .unwrap()
}

fn assert_refused(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "verify passed: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "not a clean error exit: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    stderr
}

fn rewrite_manifest(golden: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = golden.join("golden.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

#[test]
fn a_consistent_bundle_runs() {
    // The control: same shapes as the hostile cases below, with the model's channels.
    let (_, image, golden) = setup("control", 1, 1);
    let out = verify(&image, &golden, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The zero reference outputs differ from the model's: the comparison fails, cleanly.
    assert!(stdout.contains("verify deformed"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn a_bundle_with_other_input_channels_is_refused_before_running() {
    let (_, image, golden) = setup("cin2", 2, 1);
    let manifest = golden.join("golden.json").display().to_string();
    assert_refused(
        &verify(&image, &golden, &[]),
        &[&manifest, "2 input channels", "1"],
    );
}

#[test]
fn a_bundle_with_other_output_channels_is_refused_before_running() {
    let (_, image, golden) = setup("cout3", 1, 3);
    let manifest = golden.join("golden.json").display().to_string();
    assert_refused(
        &verify(&image, &golden, &[]),
        &[&manifest, "3 output channels"],
    );
}

#[test]
fn a_bundle_with_zero_channels_is_refused() {
    let (_, image, golden) = setup("c0", 1, 1);
    rewrite_manifest(&golden, |m| m["in_channels"] = 0.into());
    let manifest = golden.join("golden.json").display().to_string();
    assert_refused(
        &verify(&image, &golden, &[]),
        &[&manifest, "0 input channels"],
    );
    // read_bundle alone (no model at hand) refuses it too.
    let err = format!("{:#}", read_bundle(&golden).unwrap_err());
    assert!(err.contains("0 input channels"), "{err}");
}

#[test]
fn a_slice_the_core_cannot_run_is_refused_before_any_data_is_read() {
    let (_, image, golden) = setup("dims", 1, 1);
    rewrite_manifest(&golden, |m| {
        m["slices"][0]["height"] = 0.into();
        m["slices"][0]["input"] = "/dev/zero".into();
    });
    assert_refused(&verify(&image, &golden, &[]), &["0x16"]);
    // Sizes whose byte count overflows are refused, not wrapped.
    rewrite_manifest(&golden, |m| {
        m["slices"][0]["height"] = serde_json::json!(u64::MAX / 2);
        m["slices"][0]["width"] = 8.into();
    });
    let err = format!("{:#}", read_bundle(&golden).unwrap_err());
    assert!(err.contains("golden.json"), "{err}");
}

#[test]
fn dev_zero_as_an_input_is_a_clear_error() {
    let (_, image, golden) = setup("devzero", 1, 1);
    std::os::unix::fs::symlink("/dev/zero", golden.join("zero.f32")).unwrap();
    rewrite_manifest(&golden, |m| m["slices"][0]["input"] = "zero.f32".into());
    assert_refused(
        &verify(&image, &golden, &[]),
        &["zero.f32", "not a regular file"],
    );
}

#[test]
fn file_names_that_leave_the_bundle_are_refused_before_any_data_is_read() {
    let (dir, image, golden) = setup("escape", 1, 1);
    // A real slice file of the right size outside the bundle: refused by name, not read.
    std::fs::copy(golden.join("slice-000.input.f32"), dir.join("outside.f32")).unwrap();
    let outside = dir.join("outside.f32").display().to_string();
    for name in [
        "../outside.f32",
        outside.as_str(),
        "/dev/zero",
        "sub/x.f32",
        "",
        ".",
    ] {
        rewrite_manifest(&golden, |m| m["slices"][0]["input"] = name.into());
        assert_refused(
            &verify(&image, &golden, &[]),
            &[
                "golden.json",
                &format!("{name:?}"),
                "plain names inside its folder",
            ],
        );
        let err = format!("{:#}", read_bundle(&golden).unwrap_err());
        assert!(err.contains("plain names"), "{name}: {err}");
    }
}

#[test]
fn a_folder_or_a_huge_file_as_an_output_is_a_clear_error() {
    let (_, image, golden) = setup("huge", 1, 1);
    // A sparse 1 TiB file: refused from its size, without reading it.
    let huge = golden.join("huge.f32");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    rewrite_manifest(&golden, |m| m["slices"][0]["deformed"] = "huge.f32".into());
    assert_refused(
        &verify(&image, &golden, &[]),
        &[&huge.display().to_string(), "1024 bytes", "1099511627776"],
    );
    std::fs::create_dir(golden.join("sub")).unwrap();
    rewrite_manifest(&golden, |m| m["slices"][0]["deformed"] = "sub".into());
    assert_refused(
        &verify(&image, &golden, &[]),
        &["sub", "not a regular file"],
    );
}

#[test]
fn a_truncated_file_names_itself() {
    let (_, image, golden) = setup("short", 1, 1);
    let file = golden.join("slice-000.undeformed.f32");
    std::fs::write(&file, [0u8; 10]).unwrap();
    assert_refused(
        &verify(&image, &golden, &[]),
        &[&file.display().to_string(), "10 bytes"],
    );
}

#[test]
fn a_manifest_that_is_a_device_is_a_clear_error() {
    let (_, image, golden) = setup("manifest-dev", 1, 1);
    std::fs::remove_file(golden.join("golden.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", golden.join("golden.json")).unwrap();
    assert_refused(
        &verify(&image, &golden, &[]),
        &["golden.json", "not a regular file"],
    );
}

/// The library: a slice of the wrong length is an error from the device, not a panic.
#[test]
fn the_device_refuses_slices_of_the_wrong_length() {
    let image = roomy_image(&weight_file(), SIDE);
    let mut device = Device::boot(&image, &roomy()).unwrap();
    let mut output = vec![0f32; SIDE * SIDE];
    for (cin, cout) in [(2, 1), (0, 1), (1, 2), (1, 0)] {
        let mut out = vec![0f32; cout * SIDE * SIDE];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            device.run_slice(&input(cin), SIDE, SIDE, Pass::Deformed, &mut out)
        }));
        let err = result
            .unwrap_or_else(|_| panic!("run_slice panicked for {cin} -> {cout} channels"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("values"), "{err}");
    }
    device
        .run_slice(&input(1), SIDE, SIDE, Pass::Deformed, &mut output)
        .unwrap();
}

/// Every slice's size is checked against the device's RAM before any slice data is read: a
/// slice the device cannot hold is refused by name even when its files do not exist.
#[test]
fn a_slice_too_large_for_the_device_ram_is_refused_before_any_data_is_read() {
    let (_, image, golden) = setup("ram-first", 1, 1);
    rewrite_manifest(&golden, |m| {
        let mut big = m["slices"][0].clone();
        big["name"] = "huge".into();
        big["height"] = 2048.into();
        big["width"] = 2048.into();
        big["input"] = "missing.input.f32".into();
        m["slices"].as_array_mut().unwrap().push(big);
    });
    let stderr = assert_refused(
        &verify(&image, &golden, &[]),
        &[
            "golden slice 1",
            "\"huge\"",
            "2048x2048 slice needs",
            "short",
        ],
    );
    assert!(!stderr.contains("missing.input.f32"), "{stderr}");
}

/// A bundle is replayed one slice at a time: 160 entries of one 256×256 slice (120 MiB of
/// data if held together, as the loader once did) run under a 64 MiB address-space cap.
#[test]
fn a_long_bundle_is_replayed_one_slice_at_a_time() {
    const SIDE_BIG: usize = 256;
    const ENTRIES: usize = 160;
    let dir = dicyc_volume::testing::scratch_dir("golden", "stream");
    let image = roomy_image(&weight_file(), SIDE);
    let crc = FlashImage::new_checked(&image).unwrap().weights.crc32c();
    let image_path = dir.join("image.flash");
    std::fs::write(&image_path, &image).unwrap();
    let golden = dir.join("golden");
    let mut bundle = BundleWriter::create(&golden, crc, 1, 1).unwrap();
    let x = input_signal(SIDE_BIG * SIDE_BIG);
    let reference = vec![0.25f32; SIDE_BIG * SIDE_BIG];
    bundle
        .add("s", SIDE_BIG, SIDE_BIG, &x, &reference, &reference)
        .unwrap();
    bundle.finish().unwrap();
    rewrite_manifest(&golden, |m| {
        let one = m["slices"][0].clone();
        m["slices"] = serde_json::Value::Array(vec![one; ENTRIES]);
    });
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 65536 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(["verify", "--profile", "edge-8m", "--image"])
        .arg(&image_path)
        .arg("--golden")
        .arg(&golden)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains(&format!("over {ENTRIES} slices")),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
