//! A seeded synthetic source of unpaired slices with a *domain-specific deformation*, so
//! `trainer train --data synthetic` trains something visible without any download.
//!
//! Domain A: smooth "anatomy" — an ellipse body (dark background at −1) filled with a few
//! Gaussian blobs of varied contrast. Domain B: *other* images drawn the same way (unpaired),
//! with a monotonic intensity remap (`2·((v + 1)/2)² − 1`, which reshapes contrast) and ONE
//! smooth sinusoidal displacement field shared by every B slice (the "scanner distortion"
//! docs/DESIGN.md §2.8 describes). A CycleGAN learns to copy that deformation; a DicycleGAN's
//! undeformed output should stay aligned with its source.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::config::SyntheticConfig;
use crate::source::UnpairedSlices;

/// Generated slices of both domains, held in memory.
#[derive(Debug)]
pub struct SyntheticSlices {
    size: i64,
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    field: Vec<(f32, f32)>,
}

impl SyntheticSlices {
    /// Generates `config.slices` slices per domain from `config.seed`.
    pub fn new(config: &SyntheticConfig) -> anyhow::Result<SyntheticSlices> {
        let size = config.size;
        anyhow::ensure!(
            size >= 8 && size % 4 == 0,
            "synthetic data: size must be a multiple of 4 and at least 8, got {size}"
        );
        anyhow::ensure!(
            config.slices >= 1,
            "synthetic data: slices must be at least 1"
        );
        let n = size as usize;
        let mut rng_a = ChaCha8Rng::seed_from_u64(config.seed);
        rng_a.set_stream(1);
        let mut rng_b = ChaCha8Rng::seed_from_u64(config.seed);
        rng_b.set_stream(2);
        let mut rng_field = ChaCha8Rng::seed_from_u64(config.seed);
        rng_field.set_stream(3);
        let field = displacement_field(n, config.deformation as f32, &mut rng_field);
        let a = (0..config.slices).map(|_| anatomy(n, &mut rng_a)).collect();
        let b = (0..config.slices)
            .map(|_| {
                let image = anatomy(n, &mut rng_b);
                let warped = warp(&image, n, &field);
                warped
                    .into_iter()
                    .map(|v| 2.0 * ((v + 1.0) * 0.5).powi(2) - 1.0)
                    .collect()
            })
            .collect();
        Ok(SyntheticSlices { size, a, b, field })
    }

    /// Domain B's displacement `(dy, dx)` per pixel, row-major, in pixels.
    pub fn field(&self) -> &[(f32, f32)] {
        &self.field
    }

    /// Slice `index` of domain A (`[1, 1, n, n]`).
    pub fn slice_a(&self, index: usize) -> Tensor {
        self.tensor(&self.a[index % self.a.len()])
    }

    /// Slice `index` of domain B (`[1, 1, n, n]`).
    pub fn slice_b(&self, index: usize) -> Tensor {
        self.tensor(&self.b[index % self.b.len()])
    }

    fn tensor(&self, pixels: &[f32]) -> Tensor {
        Tensor::from_slice(pixels).view([1, 1, self.size, self.size])
    }
}

impl UnpairedSlices for SyntheticSlices {
    fn next_batch(
        &mut self,
        batch: usize,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<(Tensor, Tensor)> {
        let pick = |images: &Vec<Vec<f32>>, rng: &mut ChaCha8Rng| {
            let slices: Vec<Tensor> = (0..batch)
                .map(|_| self.tensor(&images[rng.gen_range(0..images.len())]))
                .collect();
            Tensor::cat(&slices, 0)
        };
        let a = pick(&self.a, rng);
        let b = pick(&self.b, rng);
        Ok((a, b))
    }

    fn slices_per_epoch(&self) -> usize {
        self.a.len().max(self.b.len())
    }

    fn channels(&self) -> (i64, i64) {
        (1, 1)
    }

    fn slice_size(&self) -> (i64, i64) {
        (self.size, self.size)
    }
}

/// One smooth image in [−1, 1], row-major `n × n`.
fn anatomy(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let nf = n as f32;
    let cy = nf * rng.gen_range(0.45..0.55);
    let cx = nf * rng.gen_range(0.45..0.55);
    let ry = nf * rng.gen_range(0.30..0.42);
    let rx = nf * rng.gen_range(0.30..0.42);
    let blobs: Vec<(f32, f32, f32, f32)> = (0..rng.gen_range(2..5))
        .map(|_| {
            let by = cy + ry * rng.gen_range(-0.6..0.6);
            let bx = cx + rx * rng.gen_range(-0.6..0.6);
            let radius = nf * rng.gen_range(0.06..0.16);
            let amplitude = rng.gen_range(-0.9..0.9);
            (by, bx, radius, amplitude)
        })
        .collect();
    let mut out = vec![-1.0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let (fy, fx) = (y as f32 + 0.5, x as f32 + 0.5);
            let r = ((fy - cy) / ry).powi(2) + ((fx - cx) / rx).powi(2);
            // Soft body edge: 1 inside, 0 outside, over ~1.5 pixels.
            let body = 1.0 / (1.0 + ((r.sqrt() - 1.0) * ry.min(rx) / 1.5).exp());
            let mut v = 0.0;
            for &(by, bx, radius, amplitude) in &blobs {
                let d2 = (fy - by).powi(2) + (fx - bx).powi(2);
                v += amplitude * (-d2 / (2.0 * radius * radius)).exp();
            }
            out[y * n + x] = -1.0 + body * (1.0 + 0.9 * v.tanh());
        }
    }
    out.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
    out
}

/// A smooth displacement field with peak magnitude ≈ `amplitude` pixels.
fn displacement_field(n: usize, amplitude: f32, rng: &mut ChaCha8Rng) -> Vec<(f32, f32)> {
    let tau = std::f32::consts::TAU;
    let (fy, fx) = (rng.gen_range(0.5..1.2), rng.gen_range(0.5..1.2));
    let (py, px) = (rng.gen_range(0.0..tau), rng.gen_range(0.0..tau));
    let nf = n as f32;
    let mut field = Vec::with_capacity(n * n);
    for y in 0..n {
        for x in 0..n {
            let (u, v) = (y as f32 / nf, x as f32 / nf);
            let dy = amplitude * (tau * fx * v + px).sin() * (0.5 + 0.5 * (tau * 0.5 * u).sin());
            let dx = amplitude * (tau * fy * u + py).sin();
            field.push((dy, dx));
        }
    }
    field
}

/// Bilinear resampling at `(y + dy, x + dx)` with coordinates clamped to the border.
fn warp(image: &[f32], n: usize, field: &[(f32, f32)]) -> Vec<f32> {
    let max = (n - 1) as f32;
    let mut out = vec![0.0; n * n];
    for y in 0..n {
        for x in 0..n {
            let (dy, dx) = field[y * n + x];
            let sy = (y as f32 + dy).clamp(0.0, max);
            let sx = (x as f32 + dx).clamp(0.0, max);
            let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(n - 1), (x0 + 1).min(n - 1));
            let (wy, wx) = (sy - y0 as f32, sx - x0 as f32);
            let top = image[y0 * n + x0] * (1.0 - wx) + image[y0 * n + x1] * wx;
            let bottom = image[y1 * n + x0] * (1.0 - wx) + image[y1 * n + x1] * wx;
            out[y * n + x] = top * (1.0 - wy) + bottom * wy;
        }
    }
    out
}
