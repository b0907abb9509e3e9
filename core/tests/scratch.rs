//! The scratch contract: `required_scratch_bytes` is exact, a byte less is an error, and
//! every malformed call is a typed error.

#[path = "ops_common/mod.rs"]
mod ops_common;

use std::collections::HashMap;

use dicyc_core::{
    required_scratch_bytes, synthesize, ConfigError, Error, ModelConfig, OffsetForm, OffsetLayers,
    OffsetSite, Param, Pass, TensorId, Weights, MAX_ABS_INPUT,
};
use half::f16;
use ops_common::*;

/// Every tensor of `config` with uniform random values in ±0.3 (fixed seed).
struct RandomWeights {
    config: ModelConfig,
    bytes: HashMap<TensorId, Vec<u8>>,
}

impl RandomWeights {
    fn new(config: ModelConfig) -> RandomWeights {
        RandomWeights::scaled(config, 0.3)
    }

    /// Uniform in ±`scale` (fp16 weights saturate at ±65504).
    fn scaled(config: ModelConfig, scale: f64) -> RandomWeights {
        let mut rng = Rng(3);
        let bytes = config
            .tensors()
            .map(|s| {
                let n = s.element_count() as usize;
                let b = match s.id.param() {
                    Param::Weight => f16_bytes(&rng.vec(n, scale)),
                    Param::Bias => f32_bytes(&rng.vec(n, scale)),
                };
                (s.id, b)
            })
            .collect();
        RandomWeights { config, bytes }
    }

    /// Sets element `i` of tensor `id` to `v` (in the tensor's own dtype).
    fn set(&mut self, id: TensorId, i: usize, v: f32) {
        let b = self.bytes.get_mut(&id).unwrap();
        match id.param() {
            Param::Weight => b[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes()),
            Param::Bias => b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
        }
    }
}

impl Weights for RandomWeights {
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
        (
            ModelConfig {
                offset_layers: OffsetLayers::ALL.with_form(OffsetForm::Shared),
                ..small()
            },
            16,
            12,
        ),
    ] {
        let weights = RandomWeights::new(config);
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
            // One byte short at every alignment of the start (rejected before any work).
            for start in 0..64 {
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
    let weights = RandomWeights::new(config);
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
    // Finite but outside the normalised range: huge values (which would overflow the f32
    // sums into inf and NaN) and values just past ±1 alike.
    for bad in [1e35f32, -1e35, f32::MAX, 1.000_001, -1.000_001, 2.0] {
        let mut big = x.clone();
        big[40] = bad;
        assert_eq!(
            synthesize(&weights, &big, h, w, Pass::Deformed, &mut scratch, &mut out),
            Err(Error::InputOutOfRange { index: 40 }),
            "{bad}"
        );
    }
    // The range's ends themselves are valid input.
    let ends: Vec<f32> = (0..h * w)
        .map(|i| {
            if i % 2 == 0 {
                MAX_ABS_INPUT
            } else {
                -MAX_ABS_INPUT
            }
        })
        .collect();
    synthesize(
        &weights,
        &ends,
        h,
        w,
        Pass::Deformed,
        &mut scratch,
        &mut out,
    )
    .unwrap();
    assert!(out.iter().all(|v| v.is_finite()));

    let mut missing = RandomWeights::new(config);
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
    let mut short = RandomWeights::new(config);
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
    for (e, needle) in [
        (Error::InputOutOfRange { index: 7 }, "7"),
        (Error::NonFiniteActivation, "NaN"),
        (Error::NonFiniteOutput { index: 9 }, "9"),
    ] {
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn non_finite_activations_are_errors_not_ok() {
    // Weights that did not come through the validating reader can hold NaN or infinity;
    // `Ok` must still mean a finite output.
    let config = small();
    let (h, w) = (16, 16);
    let mut scratch = vec![0u8; required_scratch_bytes(&config, h, w).unwrap()];
    let mut out = vec![0.0f32; h * w];
    let x: Vec<f32> = (0..h * w).map(|i| (i as f32 * 0.37).sin()).collect();
    let run = |weights: &RandomWeights, pass, scratch: &mut [u8], out: &mut [f32]| {
        synthesize(weights, &x, h, w, pass, scratch, out)
    };
    // A NaN weight or bias in a conv that instance norm follows: caught at the norm (the
    // fused ReLU would otherwise turn the NaN channel into zeros, a finite wrong answer).
    // (An infinite one saturates at ±65504 when stored as fp16, like any overflow, and
    // stays finite: the property test below covers those.)
    for id in [
        TensorId::Stem(Param::Weight),
        TensorId::Down(1, Param::Bias),
        TensorId::Block {
            block: 1,
            conv: 1,
            param: Param::Weight,
        },
        TensorId::Up(0, Param::Weight),
    ] {
        let mut weights = RandomWeights::new(config);
        weights.set(id, 0, f32::NAN);
        for pass in [Pass::Deformed, Pass::Undeformed] {
            assert_eq!(
                run(&weights, pass, &mut scratch, &mut out),
                Err(Error::NonFiniteActivation),
                "{id} = NaN, {pass:?}"
            );
        }
    }
    // A NaN or infinite offset-conv weight or bias: the offsets are f32 (no saturation),
    // and clamping would turn a NaN offset into a finite sample of pixel (0, 0), so the
    // offset strip is checked. Every site: the input one runs as a direct convolution
    // (2 output channels), the others through the packed GEMM. The undeformed pass does
    // not run the offset layers, so the same weights give a finite output there.
    for site in OffsetSite::ALL {
        for (param, v) in [
            (Param::Weight, f32::NAN),
            (Param::Bias, f32::NAN),
            (Param::Bias, f32::INFINITY),
        ] {
            let id = TensorId::Offset(site, param);
            let mut weights = RandomWeights::new(config);
            weights.set(id, 0, v);
            assert_eq!(
                run(&weights, Pass::Deformed, &mut scratch, &mut out),
                Err(Error::NonFiniteActivation),
                "{id} = {v}"
            );
            run(&weights, Pass::Undeformed, &mut scratch, &mut out).unwrap();
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
    // A NaN in the head (no norm after it): the final output check.
    let mut weights = RandomWeights::new(config);
    weights.set(TensorId::Head(Param::Bias), 0, f32::NAN);
    assert_eq!(
        run(&weights, Pass::Undeformed, &mut scratch, &mut out),
        Err(Error::NonFiniteOutput { index: 0 })
    );
    // The largest finite fp16 weights with an in-range input: saturated, but finite.
    let weights = RandomWeights::scaled(config, 65504.0);
    for pass in [Pass::Deformed, Pass::Undeformed] {
        match run(&weights, pass, &mut scratch, &mut out) {
            Ok(()) => assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0)),
            Err(e) => assert!(
                matches!(
                    e,
                    Error::NonFiniteActivation | Error::NonFiniteOutput { .. }
                ),
                "{e:?}"
            ),
        }
    }
}

#[test]
fn weight_bytes_need_no_alignment() {
    // The same weights at an odd address give the same output.
    let config = small();
    let weights = RandomWeights::new(config);
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
            shared in any::<bool>(),
        ) {
            let mut layers = OffsetLayers::from_bits(bits).unwrap();
            if blocks == 0 {
                layers = OffsetLayers::from_bits(bits & 0b0111).unwrap();
            }
            if shared && layers.count() > 0 {
                layers = layers.with_form(OffsetForm::Shared);
            }
            let config = ModelConfig { in_channels: 1, out_channels: 2, ngf, n_blocks: blocks, offset_layers: layers };
            let weights = RandomWeights::new(config);
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

        /// Any weight scale up to fp16's largest, one value of one tensor replaced by
        /// anything (NaN, infinities, huge), any in-range input: `Ok` only with a finite
        /// output in the tanh range, otherwise one of the non-finite errors.
        #[test]
        fn ok_always_means_a_finite_output(
            scale in prop::sample::select(vec![0.3f64, 30.0, 3000.0, 65504.0]),
            tensor in any::<prop::sample::Index>(),
            element in any::<prop::sample::Index>(),
            value in prop::sample::select(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 65504.0, -3e38, 0.0]),
            input_scale in 0.0f32..=1.0,
            deformed in any::<bool>(),
        ) {
            let config = small();
            let (h, w) = (8, 12);
            let mut weights = RandomWeights::scaled(config, scale);
            let spec = config.tensors().nth(tensor.index(config.tensor_count() as usize)).unwrap();
            let v = if spec.id.param() == Param::Weight && value.abs() > 65504.0 && value.is_finite() {
                65504.0 // a finite fp16 cannot be larger
            } else {
                value
            };
            weights.set(spec.id, element.index(spec.element_count() as usize), v);
            let x: Vec<f32> = (0..h * w).map(|i| input_scale * (i as f32 * 0.61).sin()).collect();
            let mut scratch = vec![0u8; required_scratch_bytes(&config, h, w).unwrap()];
            let mut out = vec![0.0f32; h * w];
            let pass = if deformed { Pass::Deformed } else { Pass::Undeformed };
            match synthesize(&weights, &x, h, w, pass, &mut scratch, &mut out) {
                Ok(()) => prop_assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0)),
                Err(e) => prop_assert!(
                    matches!(e, Error::NonFiniteActivation | Error::NonFiniteOutput { .. }),
                    "{:?}", e
                ),
            }
        }
    }
}
