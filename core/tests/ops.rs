//! Each operator against a straightforward f64 reference.

#[path = "ops_common/mod.rs"]
mod ops_common;

use dicyc_core::gemm::{gemm_packed, pack_a_f32, pack_b_f32, packed_a_len, packed_b_len};
use dicyc_core::ops::{
    self, conv2d, conv_transpose2d, conv_transpose2d_output_size, conv_transpose2d_scratch_bytes,
    offset_layer, offset_layer_scratch_bytes, resample, Activation, Conv2d, Padding,
};
use dicyc_core::Error;
use half::f16;
use ops_common::*;

#[test]
fn gemm_matches_naive_for_ragged_sizes() {
    let mut rng = Rng(7);
    for &(m, n, k) in &[
        (1, 1, 1),
        (5, 17, 3),
        (13, 33, 40),
        (64, 16, 9),
        (7, 100, 129),
    ] {
        let a = rng.vec(m * k, 1.0);
        let b = rng.vec(k * n, 1.0);
        let (a32, b32) = (to_f32(&a), to_f32(&b));
        let mut pa = vec![0.0; packed_a_len(m, k)];
        let mut pb = vec![0.0; packed_b_len(k, n)];
        assert!(pack_a_f32(m, k, &a32, &mut pa));
        assert!(pack_b_f32(k, n, &b32, &mut pb));
        let mut c = vec![0.0f32; m * n];
        assert!(gemm_packed(m, n, k, &pa, &pb, &mut c));
        let mut r = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                r[i * n + j] = (0..k)
                    .map(|l| a32[i * k + l] as f64 * b32[l * n + j] as f64)
                    .sum();
            }
        }
        assert!(
            max_abs_diff(&r, &c) < 1e-4 * (k as f64).sqrt(),
            "m{m} n{n} k{k}"
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_conv(
    seed: u64,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    pad: Padding,
    act: Activation,
) {
    let mut rng = Rng(seed);
    let x = round32(&rng.vec(cin * h * w, 1.0));
    let wt = round16(&rng.vec(cout * cin * k * k, 0.5));
    let bias = round32(&rng.vec(cout, 0.5));
    let shape = Conv2d {
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
        kernel: k,
        stride: s,
        padding: p,
        pad_mode: pad,
    };
    let (ho, wo) = shape.output_size().unwrap();
    let (mut r, rh, rw) = conv_ref(
        &x,
        cin,
        h,
        w,
        &wt,
        &bias,
        cout,
        k,
        s,
        p,
        pad == Padding::Reflect,
    );
    assert_eq!((ho, wo), (rh, rw));
    match act {
        Activation::Relu => r.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => r.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::None => {}
    }
    let mut scratch = vec![0u8; shape.scratch_bytes().unwrap()];
    let mut out = vec![0.0f32; cout * ho * wo];
    conv2d(
        &shape,
        &to_f32(&x),
        &f16_bytes(&wt),
        &f32_bytes(&bias),
        act,
        &mut scratch,
        &mut out,
    )
    .unwrap();
    let tol = 1e-5 * ((cin * k * k) as f64).sqrt() * 4.0;
    let err = max_abs_diff(&r, &out);
    assert!(
        err < tol,
        "conv cin{cin} cout{cout} {h}x{w} k{k} s{s} p{p} {pad:?}: err {err}"
    );
}

#[test]
fn conv_7x7_reflect_matches_reference() {
    check_conv(1, 1, 8, 12, 10, 7, 1, 3, Padding::Reflect, Activation::None);
    check_conv(2, 3, 5, 9, 16, 7, 1, 3, Padding::Reflect, Activation::Tanh);
}

#[test]
fn conv_3x3_reflect_matches_reference() {
    check_conv(3, 16, 16, 4, 5, 3, 1, 1, Padding::Reflect, Activation::None);
    check_conv(4, 7, 13, 2, 2, 3, 1, 1, Padding::Reflect, Activation::Relu);
}

#[test]
fn conv_stride2_zero_pad_matches_reference() {
    check_conv(5, 4, 8, 16, 16, 3, 2, 1, Padding::Zero, Activation::None);
    check_conv(6, 5, 3, 11, 7, 3, 2, 1, Padding::Zero, Activation::None);
}

#[test]
fn conv_random_shapes_match_reference() {
    let mut rng = Rng(99);
    for i in 0..25 {
        let k = [1, 3, 5, 7][rng.below(4)];
        let s = 1 + rng.below(2);
        let p = rng.below(k / 2 + 1);
        let reflect = rng.below(2) == 0;
        let h = (p + 1).max(k) + rng.below(12);
        let w = (p + 1).max(k) + rng.below(12);
        let pad = if reflect {
            Padding::Reflect
        } else {
            Padding::Zero
        };
        check_conv(
            100 + i,
            1 + rng.below(9),
            1 + rng.below(20),
            h,
            w,
            k,
            s,
            p,
            pad,
            Activation::None,
        );
    }
}

#[test]
fn transposed_conv_output_size_is_pytorchs() {
    for h in 1..40 {
        // PyTorch: (H_in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1
        assert_eq!(
            conv_transpose2d_output_size(h, 3, 2, 1, 1),
            (h - 1) * 2 + 2 + 1 + 1 - 2
        );
        assert_eq!(conv_transpose2d_output_size(h, 3, 2, 1, 1), 2 * h);
    }
}

#[test]
fn transposed_conv_matches_scatter_reference() {
    let mut rng = Rng(11);
    for &(cin, cout, h, w) in &[(1, 1, 1, 1), (4, 3, 5, 6), (8, 16, 8, 8), (3, 7, 2, 9)] {
        let x = round32(&rng.vec(cin * h * w, 1.0));
        let wt = round16(&rng.vec(cin * cout * 9, 0.5));
        let bias = round32(&rng.vec(cout, 0.5));
        let (r, ho, wo) = conv_t_ref(&x, cin, h, w, &wt, &bias, cout);
        assert_eq!((ho, wo), (2 * h, 2 * w));
        let mut scratch = vec![0u8; conv_transpose2d_scratch_bytes(cin, cout, h, w).unwrap()];
        let mut out = vec![f32::NAN; cout * ho * wo];
        conv_transpose2d(
            cin,
            cout,
            h,
            w,
            &to_f32(&x),
            &f16_bytes(&wt),
            &f32_bytes(&bias),
            Activation::None,
            &mut scratch,
            &mut out,
        )
        .unwrap();
        let err = max_abs_diff(&r, &out);
        assert!(err < 1e-4, "convT {cin}->{cout} {h}x{w}: {err}");
    }
}

#[test]
fn instance_norm_matches_reference() {
    let mut rng = Rng(21);
    let (c, plane) = (5, 37 * 11);
    for relu in [false, true] {
        // Offset mean: the statistics must not cancel catastrophically.
        let x: Vec<f64> = rng
            .vec(c * plane, 3.0)
            .iter()
            .map(|v| f16_round(v + 20.0))
            .collect();
        let mut r = x.clone();
        inorm_ref(&mut r, c, plane, relu);
        let mut h: Vec<f16> = x.iter().map(|&v| f16::from_f64(v)).collect();
        ops::instance_norm(&mut h, c, plane, relu).unwrap();
        let got: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
        let err = max_abs_diff(&r, &got);
        assert!(err < 4e-3, "IN relu={relu}: {err}");
    }
}

#[test]
fn residual_instance_norm_matches_reference() {
    let mut rng = Rng(22);
    let (c, plane) = (3, 64);
    let u = round16(&rng.vec(c * plane, 2.0));
    let x = round16(&rng.vec(c * plane, 2.0));
    let mut n = u.clone();
    inorm_ref(&mut n, c, plane, false);
    let r: Vec<f64> = x.iter().zip(&n).map(|(a, b)| a + b).collect();
    let uh: Vec<f16> = u.iter().map(|&v| f16::from_f64(v)).collect();
    let mut xh: Vec<f16> = x.iter().map(|&v| f16::from_f64(v)).collect();
    ops::instance_norm_residual(&uh, &mut xh, c, plane).unwrap();
    let got: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
    assert!(max_abs_diff(&r, &got) < 5e-3);
}

#[test]
fn tanh_is_accurate() {
    let mut worst = 0.0f64;
    let mut x = -12.0f32;
    while x < 12.0 {
        worst = worst.max((ops::math::tanh(x) as f64 - (x as f64).tanh()).abs());
        x += 0.000_7;
    }
    assert!(worst < 2e-7, "tanh max abs error {worst}");
    assert_eq!(ops::math::tanh(0.0), 0.0);
    assert_eq!(ops::math::tanh(f32::INFINITY), 1.0);
    assert_eq!(ops::math::tanh(f32::NEG_INFINITY), -1.0);
    assert!(ops::math::tanh(f32::NAN).is_nan());
    for v in [1e-3, 2.0, 1e6, 1e-30] {
        assert!((ops::math::sqrt_f64(v) - v.sqrt()).abs() <= 1e-15 * v.sqrt());
    }
}

#[test]
fn zero_offsets_are_exactly_the_identity() {
    let mut rng = Rng(31);
    let (c, h, w) = (3, 7, 9);
    let x = to_f32(&rng.vec(c * h * w, 5.0));
    let mut out = vec![0.0f32; c * h * w];
    resample(c, h, w, &x, &vec![0.0; 2 * c * h * w], &mut out).unwrap();
    assert_eq!(out, x);
    // The full offset layer with zero weights and bias is the identity too.
    let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, h, w).unwrap()];
    let wt = vec![0u8; 2 * 2 * c * c * 9];
    let bias = vec![0u8; 4 * 2 * c];
    offset_layer(c, h, w, &x, &wt, &bias, &mut scratch, &mut out).unwrap();
    assert_eq!(out, x);
}

#[test]
fn integer_offsets_move_pixels_exactly() {
    let mut rng = Rng(32);
    let (c, h, w) = (2, 6, 8);
    let x = to_f32(&rng.vec(c * h * w, 5.0));
    for (dy, dx) in [(1.0f32, 0.0f32), (0.0, -2.0), (-3.0, 5.0), (10.0, -10.0)] {
        let mut offs = vec![0.0f32; 2 * c * h * w];
        for ch in 0..c {
            offs[2 * ch * h * w..(2 * ch + 1) * h * w].fill(dy);
            offs[(2 * ch + 1) * h * w..(2 * ch + 2) * h * w].fill(dx);
        }
        let mut out = vec![0.0f32; c * h * w];
        resample(c, h, w, &x, &offs, &mut out).unwrap();
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let sy = (y as i64 + dy as i64).clamp(0, h as i64 - 1) as usize;
                    let sx = (xx as i64 + dx as i64).clamp(0, w as i64 - 1) as usize;
                    assert_eq!(out[(ch * h + y) * w + xx], x[(ch * h + sy) * w + sx]);
                }
            }
        }
    }
    // Bias-only offset layer: a constant integer shift for every channel.
    let mut bias = vec![0.0f64; 2 * c];
    for ch in 0..c {
        bias[2 * ch] = 1.0;
        bias[2 * ch + 1] = -1.0;
    }
    let mut out = vec![0.0f32; c * h * w];
    let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, h, w).unwrap()];
    offset_layer(
        c,
        h,
        w,
        &x,
        &vec![0u8; 2 * 2 * c * c * 9],
        &f32_bytes(&bias),
        &mut scratch,
        &mut out,
    )
    .unwrap();
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let sy = (y + 1).min(h - 1);
                let sx = xx.saturating_sub(1);
                assert_eq!(out[(ch * h + y) * w + xx], x[(ch * h + sy) * w + sx]);
            }
        }
    }
}

#[test]
fn fractional_resampling_matches_reference() {
    let mut rng = Rng(33);
    let (c, h, w) = (3, 9, 6);
    let x = round32(&rng.vec(c * h * w, 2.0));
    let offs = round32(&rng.vec(2 * c * h * w, 4.0));
    let r = resample_ref(&x, c, h, w, &offs);
    let mut out = vec![0.0f32; c * h * w];
    resample(c, h, w, &to_f32(&x), &to_f32(&offs), &mut out).unwrap();
    assert!(max_abs_diff(&r, &out) < 1e-5);
}

#[test]
fn offset_layer_matches_reference() {
    let mut rng = Rng(34);
    for &(c, h, w) in &[(1, 8, 8), (4, 10, 7), (6, 5, 12)] {
        let x = round32(&rng.vec(c * h * w, 1.0));
        let wt = round16(&rng.vec(2 * c * c * 9, 0.4));
        let bias = round32(&rng.vec(2 * c, 1.5));
        let r = offset_ref(&x, c, h, w, &wt, &bias);
        let mut out = vec![0.0f32; c * h * w];
        let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, h, w).unwrap()];
        offset_layer(
            c,
            h,
            w,
            &to_f32(&x),
            &f16_bytes(&wt),
            &f32_bytes(&bias),
            &mut scratch,
            &mut out,
        )
        .unwrap();
        let err = max_abs_diff(&r, &out);
        assert!(err < 1e-4, "offset layer c{c} {h}x{w}: {err}");
    }
}

#[test]
fn op_wrappers_reject_bad_buffers() {
    let shape = Conv2d {
        in_channels: 2,
        out_channels: 3,
        height: 5,
        width: 5,
        kernel: 3,
        stride: 1,
        padding: 1,
        pad_mode: Padding::Reflect,
    };
    let need = shape.scratch_bytes().unwrap();
    let (x, wt, b) = (vec![0.0f32; 50], vec![0u8; 2 * 54], vec![0u8; 12]);
    let mut out = vec![0.0f32; 75];
    let mut scratch = vec![0u8; need - 1];
    assert_eq!(
        conv2d(
            &shape,
            &x,
            &wt,
            &b,
            Activation::None,
            &mut scratch,
            &mut out
        ),
        Err(Error::ScratchTooSmall {
            needed: need,
            got: need - 1
        })
    );
    let mut scratch = vec![0u8; need];
    assert_eq!(
        conv2d(
            &shape,
            &x[1..],
            &wt,
            &b,
            Activation::None,
            &mut scratch,
            &mut out
        ),
        Err(Error::BadShape)
    );
    assert_eq!(
        conv2d(
            &shape,
            &x,
            &wt[1..],
            &b,
            Activation::None,
            &mut scratch,
            &mut out
        ),
        Err(Error::BadShape)
    );
    let bad = Conv2d {
        padding: 5,
        ..shape
    };
    assert_eq!(bad.scratch_bytes(), Err(Error::BadShape));
    conv2d(
        &shape,
        &x,
        &wt,
        &b,
        Activation::None,
        &mut scratch,
        &mut out,
    )
    .unwrap();
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn conv2d_matches_reference(
            seed in any::<u64>(),
            cin in 1usize..6,
            cout in 1usize..14,
            k in prop::sample::select(vec![1usize, 3, 5, 7]),
            s in 1usize..3,
            extra_h in 0usize..10,
            extra_w in 0usize..10,
            reflect in any::<bool>(),
        ) {
            let p = k / 2;
            let pad = if reflect { Padding::Reflect } else { Padding::Zero };
            check_conv(seed | 1, cin, cout, k.max(p + 1) + extra_h, k.max(p + 1) + extra_w, k, s, p, pad, Activation::None);
        }

        #[test]
        fn resampling_matches_reference(seed in any::<u64>(), c in 1usize..4, h in 1usize..9, w in 1usize..9, scale in 0.0f64..12.0) {
            let mut rng = Rng(seed | 1);
            let x = round32(&rng.vec(c * h * w, 2.0));
            let offs = round32(&rng.vec(2 * c * h * w, scale));
            let r = resample_ref(&x, c, h, w, &offs);
            let mut out = vec![0.0f32; c * h * w];
            resample(c, h, w, &to_f32(&x), &to_f32(&offs), &mut out).unwrap();
            prop_assert!(max_abs_diff(&r, &out) < 1e-5);
        }
    }
}
