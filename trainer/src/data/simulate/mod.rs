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

mod anatomy;
mod benchmark;
mod grid;
mod tissue;

pub use anatomy::{fill_holes_axial, Anatomy};
pub use benchmark::{write_benchmark, BenchmarkManifest};
pub use grid::{centred_grid, matching_grid};
pub use tissue::{spin_echo, Tissue, CSF, GM, WM};

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::deform::{FieldOptions, Sines, SmoothField};
use crate::data::resample::{trilinear, Outside};
use crate::data::volume::{reslice_header, spacing_of, Volume};

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
