//! The generator (offset layers, two passes, names) and the PatchGAN discriminator.

use dicyc_trainer::model::offset::{base_coordinate, resample, zero_offset_is_exact};
use dicyc_trainer::model::{
    Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, InitConfig, OffsetForm,
    OffsetLayer, OffsetSite, Pass,
};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn tiny_config() -> GeneratorConfig {
    GeneratorConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 4,
        n_blocks: 2,
        offset_layers: OffsetSite::ALL.to_vec(),
        offset_form: OffsetForm::PerChannel,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn zero_offsets_reproduce_the_input_exactly() {
    tch::manual_seed(0);
    // Power-of-two sides (every feature map of a power-of-two image) and the small exact ones.
    for (h, w) in [(16, 32), (12, 10), (8, 128), (64, 6)] {
        let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let offsets = Tensor::zeros([2, 6, h, w], (Kind::Float, Device::Cpu));
        let y = resample(&x, &offsets);
        assert!(
            y.equal(&x),
            "{h}×{w}: zero offsets changed the input by {}",
            max_abs_diff(&x, &y)
        );
    }
}

/// The sides whose every pixel has an f32 grid coordinate that libtorch maps back exactly
/// (module documentation of `model/offset.rs`).
fn documented_exact_side(n: i64) -> bool {
    (n as u64).is_power_of_two() || [3, 5, 6, 10, 12].contains(&n)
}

#[test]
fn zero_offsets_are_exact_for_exactly_the_documented_sides_and_nearly_so_elsewhere() {
    tch::manual_seed(10);
    for n in 1..=1024 {
        assert_eq!(
            zero_offset_is_exact(n),
            documented_exact_side(n),
            "side {n}"
        );
        // Along the columns (2 × n) and along the rows (n × 2); values in [0, 1).
        for (h, w) in [(2, n), (n, 2)] {
            let x = Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu));
            let y = resample(&x, &Tensor::zeros([1, 2, h, w], (Kind::Float, Device::Cpu)));
            let xs = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
            let ys = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
            for (i, (a, b)) in xs.iter().zip(&ys).enumerate() {
                let i = i as i64;
                let pixel = if h == 2 { i % w } else { i / w };
                if base_coordinate(pixel, n).1 {
                    // The kernel agrees with our model of its formulas: bit for bit.
                    assert_eq!(a.to_bits(), b.to_bits(), "{h}×{w}, element {i}");
                } else {
                    // At most 2^-15 px off: the value moves by at most 2^-15 of a neighbour
                    // difference (< 1 here), plus rounding.
                    assert!((a - b).abs() <= 3.1e-5, "{h}×{w}, element {i}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn a_constant_offset_shifts_the_image_and_clamps_at_the_border() {
    tch::manual_seed(1);
    let (h, w) = (8, 10);
    let x = Tensor::randn([1, 2, h, w], (Kind::Float, Device::Cpu));
    // Channel 0: dx = +1 (sample one column to the right); channel 1: dy = -2 (two rows up).
    let offsets = Tensor::zeros([1, 4, h, w], (Kind::Float, Device::Cpu));
    let _ = offsets.get(0).get(1).fill_(1.0);
    let _ = offsets.get(0).get(2).fill_(-2.0);
    let y = resample(&x, &offsets);
    // Channel 0: y[.., x] = x[.., min(x + 1, w - 1)].
    let c0 = x.get(0).get(0);
    let shifted = Tensor::cat(&[c0.narrow(1, 1, w - 1), c0.narrow(1, w - 1, 1)], 1);
    assert!(max_abs_diff(&y.get(0).get(0), &shifted) < 1e-5);
    // Channel 1: y[r, ..] = x[max(r - 2, 0), ..].
    let c1 = x.get(0).get(1);
    let shifted = Tensor::cat(
        &[
            c1.narrow(0, 0, 1),
            c1.narrow(0, 0, 1),
            c1.narrow(0, 0, h - 2),
        ],
        0,
    );
    assert!(max_abs_diff(&y.get(0).get(1), &shifted) < 1e-5);
    // A half-pixel offset interpolates linearly (clamp, then bilinear).
    let half = Tensor::zeros([1, 4, h, w], (Kind::Float, Device::Cpu));
    let _ = half.get(0).get(1).fill_(0.5);
    let y = resample(&x, &half).get(0).get(0);
    let expected = (&c0 + &shifted_cols(&c0)) * 0.5;
    assert!(max_abs_diff(&y, &expected) < 1e-5);
}

fn shifted_cols(c: &Tensor) -> Tensor {
    let w = c.size()[1];
    Tensor::cat(&[c.narrow(1, 1, w - 1), c.narrow(1, w - 1, 1)], 1)
}

#[test]
fn an_offset_layer_with_zero_weights_is_the_identity() {
    let vs = VarStore::new(Device::Cpu);
    let layer = OffsetLayer::new(&vs.root(), 3, OffsetForm::PerChannel, 0.01);
    tch::no_grad(|| {
        let _ = layer.conv.weight.shallow_clone().zero_();
    });
    let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert!(
        layer.forward(&x).equal(&x),
        "a zero offset layer changed its input"
    );
}

#[test]
fn undeformed_pass_equals_deformed_pass_with_offset_convs_zeroed() {
    tch::manual_seed(2);
    let vs = VarStore::new(Device::Cpu);
    let g = Generator::new(&vs.root(), &tiny_config(), &InitConfig::default()).unwrap();
    let x = Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let undeformed = g.forward(&x, Pass::Undeformed);
    let deformed = g.forward(&x, Pass::Deformed);
    assert!(
        max_abs_diff(&undeformed, &deformed) > 1e-6,
        "offset layers had no effect"
    );
    tch::no_grad(|| {
        for site in OffsetSite::ALL {
            let layer = g.offset_layer(site).unwrap();
            let _ = layer.conv.weight.shallow_clone().zero_();
            let _ = layer.conv.bias.shallow_clone().zero_();
        }
    });
    // 16×16: the offset layers see 16×16, 16×16, 8×8 and 4×4 maps, all exact sides.
    let deformed = g.forward(&x, Pass::Deformed);
    assert!(
        undeformed.equal(&deformed),
        "undeformed vs zero-offset deformed differ by {}",
        max_abs_diff(&undeformed, &deformed)
    );
    assert_eq!(undeformed.size(), vec![2, 1, 16, 16]);
}

#[test]
fn parameter_names_and_shapes_are_the_cores() {
    let vs = VarStore::new(Device::Cpu);
    let config = GeneratorConfig {
        in_channels: 2,
        out_channels: 3,
        ..tiny_config()
    };
    let g = Generator::new(&vs.root(), &config, &InitConfig::default()).unwrap();
    let names = g.tensor_names();
    let expected: Vec<(&str, Vec<i64>)> = vec![
        ("offset.input.weight", vec![4, 2, 3, 3]),
        ("offset.input.bias", vec![4]),
        ("stem.weight", vec![4, 2, 7, 7]),
        ("stem.bias", vec![4]),
        ("offset.down1.weight", vec![8, 4, 3, 3]),
        ("offset.down1.bias", vec![8]),
        ("down.0.weight", vec![8, 4, 3, 3]),
        ("down.0.bias", vec![8]),
        ("offset.down2.weight", vec![16, 8, 3, 3]),
        ("offset.down2.bias", vec![16]),
        ("down.1.weight", vec![16, 8, 3, 3]),
        ("down.1.bias", vec![16]),
        ("offset.block0.weight", vec![32, 16, 3, 3]),
        ("offset.block0.bias", vec![32]),
        ("blocks.0.conv0.weight", vec![16, 16, 3, 3]),
        ("blocks.0.conv0.bias", vec![16]),
        ("blocks.0.conv1.weight", vec![16, 16, 3, 3]),
        ("blocks.0.conv1.bias", vec![16]),
        ("blocks.1.conv0.weight", vec![16, 16, 3, 3]),
        ("blocks.1.conv0.bias", vec![16]),
        ("blocks.1.conv1.weight", vec![16, 16, 3, 3]),
        ("blocks.1.conv1.bias", vec![16]),
        ("up.0.weight", vec![16, 8, 3, 3]),
        ("up.0.bias", vec![8]),
        ("up.1.weight", vec![8, 4, 3, 3]),
        ("up.1.bias", vec![4]),
        ("head.weight", vec![3, 4, 7, 7]),
        ("head.bias", vec![3]),
    ];
    let got: Vec<(&str, Vec<i64>)> = names.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    assert_eq!(got, expected);
    // The VarStore holds exactly these, under exactly these names.
    let vars = vs.variables();
    assert_eq!(vars.len(), expected.len());
    for (name, shape) in &expected {
        assert_eq!(&vars[*name].size(), shape, "{name}");
    }
}

#[test]
fn paper_size_generator_has_the_cyclegan_parameter_count_plus_offsets() {
    let vs = VarStore::new(Device::Cpu);
    let config = GeneratorConfig {
        offset_layers: vec![],
        ..GeneratorConfig::default()
    };
    let _ = Generator::new(&vs.root(), &config, &InitConfig::default()).unwrap();
    let count: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();
    assert_eq!(count, 11_365_633);
}

#[test]
fn patchgan_has_cyclegan_size_and_output_shape() {
    let vs = VarStore::new(Device::Cpu);
    let d = Discriminator::new(
        &vs.root(),
        1,
        &DiscriminatorConfig::default(),
        &InitConfig::default(),
    );
    let count: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(count, 2_762_689);
    let small = DiscriminatorConfig {
        ndf: 4,
        n_layers: 3,
    };
    let vs = VarStore::new(Device::Cpu);
    let d_small = Discriminator::new(&vs.root(), 1, &small, &InitConfig::default());
    let out = d_small.forward(&Tensor::zeros([2, 1, 32, 32], (Kind::Float, Device::Cpu)));
    assert_eq!(out.size(), vec![2, 1, 2, 2]);
    assert_eq!(small.output_side(32).unwrap(), 2);
    let err = small.output_side(16).unwrap_err().to_string();
    assert!(err.contains("too small"), "{err}");
    drop(d);
}

#[test]
fn bad_generator_configurations_are_named() {
    let bad = GeneratorConfig {
        ngf: 0,
        ..tiny_config()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("ngf"));
    let bad = GeneratorConfig {
        n_blocks: 0,
        ..tiny_config()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("block0"));
    let bad = GeneratorConfig {
        in_channels: 0,
        ..tiny_config()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("in_channels"));
}

#[test]
fn tensor_names_shapes_and_order_are_exactly_the_cores() {
    use dicyc_core::config::{ModelConfig, OffsetLayers};
    let subsets: [&[OffsetSite]; 4] = [
        &OffsetSite::ALL,
        &[],
        &[OffsetSite::Input, OffsetSite::FirstBlock],
        &[OffsetSite::Down1, OffsetSite::Down2],
    ];
    for (sites, form) in subsets
        .into_iter()
        .flat_map(|sites| OffsetForm::ALL.map(|form| (sites, form)))
    {
        let config = GeneratorConfig {
            in_channels: 2,
            out_channels: 1,
            ngf: 3,
            n_blocks: 2,
            offset_layers: sites.to_vec(),
            offset_form: form,
        };
        let vs = VarStore::new(Device::Cpu);
        let g = Generator::new(&vs.root(), &config, &InitConfig::default()).unwrap();
        // Written out here, not taken from `core_shape`, so that this checks it too.
        let layers = OffsetLayers::from_bits(config.offset_bits()).unwrap();
        let core = ModelConfig {
            in_channels: 2,
            out_channels: 1,
            ngf: 3,
            n_blocks: 2,
            offset_layers: if sites.is_empty() {
                layers
            } else {
                layers.with_form(form)
            },
        };
        assert_eq!(config.core_shape().unwrap(), core);
        let expected: Vec<(String, Vec<i64>)> = core
            .tensors()
            .map(|spec| {
                (
                    spec.id.to_string(),
                    spec.dims().iter().map(|&d| d as i64).collect(),
                )
            })
            .collect();
        assert_eq!(
            g.tensor_names(),
            expected,
            "offset layers {sites:?} {form:?}"
        );
        assert_eq!(vs.variables().len(), expected.len());
    }
}

#[test]
fn a_shared_offset_layer_moves_every_channel_by_one_field() {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let layer = OffsetLayer::new(&vs.root(), 3, OffsetForm::Shared, 0.5);
    assert_eq!(
        layer.conv.weight.size(),
        vec![2, 3, 3, 3],
        "C → 2: one (dy, dx)"
    );
    let x = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let offsets = layer.offsets(&x);
    assert_eq!(offsets.size(), vec![1, 2, 8, 8]);
    // The same as the per-channel resampling with the one field repeated for each channel.
    let repeated = offsets.repeat([1, 3, 1, 1]);
    let expected = resample(&x, &repeated);
    assert!(layer.forward(&x).equal(&expected));
    // Zero weights and bias: the identity, as for the per-channel form.
    tch::no_grad(|| {
        let _ = layer.conv.weight.shallow_clone().zero_();
        let _ = layer.conv.bias.shallow_clone().zero_();
    });
    assert!(layer.forward(&x).equal(&x));
}

#[test]
fn the_deformed_pass_reports_the_offsets_it_applied() {
    tch::manual_seed(4);
    let vs = VarStore::new(Device::Cpu);
    let config = GeneratorConfig {
        offset_form: OffsetForm::Shared,
        ..tiny_config()
    };
    let g = Generator::new(&vs.root(), &config, &InitConfig::default()).unwrap();
    let x = Tensor::rand([1, 1, 16, 16], (Kind::Float, Device::Cpu));
    let (y, offsets) = g.forward_deformed_with_offsets(&x);
    assert!(y.equal(&g.forward(&x, Pass::Deformed)));
    let shapes: Vec<Vec<i64>> = offsets.iter().map(|o| o.size()).collect();
    assert_eq!(
        shapes,
        vec![
            vec![1, 2, 16, 16],
            vec![1, 2, 16, 16],
            vec![1, 2, 8, 8],
            vec![1, 2, 4, 4]
        ],
        "input, down1, down2, block0 sites, one field each"
    );
}
