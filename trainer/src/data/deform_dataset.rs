//! The deformation experiment's data set (docs/DATA.md): a copy of a benchmark whose target
//! domain is warped by one smooth field shared by every volume (the domain-specific
//! deformation of the paper's Table 2), with the ground truths aligned with each source, the
//! masks in both geometries and `deformation.json` recording the field and what each volume
//! got. The field itself is [`super::deform`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dicyc_volume::atomic::write_atomic;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::deform::{FieldOptions, SmoothField};
use super::nifti_io::{self, list_volumes};
use super::resample::Outside;

/// What to deform and how (`trainer data deform`'s options).
#[derive(Debug, Clone)]
pub struct DeformOptions {
    /// Dataset to deform (`<data>/{train,test}/<domain>/*.nii.gz`).
    pub data: PathBuf,
    /// Output dataset folder (never the input).
    pub out: PathBuf,
    /// Domain whose volumes are deformed (the target domain B).
    pub domain: String,
    /// The other domain (A), copied unchanged.
    pub other: String,
    /// Seed of the field (and of the jitter).
    pub seed: u64,
    /// Largest displacement of the shared field, in mm.
    pub max_displacement_mm: f64,
    /// Highest in-plane frequency of the field (cycles per field of view).
    pub max_freq: f64,
    /// Per-volume jitter as a fraction of the shared field's strength (0 = none).
    pub jitter: f64,
    /// Overwrite an existing output folder's files.
    pub force: bool,
}

#[derive(Serialize)]
struct DeformManifest<'a> {
    seed: u64,
    domain: &'a str,
    other: &'a str,
    max_displacement_mm: f64,
    jitter: f64,
    field: &'a SmoothField,
    options: FieldOptions,
    /// Bound of ‖∇u‖ of the shared part (`max_gradient / (1 + jitter)`: room for the jitter).
    shared_gradient_bound: f64,
    volumes: Vec<VolumeRecord>,
    note: &'static str,
}

/// What was applied to one deformed volume (`deformation.json`, `volumes`).
#[derive(Serialize)]
struct VolumeRecord {
    split: &'static str,
    file: String,
    dims: [usize; 3],
    /// The jitter's RNG: ChaCha8 seeded with `jitter_seed`, stream `jitter_stream` (only with
    /// `--jitter`); the same seed reproduces the same per-volume field.
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter_stream: Option<u64>,
    /// Factor the shared field was scaled down by on this grid to keep its ‖∇u‖ within
    /// `shared_gradient_bound` (1 = the shared field as drawn).
    shared_scale: f64,
    /// Analytic bound of ‖∇u‖ of the applied field (< 1: Jacobian determinant > 0).
    gradient_bound: f64,
    /// Smallest Jacobian determinant over the volume's in-plane voxel centres.
    min_jacobian: f64,
    /// The applied field, when it is not the shared one as is (jittered or scaled).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<SmoothField>,
}

fn splits(data: &Path) -> Vec<&'static str> {
    ["train", "test"]
        .into_iter()
        .filter(|s| data.join(s).is_dir())
        .collect()
}

/// The gradient bound of the shared part of the field: `max_gradient / (1 + jitter)`, so
/// that a jitter `jitter` times as strong always has room under `max_gradient` (otherwise
/// a shared field at the bound would leave the jitter scaled to nothing).
fn shared_gradient_bound(opts: &FieldOptions, jitter: f64) -> f64 {
    opts.max_gradient / (1.0 + jitter)
}

/// The field applied to one volume of in-plane grid `dims`: the shared field (frequencies are
/// per field of view, amplitudes in voxels), scaled down when this grid would raise its
/// gradient bound above `bound` (a smaller grid steepens the same sinusoids), then the jitter
/// when asked (kept under `opts.max_gradient` in all). Returns the field and the factor the
/// shared part was scaled by.
fn volume_field(
    shared: &SmoothField,
    dims: [usize; 3],
    opts: &FieldOptions,
    bound: f64,
    jitter: Option<(f64, &mut ChaCha8Rng)>,
) -> (SmoothField, f64) {
    let mut field = SmoothField {
        dims,
        comp: shared.comp.clone(),
    };
    // The tolerance keeps the grid the field was drawn on (already limited, up to rounding)
    // from counting as rescaled.
    let before = field.gradient_bound();
    let scale = if before > bound * (1.0 + 1e-9) {
        field.limit_gradient(bound);
        field.gradient_bound() / before
    } else {
        1.0
    };
    if let Some((fraction, rng)) = jitter {
        field = field.jittered(fraction, opts, rng);
        // The jitter is drawn within the room left; this only guards the guarantee.
        field.limit_gradient(opts.max_gradient);
    }
    (field, scale)
}

/// Writes the deformed copy of a benchmark (see the module's documentation); prints what it
/// did and warns about volumes the field could not treat like the first.
pub fn deform_dataset(a: &DeformOptions, pb: ProgressBar) -> Result<()> {
    let t0 = Instant::now();
    let same = |x: &Path, y: &Path| match (x.canonicalize(), y.canonicalize()) {
        (Ok(p), Ok(q)) => p == q,
        _ => false,
    };
    if same(&a.data, &a.out) {
        bail!("--out must differ from --data: the input dataset is never modified");
    }
    if a.out.exists() && std::fs::read_dir(&a.out).is_ok_and(|mut d| d.next().is_some()) && !a.force
    {
        bail!(
            "{} exists and is not empty: choose another --out or pass --force",
            a.out.display()
        );
    }
    if !(a.jitter >= 0.0 && a.jitter.is_finite()) {
        bail!(
            "--jitter must be a fraction ≥ 0 of the shared field (got {})",
            a.jitter
        );
    }
    let sp = splits(&a.data);
    if sp.is_empty() {
        bail!(
            "{} has neither train/ nor test/ (expected <data>/{{train,test}}/<domain>/*.nii.gz)",
            a.data.display()
        );
    }
    // The field is drawn on the grid of the first volume found. It is defined per field of
    // view and in voxels, so volumes of other sizes get the same relative field, scaled down
    // where their grid would steepen it past the gradient bound (see `volume_field`).
    let first = list_volumes(&a.data.join(sp[0]).join(&a.domain))
        .with_context(|| format!("domain '{}' of {}", a.domain, a.data.display()))?;
    let v0 = nifti_io::read_volume(&first[0])?;
    let sp0 = v0.spacing();
    let d = v0.dim();
    let opts = FieldOptions {
        max_displacement: a.max_displacement_mm / f64::from(sp0[0].min(sp0[1])),
        max_gradient: 0.5,
        terms: 6,
        max_freq: a.max_freq,
        max_freq_z: 0.0,
        in_plane: true,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let mut shared = SmoothField::random([d.0, d.1, d.2], &opts, &mut rng);
    let bound = shared_gradient_bound(&opts, a.jitter);
    shared.limit_gradient(bound);
    let mut total = 0;
    for s in &sp {
        total += list_volumes(&a.data.join(s).join(&a.domain)).map_or(0, |v| v.len());
    }
    pb.set_length(total as u64);
    let mut count = 0usize;
    let mut records = Vec::with_capacity(total);
    let mut unpartnered: Vec<String> = Vec::new();
    let (mut regridded, mut respaced) = (0usize, 0usize);
    for s in &sp {
        let dom = list_volumes(&a.data.join(s).join(&a.domain))?;
        for path in &dom {
            let name = path.file_name().context("volume without a file name")?;
            let v = nifti_io::read_volume(path)?;
            let dv = v.dim();
            let spv = v.spacing();
            if (spv[0] - sp0[0]).abs() > 1e-4 || (spv[1] - sp0[1]).abs() > 1e-4 {
                respaced += 1;
            }
            let stream = 1 + count as u64;
            let mut jr = ChaCha8Rng::seed_from_u64(a.seed);
            jr.set_stream(stream);
            let (field, shared_scale) = volume_field(
                &shared,
                [dv.0, dv.1, dv.2],
                &opts,
                bound,
                (a.jitter > 0.0).then_some((a.jitter, &mut jr)),
            );
            if shared_scale < 1.0 {
                regridded += 1;
            }
            let warped = field.warp(&v.data.view(), Outside::Value(0.0));
            nifti_io::write_volume(
                &a.out.join(s).join(&a.domain).join(name),
                &warped,
                &v.header,
            )?;
            // The undeformed volume is the ground truth of other → domain (aligned with the
            // other domain's source), whether or not that source is present.
            if *s == "test" {
                nifti_io::write(
                    &a.out.join(s).join(format!("gt-{}", a.domain)).join(name),
                    &v,
                )?;
            }
            // The other domain's volume of the same name, warped by the same field: the
            // ground truth for domain(deformed) → other, aligned with the deformed source.
            let other = a.data.join(s).join(&a.other).join(name);
            if other.exists() {
                let o = nifti_io::read_volume(&other)?;
                nifti_io::write(&a.out.join(s).join(&a.other).join(name), &o)?;
                if *s == "test" {
                    let ow = field.warp(&o.data.view(), Outside::Value(0.0));
                    nifti_io::write_volume(
                        &a.out.join(s).join(format!("gt-{}", a.other)).join(name),
                        &ow,
                        &o.header,
                    )?;
                }
            } else if *s == "test" {
                unpartnered.push(name.to_string_lossy().into_owned());
            }
            let mask = a.data.join(s).join("mask").join(name);
            if mask.exists() {
                let m = nifti_io::read_volume(&mask)?;
                nifti_io::write(&a.out.join(s).join("mask").join(name), &m)?;
                let mw = field.warp(&m.data.view(), Outside::Value(0.0)).mapv(|x| {
                    if x >= 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                });
                nifti_io::write_volume(
                    &a.out.join(s).join(format!("mask-{}", a.domain)).join(name),
                    &mw,
                    &m.header,
                )?;
            }
            let changed = a.jitter > 0.0 || shared_scale < 1.0;
            records.push(VolumeRecord {
                split: s,
                file: name.to_string_lossy().into_owned(),
                dims: [dv.0, dv.1, dv.2],
                jitter_seed: (a.jitter > 0.0).then_some(a.seed),
                jitter_stream: (a.jitter > 0.0).then_some(stream),
                shared_scale,
                gradient_bound: field.gradient_bound(),
                // In-plane and the same on every slice: one slice's grid is every slice's.
                min_jacobian: SmoothField {
                    dims: [dv.0, dv.1, 1],
                    comp: field.comp.clone(),
                }
                .min_jacobian_on_grid(),
                field: changed.then_some(field),
            });
            count += 1;
            pb.inc(1);
        }
        // Other-domain volumes without a partner in the deformed domain are copied too.
        if let Ok(others) = list_volumes(&a.data.join(s).join(&a.other)) {
            for o in others {
                let dest = a
                    .out
                    .join(s)
                    .join(&a.other)
                    .join(o.file_name().context("no file name")?);
                if !dest.exists() {
                    nifti_io::write(&dest, &nifti_io::read_volume(&o)?)?;
                }
            }
        }
    }
    pb.finish();
    if !unpartnered.is_empty() {
        eprintln!(
            "warning: {} test volume(s) of '{}' have no '{}' volume of the same name (first: {}): their gt-{} is not written, so {}→{} cannot be scored for them",
            unpartnered.len(),
            a.domain,
            a.other,
            unpartnered[0],
            a.other,
            a.domain.to_uppercase(),
            a.other.to_uppercase()
        );
    }
    if regridded > 0 {
        eprintln!(
            "warning: {regridded} volume(s) are on a smaller in-plane grid than {} ({}×{}): the shared field was scaled down on them to keep its Jacobian determinant > 0 (shared_scale in deformation.json)",
            first[0].display(),
            d.0,
            d.1
        );
    }
    if respaced > 0 {
        eprintln!(
            "warning: {respaced} volume(s) have another in-plane voxel size than {} ({:.3}×{:.3} mm): the field is in voxels, so their displacement in mm differs",
            first[0].display(),
            sp0[0],
            sp0[1]
        );
    }
    let min_jac = records
        .iter()
        .map(|r| r.min_jacobian)
        .fold(f64::INFINITY, f64::min);
    let manifest = DeformManifest {
        seed: a.seed,
        domain: &a.domain,
        other: &a.other,
        max_displacement_mm: a.max_displacement_mm,
        jitter: a.jitter,
        field: &shared,
        options: opts,
        shared_gradient_bound: bound,
        volumes: records,
        note: "one field shared by every volume of the domain (domain-specific deformation), on the grid of the first volume; volumes[].field is the field applied where it differs (jitter, or scaled down on a smaller grid); gt-<domain> = undeformed (ground truth for other→domain), gt-<other> = other warped by the same field (ground truth for domain→other); mask = aligned with <other>, mask-<domain> = aligned with the deformed domain",
    };
    write_atomic(
        &a.out.join("deformation.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    if let Ok(b) = std::fs::read(a.data.join("benchmark.json")) {
        write_atomic(&a.out.join("benchmark.json"), &b)?;
    }
    println!(
        "deformed {count} '{}' volumes with one shared field (max {:.1} mm on the first grid, min Jacobian det {:.3} over all volumes) into {} in {:.1} s",
        a.domain,
        shared.max_displacement_on_grid() * f64::from(sp0[0].min(sp0[1])),
        min_jac,
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
