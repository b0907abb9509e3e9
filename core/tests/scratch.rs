//! The scratch contract: `required_scratch_bytes` is exact, a byte less is an error, and
//! every malformed call is a typed error.

#[path = "ops_common/mod.rs"]
mod ops_common;

use std::collections::HashMap;

use dicyc_core::{
    required_scratch_bytes, synthesize, ConfigError, Error, ModelConfig, OffsetLayers, Param, Pass,
    TensorId, Weights,
};
use ops_common::*;

struct Zeros {
    config: ModelConfig,
    bytes: HashMap<TensorId, Vec<u8>>,
}

impl Zeros {
    fn new(config: ModelConfig) -> Zeros {
        let mut rng = Rng(3);
        let bytes = config
            .tensors()
            .map(|s| {
                let n = s.element_count() as usize;
                let b = match s.id.param() {
                    Param::Weight => f16_bytes(&rng.vec(n, 0.3)),
                    Param::Bias => f32_bytes(&rng.vec(n, 0.3)),
                };
                (s.id, b)
            })
            .collect();
        Zeros { config, bytes }
    }
}

impl Weights for Zeros {
    fn config(&self) -> ModelConfig {
        self.config
    }
    fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]> {
        self.bytes.get(&id).map(|b| b.as_slice())
    }
}

fn small() -> ModelConfig {
    ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 4,
        n_blocks: 2,
        offset_layers: OffsetLayers::ALL,
    }
}

#[test]
fn exact_scratch_succeeds_and_one_byte_less_fails() {
    for (config, h, w) in [
        (small(), 16, 16),
        (small(), 8, 12),
        (
            ModelConfig {
                offset_layers: OffsetLayers::NONE,
                ..small()
            },
            12,
            8,
        ),
    ] {
        let weights = Zeros::new(config);
        let need = required_scratch_bytes(&config, h, w).unwrap();
        let x = vec![0.25f32; h * w];
        let mut out = vec![0.0f32; h * w];
        let mut buf = vec![0u8; need + 64];
        for pass in [Pass::Deformed, Pass::Undeformed] {
            // Exactly `need` bytes at every possible alignment of the start.
            let mut first: Option<Vec<f32>> = None;
            for start in 0..64 {
                synthesize(
                    &weights,
                    &x,
                    h,
                    w,
                    pass,
                    &mut buf[start..start + need],
                    &mut out,
                )
                .unwrap();
                match &first {
                    None => first = Some(out.clone()),
                    Some(f) => assert_eq!(f, &out),
                }
            }
            for start in [0, 1, 63] {
                assert_eq!(
                    synthesize(
                        &weights,
                        &x,
                        h,
                        w,
                        pass,
                        &mut buf[start..start + need - 1],
                        &mut out
                    ),
                    Err(Error::ScratchTooSmall {
                        needed: need,
                        got: need - 1
                    })
                );
            }
        }
    }
}

#[test]
fn paper_size_fits_in_16_mib() {
    const MIB: f64 = 1024.0 * 1024.0;
    let paper = ModelConfig::paper();
    let need = required_scratch_bytes(&paper, 256, 256).unwrap();
    // Layer-by-layer minimum: the largest input + output pair of any layer, fp16 —
    // stem output (64·256²) + down.0 output (128·128²), and up.1 the same in reverse.
    let minimum = dicyc_core::layer_by_layer_minimum_bytes(&paper, 256, 256).unwrap();
    assert_eq!(minimum, (64 * 256 * 256 + 128 * 128 * 128) * 2);
    eprintln!(
        "paper 256x256: required_scratch_bytes = {need} ({:.2} MiB); layer-by-layer minimum {minimum} ({:.2} MiB); ratio {:.3}",
        need as f64 / MIB,
        minimum as f64 / MIB,
        need as f64 / minimum as f64
    );
    let cyclegan = ModelConfig {
        offset_layers: OffsetLayers::NONE,
        ..paper
    };
    let base = required_scratch_bytes(&cyclegan, 256, 256).unwrap();
    eprintln!("cyclegan 256x256: {base} ({:.2} MiB)", base as f64 / MIB);
    for (h, w) in [(128, 128), (512, 512)] {
        let n = required_scratch_bytes(&paper, h, w).unwrap();
        eprintln!("paper {h}x{w}: {n} ({:.2} MiB)", n as f64 / MIB);
    }
    assert!(need <= 16 * 1024 * 1024, "{need}");
    assert!(need >= minimum);
}

#[test]
fn bad_calls_are_typed_errors() {
    let config = small();
    let weights = Zeros::new(config);
    let (h, w) = (16, 16);
    let need = required_scratch_bytes(&config, h, w).unwrap();
    let mut scratch = vec![0u8; need];
    let mut out = vec![0.0f32; h * w];
    let x = vec![0.0f32; h * w];
    for (hh, ww) in [
        (0, 16),
        (16, 0),
        (4, 16),
        (16, 4),
        (10, 16),
        (16, 18),
        (1 << 20, 16),
    ] {
        assert_eq!(
            required_scratch_bytes(&config, hh, ww),
            Err(Error::BadDimensions {
                height: hh,
                width: ww
            })
        );
        assert_eq!(
            synthesize(&weights, &x, hh, ww, Pass::Deformed, &mut scratch, &mut out),
            Err(Error::BadDimensions {
                height: hh,
                width: ww
            })
        );
    }
    assert_eq!(
        synthesize(
            &weights,
            &x[1..],
            h,
            w,
            Pass::Deformed,
            &mut scratch,
            &mut out
        ),
        Err(Error::InputSize {
            expected: 256,
            got: 255
        })
    );
    assert_eq!(
        synthesize(
            &weights,
            &x,
            h,
            w,
            Pass::Deformed,
            &mut scratch,
            &mut out[1..]
        ),
        Err(Error::OutputSize {
            expected: 256,
            got: 255
        })
    );
    let mut nan = x.clone();
    nan[17] = f32::NAN;
    assert_eq!(
        synthesize(
            &weights,
            &nan,
            h,
            w,
            Pass::Undeformed,
            &mut scratch,
            &mut out
        ),
        Err(Error::NonFiniteInput { index: 17 })
    );
    nan[17] = f32::INFINITY;
    assert_eq!(
        synthesize(
            &weights,
            &nan,
            h,
            w,
            Pass::Undeformed,
            &mut scratch,
            &mut out
        ),
        Err(Error::NonFiniteInput { index: 17 })
    );

    let mut missing = Zeros::new(config);
    let id = TensorId::Block {
        block: 1,
        conv: 0,
        param: Param::Bias,
    };
    missing.bytes.remove(&id);
    assert_eq!(
        synthesize(&missing, &x, h, w, Pass::Deformed, &mut scratch, &mut out),
        Err(Error::MissingTensor(id))
    );
    let mut short = Zeros::new(config);
    short
        .bytes
        .get_mut(&TensorId::Head(Param::Weight))
        .unwrap()
        .pop();
    assert_eq!(
        synthesize(&short, &x, h, w, Pass::Undeformed, &mut scratch, &mut out),
        Err(Error::TensorSize {
            id: TensorId::Head(Param::Weight),
            expected: 4 * 49 * 2,
            got: 4 * 49 * 2 - 1
        })
    );
    let bad = ModelConfig { ngf: 0, ..config };
    assert_eq!(
        required_scratch_bytes(&bad, h, w),
        Err(Error::InvalidConfig(ConfigError::Ngf))
    );
    // Errors display without panicking.
    let text = format!("{}", Error::ScratchTooSmall { needed: 2, got: 1 });
    assert!(text.contains("2"));
}

#[test]
fn weight_bytes_need_no_alignment() {
    // The same weights at an odd address give the same output.
    let config = small();
    let weights = Zeros::new(config);
    let mut shifted = Zeros::new(config);
    let mut storage = Vec::new();
    for (id, b) in &weights.bytes {
        let mut v = vec![0u8; b.len() + 1];
        v[1..].copy_from_slice(b);
        storage.push((*id, v));
    }
    struct Odd<'a>(ModelConfig, &'a [(TensorId, Vec<u8>)]);
    impl Weights for Odd<'_> {
        fn config(&self) -> ModelConfig {
            self.0
        }
        fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]> {
            self.1.iter().find(|(i, _)| *i == id).map(|(_, v)| &v[1..])
        }
    }
    shifted.bytes.clear();
    let odd = Odd(config, &storage);
    let (h, w) = (8, 8);
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut scratch = vec![0u8; required_scratch_bytes(&config, h, w).unwrap()];
    let mut a = vec![0.0f32; 64];
    let mut b = vec![0.0f32; 64];
    synthesize(&weights, &x, h, w, Pass::Deformed, &mut scratch, &mut a).unwrap();
    synthesize(&odd, &x, h, w, Pass::Deformed, &mut scratch, &mut b).unwrap();
    assert_eq!(a, b);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any sizes, any scratch length: a result, never a panic; Ok exactly when every
        /// size is valid and the scratch is at least `required_scratch_bytes`.
        #[test]
        fn synthesize_never_panics(
            h in 0usize..30,
            w in 0usize..30,
            slack in -3i64..3,
            in_delta in 0usize..2,
            deformed in any::<bool>(),
            ngf in 1u16..4,
            blocks in 0u16..2,
            bits in 0u8..16,
        ) {
            let mut layers = OffsetLayers::from_bits(bits).unwrap();
            if blocks == 0 {
                layers = OffsetLayers::from_bits(bits & 0b0111).unwrap();
            }
            let config = ModelConfig { in_channels: 1, out_channels: 2, ngf, n_blocks: blocks, offset_layers: layers };
            let weights = Zeros::new(config);
            let need = required_scratch_bytes(&config, h, w);
            let valid = h % 4 == 0 && w % 4 == 0 && h >= 8 && w >= 8;
            prop_assert_eq!(need.is_ok(), valid);
            let len = (need.unwrap_or(4096) as i64 + slack).max(0) as usize;
            let mut scratch = vec![0u8; len];
            let x = vec![0.5f32; h * w + in_delta];
            let mut out = vec![0.0f32; 2 * h * w];
            let pass = if deformed { Pass::Deformed } else { Pass::Undeformed };
            let r = synthesize(&weights, &x, h, w, pass, &mut scratch, &mut out);
            let should_work = valid && in_delta == 0 && slack >= 0;
            prop_assert_eq!(r.is_ok(), should_work, "{:?}", r);
            if should_work {
                prop_assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
            }
        }
    }
}
