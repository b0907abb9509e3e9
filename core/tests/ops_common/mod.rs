//! Straightforward f64 reference implementations of the generator's ops, shared by the
//! ops and generator tests. Written for obviousness, not speed.
#![allow(dead_code)]

/// xorshift64* in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub fn f16_round(v: f64) -> f64 {
    half::f16::from_f64(v).to_f64()
}

pub fn f32_round(v: f64) -> f64 {
    v as f32 as f64
}

/// Rounds every value to fp16 (what the weight file stores).
pub fn round16(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| f16_round(x)).collect()
}

pub fn round32(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| f32_round(x)).collect()
}

pub fn f16_bytes(v: &[f64]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::f16::from_f64(x).to_bits().to_le_bytes())
        .collect()
}

pub fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn pad_index(i: isize, n: usize, reflect: bool) -> Option<usize> {
    let n = n as isize;
    if i >= 0 && i < n {
        Some(i as usize)
    } else if reflect {
        let r = if i < 0 { -i } else { 2 * (n - 1) - i };
        Some(r as usize)
    } else {
        None
    }
}

/// Conv2d (OIHW weights), symmetric padding, reflect or zero. Returns (out, ho, wo).
#[allow(clippy::too_many_arguments)]
pub fn conv_ref(
    x: &[f64],
    cin: usize,
    h: usize,
    w: usize,
    wt: &[f64],
    bias: &[f64],
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    reflect: bool,
) -> (Vec<f64>, usize, usize) {
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (w + 2 * pad - k) / stride + 1;
    let mut out = vec![0.0; cout * ho * wo];
    for co in 0..cout {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut s = bias[co];
                for ci in 0..cin {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy =
                                pad_index((oy * stride + ky) as isize - pad as isize, h, reflect);
                            let ix =
                                pad_index((ox * stride + kx) as isize - pad as isize, w, reflect);
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                s += x[(ci * h + iy) * w + ix]
                                    * wt[((co * cin + ci) * k + ky) * k + kx];
                            }
                        }
                    }
                }
                out[(co * ho + oy) * wo + ox] = s;
            }
        }
    }
    (out, ho, wo)
}

/// ConvTranspose2d(k 3, stride 2, padding 1, output_padding 1), IOHW weights, by its
/// scatter definition. Output size from PyTorch's formula.
pub fn conv_t_ref(
    x: &[f64],
    cin: usize,
    h: usize,
    w: usize,
    wt: &[f64],
    bias: &[f64],
    cout: usize,
) -> (Vec<f64>, usize, usize) {
    let (k, s, p, op) = (3usize, 2usize, 1usize, 1usize);
    let ho = (h - 1) * s + (k - 1) + op + 1 - 2 * p;
    let wo = (w - 1) * s + (k - 1) + op + 1 - 2 * p;
    let mut out = vec![0.0; cout * ho * wo];
    for co in 0..cout {
        for i in 0..ho * wo {
            out[co * ho * wo + i] = bias[co];
        }
    }
    for ci in 0..cin {
        for iy in 0..h {
            for ix in 0..w {
                let v = x[(ci * h + iy) * w + ix];
                for co in 0..cout {
                    for ky in 0..k {
                        for kx in 0..k {
                            let oy = (iy * s + ky) as isize - p as isize;
                            let ox = (ix * s + kx) as isize - p as isize;
                            if oy >= 0 && ox >= 0 && (oy as usize) < ho && (ox as usize) < wo {
                                out[(co * ho + oy as usize) * wo + ox as usize] +=
                                    v * wt[((ci * cout + co) * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    (out, ho, wo)
}

/// Instance norm (biased variance, eps 1e-5), optional ReLU.
pub fn inorm_ref(x: &mut [f64], c: usize, plane: usize, relu: bool) {
    for ch in 0..c {
        let v = &mut x[ch * plane..(ch + 1) * plane];
        let mean = v.iter().sum::<f64>() / plane as f64;
        let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / plane as f64;
        let r = 1.0 / (var + 1e-5).sqrt();
        for a in v.iter_mut() {
            *a = (*a - mean) * r;
            if relu && *a < 0.0 {
                *a = 0.0;
            }
        }
    }
}

/// Bilinear sample with coordinates clamped to [0, size-1].
pub fn sample_ref(x: &[f64], h: usize, w: usize, c: usize, sy: f64, sx: f64) -> f64 {
    let sy = sy.clamp(0.0, (h - 1) as f64);
    let sx = sx.clamp(0.0, (w - 1) as f64);
    let y0 = sy.floor() as usize;
    let x0 = sx.floor() as usize;
    let y1 = (y0 + 1).min(h - 1);
    let x1 = (x0 + 1).min(w - 1);
    let wy = sy - y0 as f64;
    let wx = sx - x0 as f64;
    let at = |y: usize, xx: usize| x[(c * h + y) * w + xx];
    (1.0 - wy) * (1.0 - wx) * at(y0, x0)
        + (1.0 - wy) * wx * at(y0, x1)
        + wy * (1.0 - wx) * at(y1, x0)
        + wy * wx * at(y1, x1)
}

/// Resampling with explicit offsets of `F` fields (`2f` = dy, `2f + 1` = dx), `F` taken
/// from `offs`' length: one per channel, or one (shared by all channels).
pub fn resample_ref(x: &[f64], c: usize, h: usize, w: usize, offs: &[f64]) -> Vec<f64> {
    let fields = offs.len() / (2 * h * w);
    assert!(
        fields == c || fields == 1,
        "{fields} fields for {c} channels"
    );
    let mut out = vec![0.0; c * h * w];
    for ch in 0..c {
        let f = if fields == 1 { 0 } else { ch };
        for y in 0..h {
            for xx in 0..w {
                let dy = offs[((2 * f) * h + y) * w + xx];
                let dx = offs[((2 * f + 1) * h + y) * w + xx];
                out[(ch * h + y) * w + xx] = sample_ref(x, h, w, ch, y as f64 + dy, xx as f64 + dx);
            }
        }
    }
    out
}

/// The offset layer: 3×3 'same' zero-padded conv to `2F` offsets (`F` = `bias.len() / 2`
/// fields: `c`, or 1 shared), then resampling.
pub fn offset_ref(x: &[f64], c: usize, h: usize, w: usize, wt: &[f64], bias: &[f64]) -> Vec<f64> {
    let (offs, _, _) = conv_ref(x, c, h, w, wt, bias, bias.len(), 3, 1, 1, false);
    resample_ref(x, c, h, w, &offs)
}

pub fn max_abs_diff(a: &[f64], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x - y as f64).abs())
        .fold(0.0, f64::max)
}

pub fn rel_l2(reference: &[f64], got: &[f32]) -> f64 {
    let num: f64 = reference
        .iter()
        .zip(got)
        .map(|(&x, &y)| (x - y as f64).powi(2))
        .sum();
    let den: f64 = reference.iter().map(|x| x * x).sum();
    (num / den.max(1e-300)).sqrt()
}
