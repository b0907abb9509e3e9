//! An IXI-like PD/T2 benchmark simulated from real anatomy (the MNI ICBM152 2009a tissue
//! maps): spin-echo signal equation, BrainWeb 1.5 T tissue parameters, and per-subject
//! variability (smooth non-linear deformation + small affine, bias field, Rician noise,
//! tissue-parameter jitter). PD and T2 of one subject are the two echoes of one acquisition:
//! computed from the same warped tissue fractions, the same bias field, so exactly aligned.
//!
//! Every spatial parameter is in mm (or per field of view), never in voxels: a benchmark at
//! 1 mm and one at 2 mm of the same seed and field of view show the same subjects (the same
//! deformation, affine and bias field in mm), only sampled differently. The geometry is
//! anchored on the 2 mm lattice ([`REFERENCE_MM`]) so that the default 2 mm benchmark is the
//! one built before voxel sizes were selectable, byte for byte.

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array3, Axis, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::deform::{FieldOptions, Sines, SmoothField};
use super::nifti_io;
use super::resample::{downsample_mean, trilinear, Outside};
use super::template;
use super::volume::{header_for, reslice_header, spacing_of, Volume};

/// Voxel size (mm) of the lattice the per-subject fields are anchored on: sinusoid phases
/// refer to this lattice's voxel centres, so the 2 mm benchmark evaluates them exactly where
/// it always did, and a finer grid samples the same continuous field between them.
pub const REFERENCE_MM: f64 = 2.0;

/// Radius (mm) of the ball that closes the brain mask (2 voxels of the 2 mm grid).
pub const MASK_CLOSING_MM: f64 = 4.0;

/// In-plane voxel size (mm) of a header (the simulator's grids are isotropic).
fn voxel_of(header: &nifti::NiftiHeader) -> f64 {
    f64::from(spacing_of(header)[0])
}

/// Relaxation times (ms) and proton density of one tissue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tissue {
    /// T1 (ms).
    pub t1: f64,
    /// T2 (ms).
    pub t2: f64,
    /// Proton density (relative to CSF).
    pub pd: f64,
}

/// BrainWeb 1.5 T parameters (Kwan, Evans & Pike 1999; Cocosco et al. 1997).
pub const CSF: Tissue = Tissue {
    t1: 2569.0,
    t2: 329.0,
    pd: 1.00,
};
/// Grey matter, BrainWeb 1.5 T.
pub const GM: Tissue = Tissue {
    t1: 833.0,
    t2: 83.0,
    pd: 0.86,
};
/// White matter, BrainWeb 1.5 T.
pub const WM: Tissue = Tissue {
    t1: 500.0,
    t2: 70.0,
    pd: 0.77,
};

/// Spin-echo signal `S = PD · (1 − e^(−TR/T1)) · e^(−TE/T2)`.
pub fn spin_echo(t: &Tissue, tr: f64, te: f64) -> f64 {
    t.pd * (1.0 - (-tr / t.t1).exp()) * (-te / t.t2).exp()
}

/// Tissue fractions on a grid: grey matter, white matter, CSF (each in [0, 1], sum ≤ 1;
/// outside the brain all zero), with the grid's header.
#[derive(Debug, Clone)]
pub struct Anatomy {
    /// Grey-matter fraction.
    pub gm: Array3<f32>,
    /// White-matter fraction.
    pub wm: Array3<f32>,
    /// CSF fraction.
    pub csf: Array3<f32>,
    /// Geometry of the grid.
    pub header: nifti::NiftiHeader,
}

impl Anatomy {
    /// Loads the template's GM and WM maps from `dir`, downsamples them by `factor` (block
    /// mean: partial volumes; 1 = the template's own 1 mm grid), derives the brain mask
    /// (GM+WM > 0.3, closed with a ball of [`MASK_CLOSING_MM`], holes filled slice by slice —
    /// the ventricles) and CSF = mask · (1 − GM − WM).
    pub fn from_template(dir: &Path, factor: usize) -> Result<Self> {
        let read = |k: &str| -> Result<Volume> {
            let p = dir.join(template::map_file(k));
            let v = nifti_io::read_volume(&p)?;
            let d = v.dim();
            if [d.0, d.1, d.2] != template::TEMPLATE_DIMS {
                anyhow::bail!(
                    "{}: dimensions {:?}, expected {:?}: not the nilearn ICBM152 2009a map",
                    p.display(),
                    d,
                    template::TEMPLATE_DIMS
                );
            }
            Ok(v)
        };
        let gm = read("gm")?;
        let wm = read("wm")?;
        let scale = |v: &Volume| {
            let max = v.data.iter().copied().fold(0.0f32, f32::max);
            if max > 1.5 {
                255.0
            } else {
                1.0
            }
        };
        let (sg, sw) = (scale(&gm), scale(&wm));
        let f = [factor.max(1); 3];
        let g = downsample_mean(&gm.data.view(), f).mapv(|x| (x / sg).clamp(0.0, 1.0));
        let w = downsample_mean(&wm.data.view(), f).mapv(|x| (x / sw).clamp(0.0, 1.0));
        let half = (factor.max(1) as f64 - 1.0) / 2.0;
        let header = reslice_header(&gm.header, [factor as f64; 3], [half; 3]);
        Ok(Self::from_gm_wm(g, w, header))
    }

    /// Builds the anatomy from GM and WM fractions (mask and CSF derived as in
    /// [`from_template`](Self::from_template)); the closing radius is converted to voxels of
    /// `header`'s voxel size, so the mask means the same in mm at any resolution.
    pub fn from_gm_wm(gm: Array3<f32>, wm: Array3<f32>, header: nifti::NiftiHeader) -> Self {
        let tissue = Zip::from(&gm).and(&wm).map_collect(|&g, &w| g + w > 0.3);
        let r = (MASK_CLOSING_MM / voxel_of(&header)).round().max(1.0) as usize;
        let closed = erode(&dilate(&tissue, r), r);
        let mask = fill_holes_axial(&closed);
        let csf = Zip::from(&gm)
            .and(&wm)
            .and(&mask)
            .map_collect(|&g, &w, &m| {
                if m {
                    (1.0 - g - w).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            });
        let gm = Zip::from(&gm)
            .and(&mask)
            .and(&tissue)
            .map_collect(|&g, &m, &t| if m || t { g } else { 0.0 });
        Self {
            gm,
            wm,
            csf,
            header,
        }
    }

    /// A tiny synthetic anatomy for tests: concentric spheres (WM core, GM shell, CSF rim)
    /// with a CSF "ventricle" in the middle, partial-volume edges, 2 mm voxels.
    pub fn phantom(dims: [usize; 3]) -> Self {
        let c = dims.map(|d| (d as f64 - 1.0) / 2.0);
        let r = dims.iter().map(|&d| d as f64).fold(f64::INFINITY, f64::min) / 2.0 - 1.0;
        let frac = |dist: f64, radius: f64| (radius - dist + 0.5).clamp(0.0, 1.0) as f32;
        let mut gm = Array3::zeros((dims[0], dims[1], dims[2]));
        let mut wm = gm.clone();
        for ((i, j, k), g) in gm.indexed_iter_mut() {
            let d =
                ((i as f64 - c[0]).powi(2) + (j as f64 - c[1]).powi(2) + (k as f64 - c[2]).powi(2))
                    .sqrt();
            let brain = frac(d, 0.9 * r);
            let inner = frac(d, 0.65 * r);
            let vent = frac(d, 0.2 * r);
            let w = (inner - vent).max(0.0);
            wm[[i, j, k]] = w;
            *g = (brain - inner).max(0.0);
        }
        let header = header_for((dims[0], dims[1], dims[2]), [2.0; 3], [0.0; 3]);
        let mut a = Self::from_gm_wm(gm, wm, header);
        // The whole sphere of radius r is brain (CSF rim between 0.9 r and r).
        for ((i, j, k), c2) in a.csf.indexed_iter_mut() {
            let d =
                ((i as f64 - c[0]).powi(2) + (j as f64 - c[1]).powi(2) + (k as f64 - c[2]).powi(2))
                    .sqrt();
            let inside = frac(d, r);
            *c2 = (inside - a.gm[[i, j, k]] - a.wm[[i, j, k]]).clamp(0.0, 1.0);
        }
        a
    }

    /// Grid size.
    pub fn dims(&self) -> [usize; 3] {
        let d = self.gm.dim();
        [d.0, d.1, d.2]
    }

    /// Voxel size (mm) of the grid (isotropic).
    pub fn voxel_mm(&self) -> f64 {
        voxel_of(&self.header)
    }

    /// Brain fraction (GM + WM + CSF).
    pub fn brain(&self) -> Array3<f32> {
        &self.gm + &self.wm + &self.csf
    }
}

/// Where a set voxel of `m` lies within the ball of radius `r` voxels (offsets with
/// a² + b² + c² ≤ r²); voxels outside the grid count as `outside`. Exact, by separable
/// min-plus passes of the squared distance over a ±r window per axis: O(n·r) rather than
/// O(n·r³), which the 1 mm template (8.7 M voxels, r = 4) needs.
fn within_ball(m: &Array3<bool>, r: usize, outside: bool) -> Array3<bool> {
    const FAR: u32 = u32::MAX / 4;
    let edge = if outside { 0 } else { FAR };
    let mut d = m.mapv(|b| if b { 0u32 } else { FAR });
    for axis in 0..3 {
        let n = d.len_of(Axis(axis));
        let src = d.clone();
        Zip::from(d.lanes_mut(Axis(axis)))
            .and(src.lanes(Axis(axis)))
            .for_each(|mut out, inp| {
                for i in 0..n {
                    let mut best = inp[i];
                    for o in 1..=r {
                        let o2 = (o * o) as u32;
                        let lo = if i >= o { inp[i - o] } else { edge };
                        let hi = if i + o < n { inp[i + o] } else { edge };
                        best = best.min(lo.min(hi).saturating_add(o2));
                    }
                    out[i] = best;
                }
            });
    }
    let r2 = (r * r) as u32;
    d.mapv(|x| x <= r2)
}

fn dilate(m: &Array3<bool>, r: usize) -> Array3<bool> {
    within_ball(m, r, false)
}

/// Erosion: inside the grid and no unset voxel within the ball (outside counts as unset).
fn erode(m: &Array3<bool>, r: usize) -> Array3<bool> {
    within_ball(&m.mapv(|b| !b), r, true).mapv(|b| !b)
}

/// Fills holes of a mask in every axial slice (background = what a 4-connected flood from the
/// slice border reaches).
pub fn fill_holes_axial(m: &Array3<bool>) -> Array3<bool> {
    let (nx, ny, nz) = m.dim();
    let mut out = m.clone();
    for k in 0..nz {
        let mut outside = vec![false; nx * ny];
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for i in 0..nx {
            for j in 0..ny {
                if (i == 0 || j == 0 || i == nx - 1 || j == ny - 1) && !m[[i, j, k]] {
                    outside[i * ny + j] = true;
                    stack.push((i, j));
                }
            }
        }
        while let Some((i, j)) = stack.pop() {
            let mut visit = |a: usize, b: usize| {
                if !m[[a, b, k]] && !outside[a * ny + b] {
                    outside[a * ny + b] = true;
                    stack.push((a, b));
                }
            };
            if i > 0 {
                visit(i - 1, j);
            }
            if i + 1 < nx {
                visit(i + 1, j);
            }
            if j > 0 {
                visit(i, j - 1);
            }
            if j + 1 < ny {
                visit(i, j + 1);
            }
        }
        for i in 0..nx {
            for j in 0..ny {
                out[[i, j, k]] = !outside[i * ny + j];
            }
        }
    }
    out
}

/// Simulation settings (defaults: IXI-like, see docs/DATA.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    /// Seed of everything random.
    pub seed: u64,
    /// Repetition time (ms).
    pub tr: f64,
    /// Echo time of the PD-weighted echo (ms).
    pub te_pd: f64,
    /// Echo time of the T2-weighted echo (ms).
    pub te_t2: f64,
    /// Output grid size (voxels of the anatomy grid).
    pub dims: [usize; 3],
    /// Output grid origin in anatomy voxel coordinates.
    pub offset: [f64; 3],
    /// Per-subject non-linear deformation (anatomical variability). Here
    /// `field.max_displacement` is in **mm** (divided by the anatomy's voxel size at use);
    /// frequencies are per field of view and the gradient bound is unitless, so the field is
    /// the same in mm at any voxel size.
    pub field: FieldOptions,
    /// Largest in-plane rotation (degrees) of the per-subject affine.
    pub max_rotation_deg: f64,
    /// Largest isotropic scaling of the per-subject affine (fraction).
    pub max_scale: f64,
    /// Largest in-plane translation (mm) of the per-subject affine (through-plane: half).
    pub max_translation_mm: f64,
    /// Bias field strength: the multiplicative field is `exp(bias · s(p))`, |s| ≤ 1, `s` a
    /// few sinusoids of ≤ 1 cycle per field of view (the same in mm at any voxel size).
    pub bias: f64,
    /// Rician noise σ as a fraction of the signal unit (signals are 0..~1 before `units`),
    /// per voxel at any voxel size (the same SNR per voxel, not per mm³).
    pub noise: f64,
    /// Relative sd of each tissue parameter per subject.
    pub jitter: f64,
    /// Output scale (signal 1.0 = `units` in the written volumes).
    pub units: f64,
}

impl SimOptions {
    /// IXI-like defaults for an output grid `dims` at `offset`.
    pub fn ixi_like(seed: u64, dims: [usize; 3], offset: [f64; 3]) -> Self {
        Self {
            seed,
            tr: 8178.0,
            te_pd: 8.0,
            te_t2: 100.0,
            dims,
            offset,
            field: FieldOptions {
                max_displacement: 6.0,
                max_gradient: 0.35,
                terms: 6,
                max_freq: 1.2,
                max_freq_z: 1.0,
                in_plane: false,
            },
            max_rotation_deg: 5.0,
            max_scale: 0.05,
            max_translation_mm: 4.0,
            bias: 0.1,
            noise: 0.012,
            jitter: 0.03,
            units: 1000.0,
        }
    }
}

/// One simulated subject: the two echoes and the brain mask, on the output grid.
#[derive(Debug, Clone)]
pub struct Subject {
    /// PD-weighted echo (TE = `te_pd`).
    pub pd: Volume,
    /// T2-weighted echo (TE = `te_t2`).
    pub t2: Volume,
    /// Brain mask (1 inside, 0 outside).
    pub mask: Volume,
}

fn jitter_tissue(t: &Tissue, sd: f64, rng: &mut ChaCha8Rng) -> Tissue {
    let mut j = || {
        let n: f64 = StandardNormal.sample(rng);
        1.0 + sd * n.clamp(-3.0, 3.0)
    };
    Tissue {
        t1: t.t1 * j(),
        t2: t.t2 * j(),
        pd: t.pd * j(),
    }
}

/// The spatial part of one subject: which anatomy position each output voxel samples.
/// Drawn first from the subject's stream, independently of the grid's resolution.
#[derive(Debug, Clone)]
pub struct SubjectWarp {
    /// The smooth non-linear field, in voxels of the output grid.
    pub field: SmoothField,
    /// In-plane rotation (radians).
    pub theta: f64,
    /// Isotropic scaling.
    pub scale: f64,
    /// Translation (voxels of the output grid).
    pub translation: [f64; 3],
    /// Rotation/scaling centre (anatomy voxel coordinates): the output grid's centre.
    pub centre: [f64; 3],
    /// Output grid origin in anatomy voxel coordinates.
    pub offset: [f64; 3],
    /// Shift from an output voxel index to where the fields are evaluated (see
    /// [`REFERENCE_MM`]): `0.5 − REFERENCE_MM / (2·voxel)`, 0 at 2 mm.
    pub anchor: f64,
}

impl SubjectWarp {
    fn draw(voxel_mm: f64, opts: &SimOptions, rng: &mut ChaCha8Rng) -> Self {
        let dims = opts.dims;
        let fopts = FieldOptions {
            max_displacement: opts.field.max_displacement / voxel_mm,
            ..opts.field
        };
        let field = SmoothField::random(dims, &fopts, rng);
        let theta = rng.gen_range(-1.0..=1.0) * opts.max_rotation_deg.to_radians();
        let scale = 1.0 + rng.gen_range(-1.0..=1.0) * opts.max_scale;
        let tv = opts.max_translation_mm / voxel_mm;
        let translation = [
            rng.gen_range(-1.0..=1.0) * tv,
            rng.gen_range(-1.0..=1.0) * tv,
            rng.gen_range(-1.0..=1.0) * tv * 0.5,
        ];
        let centre = [0, 1, 2].map(|a| opts.offset[a] + (dims[a] as f64 - 1.0) / 2.0);
        Self {
            field,
            theta,
            scale,
            translation,
            centre,
            offset: opts.offset,
            anchor: 0.5 - REFERENCE_MM / (2.0 * voxel_mm),
        }
    }

    /// Where the per-subject fields (deformation, bias) are evaluated for output position `p`.
    pub fn field_point(&self, p: [f64; 3]) -> [f64; 3] {
        p.map(|x| x + self.anchor)
    }

    /// The anatomy voxel coordinates that output position `p` (voxel coordinates of the
    /// output grid, not necessarily integer) samples: `c + s·R·(offset + p + u − c) + t`.
    pub fn source(&self, p: [f64; 3]) -> [f64; 3] {
        let u = self.field.at(self.field_point(p));
        let c = self.centre;
        let q = [0, 1, 2].map(|a| self.offset[a] + p[a] + u[a] - c[a]);
        let (ct, st, s, t) = (
            self.theta.cos(),
            self.theta.sin(),
            self.scale,
            self.translation,
        );
        [
            c[0] + s * (ct * q[0] - st * q[1]) + t[0],
            c[1] + s * (st * q[0] + ct * q[1]) + t[1],
            c[2] + s * q[2] + t[2],
        ]
    }
}

fn subject_rng(opts: &SimOptions, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(index + 1);
    rng
}

/// The spatial transform of subject `index` on `anatomy` (what [`simulate_subject`] applies).
pub fn subject_warp(anatomy: &Anatomy, opts: &SimOptions, index: u64) -> SubjectWarp {
    SubjectWarp::draw(anatomy.voxel_mm(), opts, &mut subject_rng(opts, index))
}

/// Simulates subject `index` (its randomness depends only on `opts.seed` and `index`).
pub fn simulate_subject(anatomy: &Anatomy, opts: &SimOptions, index: u64) -> Subject {
    let mut rng = subject_rng(opts, index);
    let dims = opts.dims;
    let warp = SubjectWarp::draw(anatomy.voxel_mm(), opts, &mut rng);
    let mut bias = Sines::random(4, 1.0, 0.5, &mut rng);
    let peak = bias.max_abs();
    if peak > 0.0 {
        bias.terms.iter_mut().for_each(|term| term.amp /= peak);
    }
    let tissues = [
        jitter_tissue(&CSF, opts.jitter, &mut rng),
        jitter_tissue(&GM, opts.jitter, &mut rng),
        jitter_tissue(&WM, opts.jitter, &mut rng),
    ];
    let sig = |te: f64| tissues.map(|ti| spin_echo(&ti, opts.tr, te));
    let (s_pd, s_t2) = (sig(opts.te_pd), sig(opts.te_t2));

    let fdims = dims.map(|d| d as f64);
    let (gm, wm, csf) = (anatomy.gm.view(), anatomy.wm.view(), anatomy.csf.view());
    let shape = (dims[0], dims[1], dims[2]);
    let mut pd = Array3::<f32>::zeros(shape);
    let mut t2 = Array3::<f32>::zeros(shape);
    let mut mask = Array3::<f32>::zeros(shape);
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            for k in 0..dims[2] {
                let p = [i as f64, j as f64, k as f64];
                let a = warp.source(p);
                let o = Outside::Value(0.0);
                let fr = [
                    f64::from(trilinear(&csf, a[0], a[1], a[2], o)),
                    f64::from(trilinear(&gm, a[0], a[1], a[2], o)),
                    f64::from(trilinear(&wm, a[0], a[1], a[2], o)),
                ];
                let brain = fr[0] + fr[1] + fr[2];
                let b = (opts.bias * bias.value(warp.field_point(p), fdims)).exp();
                let e1 = b * (fr[0] * s_pd[0] + fr[1] * s_pd[1] + fr[2] * s_pd[2]);
                let e2 = b * (fr[0] * s_t2[0] + fr[1] * s_t2[1] + fr[2] * s_t2[2]);
                if brain > 0.5 {
                    pd[[i, j, k]] = e1 as f32;
                    t2[[i, j, k]] = e2 as f32;
                    mask[[i, j, k]] = 1.0;
                }
            }
        }
    }
    // Rician noise (magnitude of complex Gaussian noise), then skull-stripping: the background
    // stays exactly 0, as in skull-stripped data.
    let sigma = opts.noise;
    for (v, m) in pd.iter_mut().zip(mask.iter()) {
        let (n1, n2): (f64, f64) = (
            StandardNormal.sample(&mut rng),
            StandardNormal.sample(&mut rng),
        );
        if *m > 0.0 {
            *v = (((f64::from(*v) + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt() * opts.units)
                as f32;
        }
    }
    for (v, m) in t2.iter_mut().zip(mask.iter()) {
        let (n1, n2): (f64, f64) = (
            StandardNormal.sample(&mut rng),
            StandardNormal.sample(&mut rng),
        );
        if *m > 0.0 {
            *v = (((f64::from(*v) + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt() * opts.units)
                as f32;
        }
    }
    let header = reslice_header(&anatomy.header, [1.0; 3], opts.offset);
    let with_descr = |text: &str| {
        let mut h = header.clone();
        let _ = h.set_description_str(text);
        h
    };
    Subject {
        pd: Volume {
            data: pd,
            header: with_descr(&format!(
                "dicyc sim PD TR{} TE{} seed{} #{index}",
                opts.tr, opts.te_pd, opts.seed
            )),
        },
        t2: Volume {
            data: t2,
            header: with_descr(&format!(
                "dicyc sim T2 TR{} TE{} seed{} #{index}",
                opts.tr, opts.te_t2, opts.seed
            )),
        },
        mask: Volume {
            data: mask,
            header: with_descr("dicyc brain mask"),
        },
    }
}

/// The output grid of the default benchmark on an anatomy: `xy` in-plane (centred on the
/// grid) and `slices` axial slices centred on the brain.
pub fn centred_grid(anatomy: &Anatomy, xy: [usize; 2], slices: usize) -> ([usize; 3], [f64; 3]) {
    let d = anatomy.dims();
    let brain = anatomy.brain();
    let zs: Vec<usize> = (0..d[2])
        .filter(|&k| brain.index_axis(Axis(2), k).iter().any(|&v| v > 0.5))
        .collect();
    let zc = match (zs.first(), zs.last()) {
        (Some(a), Some(b)) => (a + b) as f64 / 2.0,
        _ => (d[2] as f64 - 1.0) / 2.0,
    };
    let off = [
        (d[0] as f64 - xy[0] as f64) / 2.0,
        (d[1] as f64 - xy[1] as f64) / 2.0,
        (zc - (slices as f64 - 1.0) / 2.0).round(),
    ];
    (
        [xy[0], xy[1], slices],
        [off[0].round(), off[1].round(), off[2]],
    )
}

/// The grid on `target` that covers the same field of view as `reference`'s
/// [`centred_grid`] (`xy`, `slices` in voxels of `target`): its centre is at the reference
/// grid's centre in world mm, so a 1 mm benchmark depicts exactly the slab of the 2 mm one
/// (whose placement depends on the brain's extent on the 2 mm grid). The reference grid has
/// `xy`, `slices` scaled by the voxel ratio (rounded, at least 1).
pub fn matching_grid(
    reference: &Anatomy,
    target: &Anatomy,
    xy: [usize; 2],
    slices: usize,
) -> ([usize; 3], [f64; 3]) {
    let ratio = target.voxel_mm() / reference.voxel_mm();
    let scaled = |n: usize| ((n as f64 * ratio).round() as usize).max(1);
    let (rd, ro) = centred_grid(reference, [scaled(xy[0]), scaled(xy[1])], scaled(slices));
    let centre = [0, 1, 2].map(|a| ro[a] + (rd[a] as f64 - 1.0) / 2.0);
    let world = voxel_to_world(&reference.header, centre);
    let c = world_to_voxel(&target.header, world);
    let dims = [xy[0], xy[1], slices];
    let off = [0, 1, 2].map(|a| (c[a] - (dims[a] as f64 - 1.0) / 2.0).round());
    (dims, off)
}

fn sform(h: &nifti::NiftiHeader) -> ([[f64; 3]; 3], [f64; 3]) {
    let rows = [h.srow_x, h.srow_y, h.srow_z];
    (
        rows.map(|r| [f64::from(r[0]), f64::from(r[1]), f64::from(r[2])]),
        rows.map(|r| f64::from(r[3])),
    )
}

fn voxel_to_world(h: &nifti::NiftiHeader, p: [f64; 3]) -> [f64; 3] {
    let (m, t) = sform(h);
    [0, 1, 2].map(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + t[r])
}

fn world_to_voxel(h: &nifti::NiftiHeader, w: [f64; 3]) -> [f64; 3] {
    let (m, t) = sform(h);
    let d = [w[0] - t[0], w[1] - t[1], w[2] - t[2]];
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    // Cramer's rule: column `a` of the matrix replaced by `d`.
    [0, 1, 2].map(|a| {
        let c = |r: usize, k: usize| if k == a { d[r] } else { m[r][k] };
        (c(0, 0) * (c(1, 1) * c(2, 2) - c(1, 2) * c(2, 1))
            - c(0, 1) * (c(1, 0) * c(2, 2) - c(1, 2) * c(2, 0))
            + c(0, 2) * (c(1, 0) * c(2, 1) - c(1, 1) * c(2, 0)))
            / det
    })
}

/// Benchmark layout and split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkManifest {
    /// Simulation settings.
    pub options: SimOptions,
    /// Subjects in `train/`.
    pub train: usize,
    /// Subjects in `test/`.
    pub test: usize,
    /// Where the anatomy came from.
    pub anatomy: String,
    /// Voxel size (mm, isotropic) of the volumes.
    pub voxel_mm: f64,
    /// Domains: A = `pd`, B = `t2`.
    pub domains: [String; 2],
}

/// Writes a benchmark: `<out>/{train,test}/{pd,t2,mask}/subject-XXX.nii.gz` and
/// `<out>/benchmark.json`. Subjects `0..train` go to train, the next `test` to test.
pub fn write_benchmark(
    anatomy: &Anatomy,
    opts: &SimOptions,
    train: usize,
    test: usize,
    out: &Path,
    anatomy_name: &str,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    for i in 0..(train + test) {
        let split = if i < train { "train" } else { "test" };
        let sub = simulate_subject(anatomy, opts, i as u64);
        let name = format!("subject-{i:03}.nii.gz");
        for (dom, v) in [("pd", &sub.pd), ("t2", &sub.t2), ("mask", &sub.mask)] {
            nifti_io::write(&out.join(split).join(dom).join(&name), v)?;
        }
        progress.inc(1);
    }
    let manifest = BenchmarkManifest {
        options: opts.clone(),
        train,
        test,
        anatomy: anatomy_name.to_string(),
        voxel_mm: anatomy.voxel_mm(),
        domains: ["pd".into(), "t2".into()],
    };
    let path = out.join("benchmark.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
