//! Every file `firmware-sim` writes appears whole or not at all: a disk that fills up (the
//! file-size limit `ulimit -f` makes writes fail with EFBIG, as a full disk fails them with
//! ENOSPC), or a destination that cannot be replaced, leaves neither the file nor a
//! temporary behind (issue 11, finding 10).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{both_passes, lcg_weight_file, roomy, roomy_image, SIDE};
use dicyc_core::format::Normalization;
use dicyc_firmware_sim::device::Device;
use dicyc_firmware_sim::flash::FlashImage;
use dicyc_volume::golden::BundleWriter;
use dicyc_volume::testing::listing;

/// This suite's model: the shared tiny generator, LCG seed 11.
fn weight_file() -> Vec<u8> {
    lcg_weight_file(11, 1.0, &Normalization::IDENTITY)
}

/// Runs `firmware-sim ARGS` with writes limited to `blocks` × 512 bytes per file and
/// SIGXFSZ ignored, so that a write past the limit fails with EFBIG like one on a full disk.
fn firmware_sim_with_file_limit(blocks: u64, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ && ulimit -f {blocks} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(args)
        .output()
        .unwrap()
}

fn flash_args<'a>(weights: &'a Path, output: &'a Path) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "flash".as_ref(),
        weights.as_os_str(),
        "--flash".as_ref(),
        "1M".as_ref(),
        "--ram".as_ref(),
        "1M".as_ref(),
        "--height".as_ref(),
        "16".as_ref(),
        "--width".as_ref(),
        "16".as_ref(),
        "-o".as_ref(),
        output.as_os_str(),
    ]
}

/// `firmware-sim flash` is given its weights from a folder of their own, so that the output
/// folder holds only what `flash` wrote.
fn weights_in(dir: &Path) -> PathBuf {
    let path = dir.join("weights").join("w.dcw");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, weight_file()).unwrap();
    path
}

#[test]
fn flash_onto_a_full_disk_leaves_nothing() {
    let dir = dicyc_volume::testing::scratch_dir("atomic", "flash-full");
    let weights = weights_in(&dir);
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("x.flash");
    // 4 KiB: the 9.6 KB image cannot be written whole.
    let out = firmware_sim_with_file_limit(8, &flash_args(&weights, &output));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "flash succeeded: {stderr}");
    assert!(
        stderr.contains(&output.display().to_string()) && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(listing(&out_dir), Vec::<String>::new(), "{stderr}");

    // Without the limit the same command writes the image, and only it.
    let out = firmware_sim_with_file_limit(1 << 20, &flash_args(&weights, &output));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(&out_dir), vec!["x.flash".to_string()]);
    FlashImage::new_checked(&std::fs::read(&output).unwrap()).unwrap();

    // A failed re-flash leaves the earlier image as it was.
    let before = std::fs::read(&output).unwrap();
    let out = firmware_sim_with_file_limit(8, &flash_args(&weights, &output));
    assert!(!out.status.success());
    assert_eq!(listing(&out_dir), vec!["x.flash".to_string()]);
    assert_eq!(std::fs::read(&output).unwrap(), before);
}

#[test]
fn flash_onto_a_folder_leaves_no_temporary() {
    let dir = dicyc_volume::testing::scratch_dir("atomic", "flash-dir");
    let weights = weights_in(&dir);
    let out_dir = dir.join("out");
    // The destination is a non-empty folder: the final rename fails.
    std::fs::create_dir_all(out_dir.join("x.flash").join("inside")).unwrap();
    let output = out_dir.join("x.flash");
    let out = firmware_sim_with_file_limit(1 << 20, &flash_args(&weights, &output));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&output.display().to_string()), "{stderr}");
    assert_eq!(listing(&out_dir), vec!["x.flash".to_string()], "{stderr}");
}

#[test]
fn verify_json_onto_a_full_disk_leaves_nothing() {
    let dir = dicyc_volume::testing::scratch_dir("atomic", "verify-json");
    let image = roomy_image(&weight_file(), SIDE);
    let image_path = dir.join("image.flash");
    std::fs::write(&image_path, &image).unwrap();
    // A bundle of the device's own outputs: verify passes, only the report fails to write.
    let mut device = Device::boot(&image, &roomy()).unwrap();
    let crc = device.image().weights.crc32c();
    let golden = dir.join("golden");
    let mut bundle = BundleWriter::create(&golden, crc, 1, 1).unwrap();
    let x: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let (d, u) = both_passes(&mut device, &x);
    bundle.add("s", SIDE, SIDE, &x, &d, &u).unwrap();
    bundle.finish().unwrap();

    let report_dir = dir.join("report");
    std::fs::create_dir(&report_dir).unwrap();
    let report = report_dir.join("v.json");
    let args: Vec<&std::ffi::OsStr> = vec![
        "verify".as_ref(),
        "--profile".as_ref(),
        "edge-8m".as_ref(),
        "--image".as_ref(),
        image_path.as_os_str(),
        "--golden".as_ref(),
        golden.as_os_str(),
        "--json".as_ref(),
        report.as_os_str(),
    ];
    // No file may grow at all: the report's first write fails.
    let out = firmware_sim_with_file_limit(0, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&report.display().to_string()) && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(listing(&report_dir), Vec::<String>::new(), "{stderr}");

    let out = firmware_sim_with_file_limit(1 << 20, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(&report_dir), vec!["v.json".to_string()]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(json["deformed"]["rel_l2"].is_number(), "{json}");
}
