//! `cargo +nightly fuzz run flash_image`: arbitrary bytes into the device simulator's
//! flash-image reader.
//!
//! The promise under test (docs/SECURITY.md, docs/FIRMWARE.md): `FlashImage::new_checked`
//! never panics, and an image it accepts holds a weight file the core accepts on its own,
//! with a planned slice whose RAM the core's plan confirms.
#![no_main]

use dicyc_core::WeightFile;
use dicyc_firmware_sim::flash::{ram_needed, FlashImage, FLASH_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = FlashImage::new_checked(data) else {
        return;
    };
    assert!(image.image_len <= data.len());
    let weights = image.weights.bytes();
    assert_eq!(image.image_len, FLASH_HEADER_LEN + weights.len());
    assert!(WeightFile::new_checked(weights).is_ok());
    let planned = ram_needed(
        &image.weights,
        image.planned_height as usize,
        image.planned_width as usize,
    );
    assert_eq!(planned.ok(), Some(image.planned_ram));
});
