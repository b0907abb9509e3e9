//! Every field of the flash header is validated structurally, not only by the header CRC: a
//! header rewritten with a recomputed CRC (a buggy or hostile flasher) is refused unless it
//! is exactly what `firmware-sim flash` would have written (issue 11, finding 5).

mod common;

use std::path::Path;

use common::{firmware_sim, inspect_cli, lcg_weight_file, roomy_image, SIDE};
use dicyc_core::format::{crc32c, Normalization};
use dicyc_firmware_sim::flash::{ram_needed, FlashImage};
use proptest::prelude::*;

/// This suite's model: the shared tiny generator, LCG seed 3.
fn weight_file() -> Vec<u8> {
    lcg_weight_file(3, 1.0, &Normalization::IDENTITY)
}

/// A valid image followed by erased flash (so that a longer weight-file length still lies
/// inside the bytes given).
fn padded_image() -> Vec<u8> {
    let mut image = roomy_image(&weight_file(), SIDE);
    image.resize(image.len() + 4096, 0xff);
    image
}

/// The header fields of docs/FIRMWARE.md except the magic and the CRC: (name, offset, size).
const FIELDS: &[(&str, usize, usize)] = &[
    ("major version", 8, 2),
    ("minor version", 10, 2),
    ("header length", 12, 4),
    ("weight file offset", 16, 8),
    ("weight file length", 24, 8),
    ("weight file header CRC", 32, 4),
    ("planned height", 36, 4),
    ("planned width", 40, 4),
    ("reserved 44", 44, 4),
    ("planned RAM", 48, 8),
    ("reserved 56", 56, 4),
];

fn set_field(image: &mut [u8], offset: usize, size: usize, value: u64) {
    image[offset..offset + size].copy_from_slice(&value.to_le_bytes()[..size]);
}

fn field(image: &[u8], offset: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..size].copy_from_slice(&image[offset..offset + size]);
    u64::from_le_bytes(b)
}

/// Recomputes the header CRC, as a flasher that wrote the field on purpose would.
fn reseal(image: &mut [u8]) {
    let crc = crc32c(&image[..60]);
    image[60..64].copy_from_slice(&crc.to_le_bytes());
}

fn with_field(offset: usize, size: usize, value: u64) -> Vec<u8> {
    let mut image = padded_image();
    set_field(&mut image, offset, size, value);
    reseal(&mut image);
    image
}

fn inspect(path: &Path) -> (bool, String) {
    inspect_cli(path, &[])
}

#[test]
fn the_pristine_padded_image_is_valid() {
    let image = padded_image();
    let loaded = FlashImage::new_checked(&image).unwrap();
    assert_eq!((loaded.planned_height, loaded.planned_width), (16, 16));
    assert_eq!(
        loaded.planned_ram,
        ram_needed(&loaded.weights, SIDE, SIDE).unwrap()
    );
}

/// The cases of the probe: each is refused with a message naming the field, by the library
/// and by `firmware-sim inspect` (which names the file and says what to do).
#[test]
fn resealed_headers_with_impossible_fields_are_refused() {
    let dir = dicyc_volume::testing::scratch_dir("flash-header", "cases");
    let pristine = padded_image();
    let ram = field(&pristine, 48, 8);
    let weights_len = field(&pristine, 24, 8);
    let cases: &[(&str, usize, usize, u64, &str)] = &[
        ("width-0", 40, 4, 0, "planned slice"),
        ("height-0", 36, 4, 0, "planned slice"),
        ("width-odd", 40, 4, 17, "planned slice"),
        ("height-huge", 36, 4, u32::MAX as u64, "planned slice"),
        ("ram-1k", 48, 8, 1024, "planned RAM"),
        ("ram-plus-one", 48, 8, ram + 1, "planned RAM"),
        ("ram-zero", 48, 8, 0, "planned RAM"),
        ("minor-1", 10, 2, 1, "minor version"),
        ("minor-max", 10, 2, 0xffff, "minor version"),
        ("major-2", 8, 2, 2, "major version"),
        ("header-len", 12, 4, 65, "header length"),
        ("offset-0", 16, 8, 0, "weight file offset"),
        (
            "weights-len-plus-64",
            24,
            8,
            weights_len + 64,
            "weight file length",
        ),
        ("weights-len-huge", 24, 8, u64::MAX, "weight file length"),
        ("reserved-44", 44, 4, 1, "reserved"),
        ("reserved-56", 56, 4, 0x8000_0000, "reserved"),
    ];
    for &(name, offset, size, value, expected) in cases {
        let image = with_field(offset, size, value);
        let err = match FlashImage::new_checked(&image) {
            Ok(_) => panic!("{name}: a header with {expected} = {value} was accepted"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(expected), "{name}: {err}");
        let path = dir.join(format!("{name}.flash"));
        std::fs::write(&path, &image).unwrap();
        let (ok, stderr) = inspect(&path);
        assert!(!ok, "{name}: inspect accepted it");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// `verify` boots the device from the image first: it refuses a resealed bad header too.
#[test]
fn verify_refuses_a_resealed_header_with_a_zero_width() {
    let dir = dicyc_volume::testing::scratch_dir("flash-header", "verify");
    let path = dir.join("image.flash");
    std::fs::write(&path, with_field(40, 4, 0)).unwrap();
    std::fs::create_dir_all(dir.join("golden")).unwrap();
    let out = firmware_sim()
        .args(["verify", "--profile", "edge-8m", "--image"])
        .arg(&path)
        .arg("--golden")
        .arg(dir.join("golden"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("planned slice"),
        "{stderr}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single header field set to any other value, with the CRC recomputed, is refused,
    /// unless it is the planned slice size changed to another size that the core plans to
    /// exactly the recorded RAM: then the header is as consistent as the original (the
    /// planned size is informational; the device checks every slice it runs against its
    /// RAM), which docs/FIRMWARE.md lists as harmless.
    #[test]
    fn any_single_resealed_field_change_is_refused_or_consistent(
        which in 0..FIELDS.len(),
        value in prop_oneof![any::<u64>(), 0u64..512, Just(u64::MAX)],
    ) {
        let (name, offset, size) = FIELDS[which];
        let pristine = padded_image();
        let value = if size == 8 { value } else { value & ((1u64 << (8 * size)) - 1) };
        prop_assume!(value != field(&pristine, offset, size));
        let image = with_field(offset, size, value);
        match FlashImage::new_checked(&image) {
            Err(_) => {}
            Ok(loaded) => {
                prop_assert!(
                    name == "planned height" || name == "planned width",
                    "{name} = {value} was accepted"
                );
                let (h, w) = (loaded.planned_height as usize, loaded.planned_width as usize);
                prop_assert_eq!(
                    ram_needed(&loaded.weights, h, w).ok(),
                    Some(loaded.planned_ram),
                    "{} = {} accepted with an inconsistent plan", name, value
                );
            }
        }
    }

    /// The CRC field itself, changed without resealing: a corrupted header.
    #[test]
    fn a_changed_crc_is_refused(value in any::<u32>()) {
        let mut image = padded_image();
        prop_assume!(value != field(&image, 60, 4) as u32);
        image[60..64].copy_from_slice(&value.to_le_bytes());
        prop_assert!(FlashImage::new_checked(&image).is_err());
    }

    /// Any magic but `DICYCFLS`, resealed: not a flash image.
    #[test]
    fn a_changed_magic_is_refused(magic in any::<[u8; 8]>()) {
        prop_assume!(&magic != b"DICYCFLS");
        let mut image = padded_image();
        image[..8].copy_from_slice(&magic);
        reseal(&mut image);
        prop_assert!(FlashImage::new_checked(&image).is_err());
    }
}

/// An image or weight file that is a device or a folder is refused before it is read (not
/// read until memory runs out).
#[test]
fn a_device_or_a_folder_as_the_file_is_a_clear_error() {
    let dir = dicyc_volume::testing::scratch_dir("flash-header", "device");
    for path in [Path::new("/dev/zero"), dir.as_path()] {
        let (ok, stderr) = inspect(path);
        assert!(!ok);
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("not a regular file"),
            "{stderr}"
        );
    }
}
