//! `cargo +nightly fuzz run weight_file`: arbitrary bytes into the core's weight-file reader.
//!
//! The promise under test (docs/SECURITY.md, docs/FORMAT.md "Security notes"):
//! `WeightFile::new_checked` never panics, and once it accepts a file no accessor can fail or
//! panic, and the generator runs on it (a small slice, when its scratch is small) without
//! panicking, whatever the weights hold.
#![no_main]

use dicyc_core::format::Section;
use dicyc_core::{required_scratch_bytes, synthesize, Pass, WeightFile};
use libfuzzer_sys::fuzz_target;

/// The slice the generator is run on: the smallest it accepts.
const SIDE: usize = 8;
/// Scratch beyond this is not allocated (a large model is still read and checked, not run).
const MAX_SCRATCH: usize = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = WeightFile::new_checked(data) else {
        return;
    };
    let config = file.config();
    let _ = file.normalization();
    let _ = file.version();
    let _ = file.architecture_hash();
    assert!(file.bytes().len() <= data.len());
    assert_eq!(file.bytes(), &data[..file.bytes().len()]);
    let _ = file.crc32c();
    for section in [Section::Header, Section::Table, Section::Data] {
        let _ = file.section_crc32c(section);
    }
    let mut count = 0u32;
    for view in file.tensors() {
        count += 1;
        assert_eq!(file.tensor(view.spec.id), Some(view));
        let len = view.len();
        assert!(!view.is_empty());
        for i in [0, len / 2, len - 1] {
            assert!(view.f32_at(i).is_some());
            let _ = view.f16_at(i);
        }
        assert_eq!(view.f32_at(len), None);
        assert_eq!(view.iter_f32().count(), len);
        let _ = view.as_f16_slice();
        let _ = view.as_f32_slice();
    }
    assert_eq!(count, file.tensor_count());

    let Ok(need) = required_scratch_bytes(&config, SIDE, SIDE) else {
        return;
    };
    if need > MAX_SCRATCH {
        return;
    }
    let mut scratch = vec![0u8; need];
    let input = vec![0.25f32; config.in_channels as usize * SIDE * SIDE];
    let mut output = vec![0f32; config.out_channels as usize * SIDE * SIDE];
    for pass in [Pass::Undeformed, Pass::Deformed] {
        let _ = synthesize(&file, &input, SIDE, SIDE, pass, &mut scratch, &mut output);
    }
});
