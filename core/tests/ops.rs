//! Each operator against a straightforward f64 reference.

#[path = "ops_common/mod.rs"]
mod ops_common;

use dicyc_core::gemm::{gemm_packed, pack_a_f32, pack_b_f32, packed_a_len, packed_b_len};
use dicyc_core::ops::{
    self, conv2d, conv_transpose2d, conv_transpose2d_output_size, conv_transpose2d_scratch_bytes,
    offset_layer, offset_layer_scratch_bytes, resample, Activation, Conv2d, Padding,
};
use dicyc_core::Error;
use dicyc_core::OffsetForm::{self, PerChannel, Shared};
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
        let mut pa = vec![0.0; packed_a_len(m, k).unwrap()];
        let mut pb = vec![0.0; packed_b_len(k, n).unwrap()];
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
    // Accumulation error, plus the documented tanh approximation error where it applies.
    let tanh_err = match act {
        Activation::Tanh => ops::math::TANH_MAX_ABS_ERROR as f64,
        _ => 0.0,
    };
    let tol = 1e-5 * ((cin * k * k) as f64).sqrt() * 4.0 + tanh_err;
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
    // PyTorch (dilation 1): out = (in − 1)·s − 2p + (k − 1) + op + 1, an error unless
    // op < s (with dilation 1, "smaller than either stride or dilation" is op < s or
    // op = 0, and op = 0 < s anyway) and out ≥ 1. Computed here in i64, independently.
    let mut valid = 0;
    for size in 0..12usize {
        for k in 0..8usize {
            for s in 0..5usize {
                for p in 0..6usize {
                    for op in 0..5usize {
                        let out = (size as i64 - 1) * s as i64 - 2 * p as i64
                            + (k as i64 - 1)
                            + op as i64
                            + 1;
                        let ok = size >= 1 && k >= 1 && s >= 1 && op < s && out >= 1;
                        let got = conv_transpose2d_output_size(size, k, s, p, op);
                        if ok {
                            assert_eq!(got, Ok(out as usize), "in {size} k{k} s{s} p{p} op{op}");
                            valid += 1;
                        } else {
                            assert_eq!(
                                got,
                                Err(Error::BadShape),
                                "in {size} k{k} s{s} p{p} op{op}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(valid > 1000, "the grid covers valid shapes ({valid})");
    // The generator's layer: exactly doubles.
    for h in 1..40 {
        assert_eq!(conv_transpose2d_output_size(h, 3, 2, 1, 1), Ok(2 * h));
    }
    // Overflow is an error, not a panic.
    assert_eq!(
        conv_transpose2d_output_size(usize::MAX, 3, 2, 1, 1),
        Err(Error::BadShape)
    );
    assert_eq!(
        conv_transpose2d_output_size(2, usize::MAX, 2, 0, 1),
        Err(Error::BadShape)
    );
    assert_eq!(
        conv_transpose2d_output_size(2, 3, 2, usize::MAX, 1),
        Err(Error::BadShape)
    );
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
    // The documented bound over a dense sweep (the worst case sits near |x| = 0.35), and
    // the function is odd exactly.
    let mut worst = 0.0f64;
    let mut x = -12.0f32;
    while x < 12.0 {
        worst = worst.max((ops::math::tanh(x) as f64 - (x as f64).tanh()).abs());
        assert_eq!(ops::math::tanh(-x), -ops::math::tanh(x));
        x += 0.000_07;
    }
    eprintln!("tanh max abs error {worst:.3e}");
    assert!(
        worst <= ops::math::TANH_MAX_ABS_ERROR as f64,
        "tanh max abs error {worst}"
    );
    // Tiny arguments keep their relative accuracy (tanh x ≈ x).
    for v in [1e-30f32, 1e-10, 9.9e-5] {
        assert!((ops::math::tanh(v) as f64 / (v as f64).tanh() - 1.0).abs() < 1e-6);
    }
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
    resample(c, PerChannel, h, w, &x, &vec![0.0; 2 * c * h * w], &mut out).unwrap();
    assert_eq!(out, x);
    // The full offset layer with zero weights and bias is the identity too.
    let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, PerChannel, h, w).unwrap()];
    let wt = vec![0u8; 2 * 2 * c * c * 9];
    let bias = vec![0u8; 4 * 2 * c];
    offset_layer(c, PerChannel, h, w, &x, &wt, &bias, &mut scratch, &mut out).unwrap();
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
        resample(c, PerChannel, h, w, &x, &offs, &mut out).unwrap();
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
    let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, PerChannel, h, w).unwrap()];
    offset_layer(
        c,
        PerChannel,
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
    for form in OffsetForm::ALL {
        let fields = form.fields(c as u32) as usize;
        let x = round32(&rng.vec(c * h * w, 2.0));
        let offs = round32(&rng.vec(2 * fields * h * w, 4.0));
        let r = resample_ref(&x, c, h, w, &offs);
        let mut out = vec![0.0f32; c * h * w];
        resample(c, form, h, w, &to_f32(&x), &to_f32(&offs), &mut out).unwrap();
        assert!(max_abs_diff(&r, &out) < 1e-5, "{form:?}");
        // Offsets of the other form's length are refused, not read past or short.
        let other = if fields == 1 {
            2 * c * h * w
        } else {
            2 * h * w
        };
        assert_eq!(
            resample(c, form, h, w, &to_f32(&x), &vec![0.0; other], &mut out),
            Err(Error::BadShape)
        );
    }
}

#[test]
fn a_shared_field_moves_every_channel_alike() {
    // One integer field for all channels: every channel shifts by the same amount, exactly.
    let mut rng = Rng(35);
    let (c, h, w) = (4, 6, 7);
    let x = to_f32(&rng.vec(c * h * w, 5.0));
    let mut offs = vec![0.0f32; 2 * h * w];
    offs[..h * w].fill(2.0);
    offs[h * w..].fill(-1.0);
    let mut out = vec![0.0f32; c * h * w];
    resample(c, Shared, h, w, &x, &offs, &mut out).unwrap();
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let (sy, sx) = ((y + 2).min(h - 1), xx.saturating_sub(1));
                assert_eq!(out[(ch * h + y) * w + xx], x[(ch * h + sy) * w + sx]);
            }
        }
    }
}

#[test]
fn offset_layer_matches_reference() {
    let mut rng = Rng(34);
    for form in OffsetForm::ALL {
        for &(c, h, w) in &[(1, 8, 8), (4, 10, 7), (6, 5, 12)] {
            let fields = form.fields(c as u32) as usize;
            let x = round32(&rng.vec(c * h * w, 1.0));
            let wt = round16(&rng.vec(2 * fields * c * 9, 0.4));
            let bias = round32(&rng.vec(2 * fields, 1.5));
            let r = offset_ref(&x, c, h, w, &wt, &bias);
            let mut out = vec![0.0f32; c * h * w];
            let mut scratch = vec![0u8; offset_layer_scratch_bytes(c, form, h, w).unwrap()];
            offset_layer(
                c,
                form,
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
            assert!(err < 1e-4, "offset layer {form:?} c{c} {h}x{w}: {err}");
        }
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

#[test]
fn huge_shapes_are_errors_not_overflows() {
    // The spots that once multiplied before checking: `2c` and `c·h·w` in the offset
    // layer, `channels · plane` in the norms, `(size − 1) · stride` in the output size.
    let mut scratch = [0u8; 256];
    let mut out = [0.0f32; 4];
    let x = [0.0f32; 4];
    for c in [usize::MAX, usize::MAX / 2 + 1, usize::MAX / 18 + 1, 1 << 32] {
        assert_eq!(
            offset_layer(c, PerChannel, 2, 2, &x, &[], &[], &mut scratch, &mut out),
            Err(Error::BadShape)
        );
        assert_eq!(
            offset_layer_scratch_bytes(c, PerChannel, 2, 2),
            Err(Error::BadShape)
        );
        assert_eq!(
            resample(c, PerChannel, 2, 2, &x, &x, &mut out),
            Err(Error::BadShape)
        );
    }
    assert_eq!(
        offset_layer(
            1,
            PerChannel,
            usize::MAX,
            usize::MAX,
            &x,
            &[],
            &[],
            &mut scratch,
            &mut out
        ),
        Err(Error::BadShape)
    );
    let mut hx = [f16::ZERO; 4];
    for (c, plane) in [(usize::MAX, 2), (2, usize::MAX), (1 << 33, 1 << 33)] {
        assert_eq!(
            ops::instance_norm(&mut hx, c, plane, true),
            Err(Error::BadShape)
        );
        assert_eq!(
            ops::instance_norm_residual(&[f16::ZERO; 4], &mut hx, c, plane),
            Err(Error::BadShape)
        );
    }
    assert_eq!(
        conv_transpose2d_output_size(usize::MAX / 2 + 2, 3, 2, 1, 1),
        Err(Error::BadShape)
    );
}

#[test]
fn instance_norm_rejects_non_finite_channels() {
    for bad in [f16::NAN, f16::INFINITY, f16::NEG_INFINITY] {
        let mut x = vec![f16::from_f32(0.5); 2 * 8];
        x[11] = bad; // channel 1
        assert_eq!(
            ops::instance_norm(&mut x, 2, 8, false),
            Err(Error::NonFiniteActivation)
        );
        let mut acc = vec![f16::ZERO; 16];
        assert_eq!(
            ops::instance_norm_residual(&x, &mut acc, 2, 8),
            Err(Error::NonFiniteActivation)
        );
    }
    // fp16's largest values are finite and fine.
    let mut x = vec![f16::MAX; 8];
    x[3] = f16::MIN;
    ops::instance_norm(&mut x, 1, 8, false).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Sizes at and past every limit, up to the edge of overflow.
    fn huge() -> impl Strategy<Value = usize> {
        prop::sample::select(vec![
            usize::MAX,
            usize::MAX - 1,
            usize::MAX / 2,
            usize::MAX / 2 + 1,
            usize::MAX / 3 + 1,
            usize::MAX / 18 + 1,
            usize::MAX / 49 + 1,
            1usize << 32,
            (1usize << 32) + 1,
            1 << 31,
            1 << 16,
            (ops::MAX_CHANNELS + 1).max((1 << 15) + 1),
        ])
    }

    /// Any size: mostly huge, sometimes small.
    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![3 => huge(), 1 => 0usize..12]
    }

    /// `dims` with position `i` replaced by `big`.
    fn with<const N: usize>(mut dims: [usize; N], i: usize, big: usize) -> [usize; N] {
        dims[i] = big;
        dims
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every public op and size query, any sizes with one of them (each in turn) past
        /// every limit: `Err`, never a panic or an overflow, whatever the buffers.
        #[test]
        fn huge_arguments_are_errors(
            dims in [size(), size(), size(), size()],
            big in huge(),
            kernel in size(), stride in size(), padding in size(), output_padding in size(),
            reflect in any::<bool>(),
        ) {
            let mut scratch = vec![0u8; 4096];
            let mut out = vec![0.0f32; 64];
            let x = vec![0.0f32; 64];
            let bytes = vec![0u8; 256];
            let mut hx = vec![f16::ZERO; 64];
            let hu = vec![f16::ZERO; 64];
            let pad_mode = if reflect { Padding::Reflect } else { Padding::Zero };
            for i in 0..4 {
                let [a, b, c, d] = with(dims, i, big);
                // Kernel, stride and padding both in their valid ranges and as drawn.
                for (k, st, p) in [(kernel % 8, stride % 9, padding % 8), (kernel, stride, padding)] {
                    let shape = Conv2d {
                        in_channels: a,
                        out_channels: b,
                        height: c,
                        width: d,
                        kernel: k,
                        stride: st,
                        padding: p,
                        pad_mode,
                    };
                    prop_assert!(shape.output_size().is_err());
                    prop_assert!(shape.scratch_bytes().is_err());
                    prop_assert!(conv2d(&shape, &x, &bytes, &bytes, Activation::Relu, &mut scratch, &mut out).is_err());
                }
                prop_assert!(conv_transpose2d_scratch_bytes(a, b, c, d).is_err());
                prop_assert!(conv_transpose2d(a, b, c, d, &x, &bytes, &bytes, Activation::None, &mut scratch, &mut out).is_err());
            }
            for i in 0..3 {
                let [c, h, w, _] = with(dims, i, big);
                prop_assert!(offset_layer_scratch_bytes(c, PerChannel, h, w).is_err());
                prop_assert!(offset_layer(c, PerChannel, h, w, &x, &bytes, &bytes, &mut scratch, &mut out).is_err());
                prop_assert!(resample(c, PerChannel, h, w, &x, &x, &mut out).is_err());
            }
            for i in 0..2 {
                let [c, plane, _, _] = with(dims, i, big);
                prop_assert_eq!(ops::instance_norm(&mut hx, c, plane, true), Err(Error::BadShape));
                prop_assert_eq!(ops::instance_norm_residual(&hu, &mut hx, c, plane), Err(Error::BadShape));
                let config = dicyc_core::ModelConfig::paper();
                let [h, w, _, _] = with(dims, i, big);
                prop_assert!(dicyc_core::required_scratch_bytes(&config, h, w).is_err());
                prop_assert!(dicyc_core::layer_by_layer_minimum_bytes(&config, h, w).is_err());
            }
            // The output size has valid huge results: any `Ok` must be PyTorch's formula
            // (in i128, saturating far above any `usize`), and it may be `Err` only where
            // PyTorch refuses the shape or an intermediate does not fit in `usize`.
            for i in 0..2 {
                let [size, k, _, _] = with(dims, i, big);
                let (st, p, op) = (stride as i128, padding as i128, output_padding as i128);
                let grown = (size as i128 - 1)
                    .saturating_mul(st)
                    .saturating_add(k as i128)
                    .saturating_add(op);
                let exact = grown - 2 * p;
                let fits = grown <= usize::MAX as i128 && 2 * p <= usize::MAX as i128;
                let pytorch_ok = size >= 1 && k >= 1 && st >= 1 && op < st && exact >= 1;
                match conv_transpose2d_output_size(size, k, stride, padding, output_padding) {
                    Ok(n) => prop_assert!(pytorch_ok && n as i128 == exact, "{} vs {}", n, exact),
                    Err(e) => {
                        prop_assert_eq!(e, Error::BadShape);
                        prop_assert!(!pytorch_ok || !fits);
                    }
                }
            }
        }
    }

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
            resample(c, PerChannel, h, w, &to_f32(&x), &to_f32(&offs), &mut out).unwrap();
            prop_assert!(max_abs_diff(&r, &out) < 1e-5);
        }
    }
}
