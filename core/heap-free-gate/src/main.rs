//! Links the core with no allocator and runs it once: write a weight file into a stack
//! buffer, parse it back zero-copy, run both passes of the generator in a stack scratch.
//! Exit status 0 means every step succeeded; each failure has its own status.
#![no_std]
#![no_main]

use dicyc_core::format::{write_weight_file, Normalization, WeightFile};
use dicyc_core::{required_scratch_bytes, synthesize, ModelConfig, OffsetLayers, Pass};

const SIDE: usize = 8;
const FILE_CAPACITY: usize = 64 * 1024;
const SCRATCH_CAPACITY: usize = 64 * 1024;

// The C library provides `_start`, `memcpy` & co. and `abort`; nothing of it allocates
// unless called (and we never call malloc).
#[link(name = "c")]
extern "C" {
    fn abort() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: libc's abort takes no arguments and never returns.
    unsafe { abort() }
}

/// The host's precompiled `core` was built with unwinding and references this symbol even
/// though this binary aborts on panic; it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn run() -> Result<(), i32> {
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetLayers::ALL,
    };
    let mut file = [0u8; FILE_CAPACITY];
    let mut counter = 0u32;
    let len = write_weight_file(&mut file, &config, &Normalization::IDENTITY, |_spec, sink| {
        while sink.remaining() > 0 {
            // Small deterministic values in (-0.05, 0.05): a tiny but real generator.
            counter = counter.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let value = ((counter >> 16) % 1000) as f32 / 10_000.0 - 0.05;
            sink.push(value)?;
        }
        Ok(())
    })
    .map_err(|_| 2)?;
    let weights = WeightFile::new_checked(core::hint::black_box(&file[..len])).map_err(|_| 3)?;

    let needed = required_scratch_bytes(&weights.config(), SIDE, SIDE).map_err(|_| 4)?;
    if needed > SCRATCH_CAPACITY {
        return Err(5);
    }
    let mut scratch = [0u8; SCRATCH_CAPACITY];
    let mut input = [0f32; SIDE * SIDE];
    for (i, x) in input.iter_mut().enumerate() {
        *x = (i as f32 * 0.37).sin_approx();
    }
    let mut output = [0f32; SIDE * SIDE];
    for pass in [Pass::Deformed, Pass::Undeformed] {
        synthesize(
            &weights,
            core::hint::black_box(&input),
            SIDE,
            SIDE,
            pass,
            &mut scratch[..needed],
            &mut output,
        )
        .map_err(|_| 6)?;
        if !output.iter().all(|y| y.is_finite() && y.abs() <= 1.0) {
            return Err(7);
        }
    }
    Ok(())
}

/// A cheap bounded wave so the input is not constant (no libm in a no_std binary).
trait SinApprox {
    fn sin_approx(self) -> f32;
}

impl SinApprox for f32 {
    fn sin_approx(self) -> f32 {
        let t = self % 6.283_185 - 3.141_593;
        t * (1.0 - t * t / 6.0) / 4.0
    }
}
