//! The whole generator against a straightforward f64 reference, both passes.

#[path = "ops_common/mod.rs"]
mod ops_common;

use std::collections::HashMap;

use dicyc_core::{
    required_scratch_bytes, synthesize, ModelConfig, OffsetForm, OffsetLayers, OffsetSite, Param,
    Pass, TensorId, Weights,
};
use ops_common::*;

/// Weights held as f64 (already rounded to what the file stores) and as LE bytes.
pub struct TestWeights {
    pub config: ModelConfig,
    pub values: HashMap<TensorId, Vec<f64>>,
    pub bytes: HashMap<TensorId, Vec<u8>>,
}

impl TestWeights {
    pub fn random(config: ModelConfig, seed: u64) -> TestWeights {
        let mut rng = Rng(seed);
        let mut values = HashMap::new();
        let mut bytes = HashMap::new();
        for spec in config.tensors() {
            let n = spec.element_count() as usize;
            let (v, b) = match spec.id.param() {
                Param::Weight => {
                    let fan_in = (spec.dims()[1] * spec.dims()[2] * spec.dims()[3]) as f64;
                    let scale = match spec.id {
                        // Offsets of a few pixels.
                        TensorId::Offset(..) => 0.6 / fan_in.sqrt(),
                        _ => 1.7 / fan_in.sqrt(),
                    };
                    let v = round16(&rng.vec(n, scale));
                    let b = f16_bytes(&v);
                    (v, b)
                }
                Param::Bias => {
                    let scale = if matches!(spec.id, TensorId::Offset(..)) {
                        1.5
                    } else {
                        0.3
                    };
                    let v = round32(&rng.vec(n, scale));
                    let b = f32_bytes(&v);
                    (v, b)
                }
            };
            values.insert(spec.id, v);
            bytes.insert(spec.id, b);
        }
        TestWeights {
            config,
            values,
            bytes,
        }
    }

    /// The same weights with every offset layer's weight and bias zeroed.
    pub fn zero_offsets(&self) -> TestWeights {
        let mut values = self.values.clone();
        let mut bytes = self.bytes.clone();
        for (id, v) in values.iter_mut() {
            if let TensorId::Offset(..) = id {
                v.iter_mut().for_each(|x| *x = 0.0);
                bytes.insert(*id, vec![0u8; bytes[id].len()]);
            }
        }
        TestWeights {
            config: self.config,
            values,
            bytes,
        }
    }

    fn v(&self, id: TensorId) -> &[f64] {
        &self.values[&id]
    }
}

impl Weights for TestWeights {
    fn config(&self) -> ModelConfig {
        self.config
    }
    fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]> {
        self.bytes.get(&id).map(|b| b.as_slice())
    }
}

/// The generator of docs/DESIGN.md §2.1 in f64, op by op.
pub fn generator_ref(tw: &TestWeights, x: &[f64], h: usize, w: usize, pass: Pass) -> Vec<f64> {
    use Param::{Bias, Weight};
    let c = tw.config;
    let (cin, cout, ngf) = (
        c.in_channels as usize,
        c.out_channels as usize,
        c.ngf as usize,
    );
    let deformed = pass == Pass::Deformed;
    let offset = |site: OffsetSite, x: Vec<f64>, ch: usize, hh: usize, ww: usize| -> Vec<f64> {
        if deformed && c.offset_layers.contains(site) {
            offset_ref(
                &x,
                ch,
                hh,
                ww,
                tw.v(TensorId::Offset(site, Weight)),
                tw.v(TensorId::Offset(site, Bias)),
            )
        } else {
            x
        }
    };
    let a = offset(OffsetSite::Input, x.to_vec(), cin, h, w);
    let (mut a, _, _) = conv_ref(
        &a,
        cin,
        h,
        w,
        tw.v(TensorId::Stem(Weight)),
        tw.v(TensorId::Stem(Bias)),
        ngf,
        7,
        1,
        3,
        true,
    );
    inorm_ref(&mut a, ngf, h * w, true);
    let a = offset(OffsetSite::Down1, a, ngf, h, w);
    let (mut a, h2, w2) = conv_ref(
        &a,
        ngf,
        h,
        w,
        tw.v(TensorId::Down(0, Weight)),
        tw.v(TensorId::Down(0, Bias)),
        2 * ngf,
        3,
        2,
        1,
        false,
    );
    inorm_ref(&mut a, 2 * ngf, h2 * w2, true);
    let a = offset(OffsetSite::Down2, a, 2 * ngf, h2, w2);
    let (mut a, h4, w4) = conv_ref(
        &a,
        2 * ngf,
        h2,
        w2,
        tw.v(TensorId::Down(1, Weight)),
        tw.v(TensorId::Down(1, Bias)),
        4 * ngf,
        3,
        2,
        1,
        false,
    );
    inorm_ref(&mut a, 4 * ngf, h4 * w4, true);
    let mut x = offset(OffsetSite::FirstBlock, a, 4 * ngf, h4, w4);
    let c4 = 4 * ngf;
    for block in 0..c.n_blocks {
        let id = |conv, param| TensorId::Block { block, conv, param };
        let (mut t, _, _) = conv_ref(
            &x,
            c4,
            h4,
            w4,
            tw.v(id(0, Weight)),
            tw.v(id(0, Bias)),
            c4,
            3,
            1,
            1,
            true,
        );
        inorm_ref(&mut t, c4, h4 * w4, true);
        let (mut u, _, _) = conv_ref(
            &t,
            c4,
            h4,
            w4,
            tw.v(id(1, Weight)),
            tw.v(id(1, Bias)),
            c4,
            3,
            1,
            1,
            true,
        );
        inorm_ref(&mut u, c4, h4 * w4, false);
        x.iter_mut().zip(&u).for_each(|(a, b)| *a += b);
    }
    let (mut a, _, _) = conv_t_ref(
        &x,
        c4,
        h4,
        w4,
        tw.v(TensorId::Up(0, Weight)),
        tw.v(TensorId::Up(0, Bias)),
        2 * ngf,
    );
    inorm_ref(&mut a, 2 * ngf, h2 * w2, true);
    let (mut a, _, _) = conv_t_ref(
        &a,
        2 * ngf,
        h2,
        w2,
        tw.v(TensorId::Up(1, Weight)),
        tw.v(TensorId::Up(1, Bias)),
        ngf,
    );
    inorm_ref(&mut a, ngf, h * w, true);
    let (mut y, _, _) = conv_ref(
        &a,
        ngf,
        h,
        w,
        tw.v(TensorId::Head(Weight)),
        tw.v(TensorId::Head(Bias)),
        cout,
        7,
        1,
        3,
        true,
    );
    y.iter_mut().for_each(|v| *v = v.tanh());
    y
}

fn run(tw: &TestWeights, x: &[f32], h: usize, w: usize, pass: Pass) -> Vec<f32> {
    let mut scratch = vec![0u8; required_scratch_bytes(&tw.config, h, w).unwrap()];
    let mut out = vec![0.0f32; tw.config.out_channels as usize * h * w];
    synthesize(tw, x, h, w, pass, &mut scratch, &mut out).unwrap();
    out
}

fn check_against_reference(config: ModelConfig, h: usize, w: usize, seed: u64) {
    let tw = TestWeights::random(config, seed);
    let mut rng = Rng(seed ^ 0xabcdef);
    let x = round32(&rng.vec(config.in_channels as usize * h * w, 1.0));
    let xf = to_f32(&x);
    for pass in [Pass::Deformed, Pass::Undeformed] {
        let r = generator_ref(&tw, &x, h, w, pass);
        let got = run(&tw, &xf, h, w, pass);
        let (rel, max) = (rel_l2(&r, &got), max_abs_diff(&r, &got));
        eprintln!("{h}x{w} {pass:?}: rel L2 {rel:.2e}, max abs {max:.2e}");
        assert!(
            rel <= 1e-2 && max <= 3e-2,
            "{config:?} {h}x{w} {pass:?}: rel L2 {rel:.2e}, max abs {max:.2e}"
        );
    }
}

#[test]
fn small_generator_matches_f64_reference_in_both_passes() {
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 4,
        n_blocks: 2,
        offset_layers: OffsetLayers::ALL,
    };
    check_against_reference(config, 16, 16, 1);
}

#[test]
fn other_configurations_match_reference() {
    let only_down2 = OffsetLayers::NONE
        .with(OffsetSite::Down2)
        .with(OffsetSite::Input);
    let config = ModelConfig {
        in_channels: 2,
        out_channels: 3,
        ngf: 3,
        n_blocks: 0,
        offset_layers: only_down2,
    };
    check_against_reference(config, 12, 20, 2);
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 2,
        ngf: 5,
        n_blocks: 1,
        offset_layers: OffsetLayers::NONE
            .with(OffsetSite::FirstBlock)
            .with(OffsetSite::Down1),
    };
    check_against_reference(config, 8, 24, 3);
    // Wide enough that the GEMM tiles span several rows and the strip ring wraps.
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetLayers::ALL,
    };
    check_against_reference(config, 40, 32, 4);
}

#[test]
fn shared_offset_fields_match_reference() {
    // One field per site for all channels (offset convs `C → 2`), both passes.
    let shared = OffsetLayers::ALL.with_form(OffsetForm::Shared);
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 4,
        n_blocks: 2,
        offset_layers: shared,
    };
    check_against_reference(config, 16, 16, 21);
    // Several image channels (the input site's field moves them all), multi-tile strips.
    let config = ModelConfig {
        in_channels: 3,
        out_channels: 2,
        ngf: 16,
        n_blocks: 1,
        offset_layers: shared,
    };
    check_against_reference(config, 64, 48, 22);
    // Zero offset weights: the deformed pass is the undeformed one, bit for bit.
    let tw = TestWeights::random(config, 23);
    let zero = tw.zero_offsets();
    let x = to_f32(&Rng(24).vec(3 * 16 * 16, 1.0));
    let undeformed = run(&tw, &x, 16, 16, Pass::Undeformed);
    assert_eq!(undeformed, run(&zero, &x, 16, 16, Pass::Deformed));
    assert_ne!(undeformed, run(&tw, &x, 16, 16, Pass::Deformed));
}

#[test]
fn undeformed_equals_deformed_with_zero_offset_weights() {
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 4,
        n_blocks: 2,
        offset_layers: OffsetLayers::ALL,
    };
    let tw = TestWeights::random(config, 5);
    let zero = tw.zero_offsets();
    let mut rng = Rng(6);
    let x = to_f32(&rng.vec(16 * 16, 1.0));
    let undeformed = run(&tw, &x, 16, 16, Pass::Undeformed);
    assert_eq!(undeformed, run(&zero, &x, 16, 16, Pass::Deformed));
    assert_eq!(undeformed, run(&zero, &x, 16, 16, Pass::Undeformed));
    // And the offsets do something when active.
    assert_ne!(undeformed, run(&tw, &x, 16, 16, Pass::Deformed));
}

#[test]
fn generator_without_offsets_ignores_the_pass() {
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetLayers::NONE,
    };
    let tw = TestWeights::random(config, 8);
    let x = to_f32(&Rng(9).vec(8 * 8, 1.0));
    assert_eq!(
        run(&tw, &x, 8, 8, Pass::Deformed),
        run(&tw, &x, 8, 8, Pass::Undeformed)
    );
}

#[test]
fn paper_configuration_matches_reference_at_16x16() {
    // Full width (ngf 64: 256-channel trunk, K = 2304), all offset layers, 9 blocks.
    check_against_reference(ModelConfig::paper(), 16, 16, 10);
}

#[test]
fn weight_file_gives_the_same_output_as_in_memory_weights() {
    for form in OffsetForm::ALL {
        weight_file_matches_in_memory(ModelConfig {
            in_channels: 1,
            out_channels: 1,
            ngf: 3,
            n_blocks: 1,
            offset_layers: OffsetLayers::ALL.with_form(form),
        });
    }
}

fn weight_file_matches_in_memory(config: ModelConfig) {
    use dicyc_core::format::{file_size, write_weight_file};
    use dicyc_core::{Normalization, WeightFile};
    let tw = TestWeights::random(config, 12);
    let mut file = vec![0u8; file_size(&config).unwrap()];
    let n = write_weight_file(
        &mut file,
        &config,
        &Normalization::default(),
        |spec, sink| {
            for &v in &tw.values[&spec.id] {
                sink.push(v as f32)?;
            }
            Ok(())
        },
    )
    .unwrap();
    let wf = WeightFile::new_checked(&file[..n]).unwrap();
    let x = to_f32(&Rng(13).vec(8 * 12, 1.0));
    for pass in [Pass::Deformed, Pass::Undeformed] {
        let mut scratch = vec![0u8; required_scratch_bytes(&config, 8, 12).unwrap()];
        let mut out = vec![0.0f32; 8 * 12];
        synthesize(&wf, &x, 8, 12, pass, &mut scratch, &mut out).unwrap();
        assert_eq!(out, run(&tw, &x, 8, 12, pass));
    }
}

#[test]
fn multi_tile_strips_match_reference() {
    // Big enough that the stem and down.0 run in several row tiles, so the offset layers'
    // row rings wrap and the offset strips are computed in several chunks.
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 16,
        n_blocks: 1,
        offset_layers: OffsetLayers::ALL,
    };
    check_against_reference(config, 64, 48, 14);
}
