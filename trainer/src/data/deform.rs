//! Smooth, seeded, invertible non-linear deformations.
//!
//! A displacement field is a sum of a few low-frequency sinusoids per component, in voxel
//! units of a grid `dims`: `u_d(p) = Σ_m a_dm · sin(2π Σ_e f_dme · p_e / N_e + φ_dm)`.
//! It is smooth everywhere (analytic), cheap to evaluate anywhere, and reproducible from a
//! seed. Its Jacobian is analytic too, and the construction bounds it: the field is scaled so
//! that the Frobenius norm of `∇u` is at most `max_gradient` < 1 everywhere, hence
//! `det(I + ∇u) > 0` at every point — the warp `p ↦ p + u(p)` is a diffeomorphism.
//!
//! Warping pulls back: `warped(p) = volume(p + u(p))` (trilinear).

use ndarray::{Array3, ArrayView3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::resample::{trilinear, Outside};

/// One sinusoid of one component.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// Amplitude (voxels).
    pub amp: f64,
    /// Frequency along x, y, z in cycles per field of view.
    pub freq: [f64; 3],
    /// Phase (radians).
    pub phase: f64,
}

/// A smooth scalar function on a grid: a sum of sinusoids.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sines {
    /// The terms.
    pub terms: Vec<Term>,
}

impl Sines {
    fn arg(t: &Term, p: [f64; 3], dims: [f64; 3]) -> f64 {
        2.0 * std::f64::consts::PI
            * (t.freq[0] * p[0] / dims[0] + t.freq[1] * p[1] / dims[1] + t.freq[2] * p[2] / dims[2])
            + t.phase
    }

    /// The value at `p` on a grid of `dims`.
    pub fn value(&self, p: [f64; 3], dims: [f64; 3]) -> f64 {
        self.terms
            .iter()
            .map(|t| t.amp * Self::arg(t, p, dims).sin())
            .sum()
    }

    /// The gradient at `p`.
    pub fn gradient(&self, p: [f64; 3], dims: [f64; 3]) -> [f64; 3] {
        let mut g = [0.0; 3];
        for t in &self.terms {
            let c = t.amp * Self::arg(t, p, dims).cos() * 2.0 * std::f64::consts::PI;
            for e in 0..3 {
                g[e] += c * t.freq[e] / dims[e];
            }
        }
        g
    }

    /// Upper bound of |value| everywhere.
    pub fn max_abs(&self) -> f64 {
        self.terms.iter().map(|t| t.amp.abs()).sum()
    }

    /// Upper bound of |∂/∂p_e| everywhere, per axis.
    pub fn max_gradient(&self, dims: [f64; 3]) -> [f64; 3] {
        let mut g = [0.0; 3];
        for t in &self.terms {
            for e in 0..3 {
                g[e] += t.amp.abs() * 2.0 * std::f64::consts::PI * t.freq[e].abs() / dims[e];
            }
        }
        g
    }

    fn scale(&mut self, s: f64) {
        self.terms.iter_mut().for_each(|t| t.amp *= s);
    }

    /// A random smooth function: `n` terms, amplitudes N(0, 1), in-plane frequencies uniform
    /// in ±`max_freq`, through-plane in ±`max_freq_z` cycles per field of view.
    pub fn random(n: usize, max_freq: f64, max_freq_z: f64, rng: &mut ChaCha8Rng) -> Self {
        let terms = (0..n)
            .map(|_| {
                let amp: f64 = StandardNormal.sample(rng);
                let fx = rng.gen_range(-max_freq..=max_freq);
                let fy = rng.gen_range(-max_freq..=max_freq);
                let fz = if max_freq_z > 0.0 {
                    rng.gen_range(-max_freq_z..=max_freq_z)
                } else {
                    0.0
                };
                let phase = rng.gen_range(0.0..2.0 * std::f64::consts::PI);
                Term {
                    amp,
                    freq: [fx, fy, fz],
                    phase,
                }
            })
            .collect();
        Self { terms }
    }
}

/// How a random field is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FieldOptions {
    /// Largest displacement of any component (voxels); the field is scaled to reach it
    /// (unless the gradient bound forces it lower).
    pub max_displacement: f64,
    /// Bound on the Frobenius norm of ∇u (< 1 guarantees a positive Jacobian determinant).
    pub max_gradient: f64,
    /// Sinusoids per component.
    pub terms: usize,
    /// Highest in-plane frequency (cycles per field of view).
    pub max_freq: f64,
    /// Highest through-plane frequency (cycles per field of view); 0 = the same in-plane field
    /// on every slice.
    pub max_freq_z: f64,
    /// Displace in-plane only (no z component): slices stay slices.
    pub in_plane: bool,
}

impl Default for FieldOptions {
    fn default() -> Self {
        Self {
            max_displacement: 4.0,
            max_gradient: 0.5,
            terms: 6,
            max_freq: 1.5,
            max_freq_z: 0.5,
            in_plane: true,
        }
    }
}

/// A smooth displacement field on a grid (voxel units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmoothField {
    /// Grid size the frequencies refer to.
    pub dims: [usize; 3],
    /// Components x, y, z.
    pub comp: [Sines; 3],
}

impl SmoothField {
    /// The zero field.
    pub fn zero(dims: [usize; 3]) -> Self {
        Self {
            dims,
            comp: Default::default(),
        }
    }

    fn fdims(&self) -> [f64; 3] {
        self.dims.map(|d| d.max(1) as f64)
    }

    /// A random field drawn from `rng` (see [`FieldOptions`]).
    pub fn random(dims: [usize; 3], opts: &FieldOptions, rng: &mut ChaCha8Rng) -> Self {
        let ncomp = if opts.in_plane { 2 } else { 3 };
        let mut comp: [Sines; 3] = Default::default();
        for c in comp.iter_mut().take(ncomp) {
            *c = Sines::random(opts.terms, opts.max_freq, opts.max_freq_z, rng);
        }
        let mut f = Self { dims, comp };
        let peak = f.comp.iter().map(Sines::max_abs).fold(0.0, f64::max);
        if peak > 0.0 {
            f.scale(opts.max_displacement / peak);
        }
        f.limit_gradient(opts.max_gradient);
        f
    }

    /// Multiplies every displacement by `s`.
    pub fn scale(&mut self, s: f64) {
        self.comp.iter_mut().for_each(|c| c.scale(s));
    }

    /// Bound of the Frobenius norm of ∇u everywhere.
    pub fn gradient_bound(&self) -> f64 {
        let d = self.fdims();
        self.comp
            .iter()
            .map(|c| c.max_gradient(d).iter().map(|g| g * g).sum::<f64>())
            .sum::<f64>()
            .sqrt()
    }

    /// Scales the field down (never up) so that [`gradient_bound`](Self::gradient_bound) ≤ `g`.
    pub fn limit_gradient(&mut self, g: f64) {
        let b = self.gradient_bound();
        if b > g && b > 0.0 {
            self.scale(g / b);
        }
    }

    /// The sum of two fields on the same grid.
    pub fn plus(&self, other: &SmoothField) -> SmoothField {
        let mut out = self.clone();
        for (a, b) in out.comp.iter_mut().zip(&other.comp) {
            a.terms.extend_from_slice(&b.terms);
        }
        out
    }

    /// This field plus a per-volume jitter: a random field `fraction` times as strong, drawn
    /// from `rng`, limited so that the sum keeps the gradient bound `max_gradient`.
    pub fn jittered(
        &self,
        fraction: f64,
        opts: &FieldOptions,
        rng: &mut ChaCha8Rng,
    ) -> SmoothField {
        let mut jit = SmoothField::random(
            self.dims,
            &FieldOptions {
                max_displacement: opts.max_displacement * fraction,
                ..*opts
            },
            rng,
        );
        let room = (opts.max_gradient - self.gradient_bound()).max(0.0);
        jit.limit_gradient(room);
        self.plus(&jit)
    }

    /// Displacement at `p` (voxels).
    pub fn at(&self, p: [f64; 3]) -> [f64; 3] {
        let d = self.fdims();
        [
            self.comp[0].value(p, d),
            self.comp[1].value(p, d),
            self.comp[2].value(p, d),
        ]
    }

    /// Jacobian determinant of `p ↦ p + u(p)` at `p`.
    pub fn jacobian_det(&self, p: [f64; 3]) -> f64 {
        let d = self.fdims();
        let mut j = [[0.0; 3]; 3];
        for (r, c) in self.comp.iter().enumerate() {
            let g = c.gradient(p, d);
            for e in 0..3 {
                j[r][e] = g[e] + if r == e { 1.0 } else { 0.0 };
            }
        }
        j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1])
            - j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0])
            + j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0])
    }

    /// Smallest Jacobian determinant over the voxel centres of the grid.
    pub fn min_jacobian_on_grid(&self) -> f64 {
        let mut m = f64::INFINITY;
        for i in 0..self.dims[0] {
            for j in 0..self.dims[1] {
                for k in 0..self.dims[2] {
                    m = m.min(self.jacobian_det([i as f64, j as f64, k as f64]));
                }
            }
        }
        m
    }

    /// Largest displacement magnitude over the voxel centres.
    pub fn max_displacement_on_grid(&self) -> f64 {
        let mut m = 0.0f64;
        for i in 0..self.dims[0] {
            for j in 0..self.dims[1] {
                for k in 0..self.dims[2] {
                    let u = self.at([i as f64, j as f64, k as f64]);
                    m = m.max((u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt());
                }
            }
        }
        m
    }

    /// `warped(p) = v(p + u(p))`, trilinear; samples outside the grid read `outside`.
    pub fn warp(&self, v: &ArrayView3<'_, f32>, outside: Outside) -> Array3<f32> {
        Array3::from_shape_fn(v.dim(), |(i, j, k)| {
            let p = [i as f64, j as f64, k as f64];
            let u = self.at(p);
            trilinear(v, p[0] + u[0], p[1] + u[1], p[2] + u[2], outside)
        })
    }
}
