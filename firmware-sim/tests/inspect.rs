//! `firmware-sim inspect` on a valid file and on corrupted ones, through the real binary.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{firmware_sim, tiny_config, tiny_shared_config, weight_file_of, weight_file_with};
use dicyc_core::format::Normalization;

/// The shared tiny generator, every tensor filled with the ramp 0, 0.01, …, 0.06, 0, ….
fn small_weight_file() -> Vec<u8> {
    weight_file_with(&Normalization::IDENTITY, |spec, sink| {
        for i in 0..spec.element_count() {
            sink.push((i % 7) as f32 * 0.01)?;
        }
        Ok(())
    })
}

fn inspect(bytes: &[u8], extra: &[&str]) -> std::process::Output {
    // Tests run in parallel: every call gets its own file.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("dicyc-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("w{}.dcw", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, bytes).unwrap();
    let out = firmware_sim()
        .arg("inspect")
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    out
}

#[test]
fn a_valid_file_is_described() {
    let out = inspect(&small_weight_file(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(
        stdout.contains("offset layers [input, down1, down2, block0] (per-channel)"),
        "{stdout}"
    );
    assert!(stdout.contains("blocks.0.conv1.weight"), "{stdout}");
}

#[test]
fn a_shared_offset_form_is_named_with_its_shapes() {
    let bytes = weight_file_of(
        &tiny_shared_config(),
        &Normalization::IDENTITY,
        |spec, sink| {
            for i in 0..spec.element_count() {
                sink.push((i % 5) as f32 * 0.01)?;
            }
            Ok(())
        },
    );
    let out = inspect(&bytes, &["--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], "1.1");
    assert_eq!(json["offset_form"], "shared");
    // One field (dy, dx) per site: the down2 offset conv maps 2·ngf = 4 channels to 2.
    let down2 = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "offset.down2.weight")
        .unwrap();
    assert_eq!(down2["dims"], serde_json::json!([2, 4, 3, 3]));
    let text = String::from_utf8_lossy(&inspect(&bytes, &[]).stdout).into_owned();
    assert!(text.contains("block0] (shared)"), "{text}");
}

#[test]
fn json_lists_every_tensor() {
    let out = inspect(&small_weight_file(), &["--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = tiny_config();
    assert_eq!(
        json["tensors"].as_array().unwrap().len(),
        config.tensor_count() as usize
    );
    assert_eq!(
        json["parameters"].as_u64().unwrap(),
        config.parameter_count()
    );
}

#[test]
fn a_flipped_bit_is_refused_with_the_section_it_hit() {
    let mut bytes = small_weight_file();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x10; // inside the data section
    let out = inspect(&bytes, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a valid dicyc weight file"), "{stderr}");
    assert!(stderr.to_lowercase().contains("data"), "{stderr}");
}

#[test]
fn a_truncated_file_is_refused() {
    let bytes = small_weight_file();
    let out = inspect(&bytes[..bytes.len() / 2], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .to_lowercase()
        .contains("trunc"));
}

#[test]
fn faults_in_a_weight_file_name_its_section() {
    let bytes = small_weight_file();
    let data_start = dicyc_firmware_sim::inspect::Inspection::of(&bytes)
        .unwrap()
        .tensors[0]
        .offset;
    for (len, region) in [
        (50, "weight-file header"),
        (
            dicyc_core::format::HEADER_LEN + 10,
            "weight-file tensor table",
        ),
        (data_start + 10, "weight-file data"),
    ] {
        let out = inspect(&bytes, &["--truncate", &len.to_string()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "truncation to {len} not detected");
        assert!(
            stderr.contains(&format!("cutting into the {region}")),
            "{stderr}"
        );
    }
    let out = inspect(&bytes, &["--flip-bits", "4", "--seed", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let flips: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("fault: flipped bit"))
        .collect();
    assert_eq!(flips.len(), 4, "{stderr}");
    assert!(
        flips.iter().all(|l| l.contains("(weight-file ")),
        "{stderr}"
    );
    let out = inspect(&bytes, &["--truncate", &bytes.len().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("nothing to corrupt"), "{stderr}");
}
