//! `trainer data …`: build the simulated IXI-like benchmark and the deformation experiment.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::deform::{FieldOptions, SmoothField};
use crate::data::nifti_io::{self, list_volumes};
use crate::data::resample::Outside;
use crate::data::simulate::{self, Anatomy, SimOptions};
use crate::data::template;

/// `trainer data` arguments.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to build.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `trainer data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Fetch the MNI ICBM152 2009a template (nilearn wheel via pip) into the cache.
    FetchTemplate,
    /// Simulate the IXI-like PD/T2 benchmark from the MNI ICBM152 2009a anatomy.
    Simulate(SimulateArgs),
    /// Apply one seeded, smooth, domain-specific deformation to a domain of a dataset and
    /// write the source-aligned ground truths (the paper's Table 2 experiment).
    Deform(DeformArgs),
}

/// `trainer data simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder (created; must not already hold a benchmark unless --force).
    #[arg(long, default_value = "data/ixi-sim")]
    pub out: PathBuf,
    /// Template folder (default: the cache, ${DICYC_CACHE:-~/.cache/dicyc}/mni_icbm152_2009a).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Do not download the template when it is not cached: fail instead.
    #[arg(long)]
    pub no_fetch: bool,
    /// Seed of all randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training subjects.
    #[arg(long, default_value_t = 38)]
    pub train: usize,
    /// Test subjects.
    #[arg(long, default_value_t = 28)]
    pub test: usize,
    /// Voxel size in mm: 2 (the template's 1 mm maps block-averaged 2×2×2; 96×112 in-plane)
    /// or 1 (the template at full resolution, as the paper's IXI; 192×224 in-plane). The
    /// same seed gives the same subjects at either size.
    #[arg(long, default_value_t = 2, value_parser = parse_voxel_mm)]
    pub voxel_mm: usize,
    /// Axial slices per volume, centred on the brain (default: a 64 mm slab, i.e. 32 at 2 mm,
    /// 64 at 1 mm).
    #[arg(long)]
    pub slices: Option<usize>,
    /// A quick demo/test set: 4 train, 2 test, a 24 mm slab (12 slices at 2 mm; overrides
    /// --train/--test/--slices).
    #[arg(long)]
    pub small: bool,
    /// Use a synthetic sphere phantom instead of the template (no download; for tests).
    #[arg(long)]
    pub phantom: bool,
    /// Overwrite an existing benchmark in --out.
    #[arg(long)]
    pub force: bool,
}

/// `trainer data deform`.
#[derive(Debug, Args)]
pub struct DeformArgs {
    /// Dataset to deform (layout `<data>/{train,test}/<domain>/*.nii.gz`, e.g. from `data simulate`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output dataset folder (a new folder; the input is never modified).
    #[arg(long)]
    pub out: PathBuf,
    /// Domain whose volumes are deformed (the target domain B).
    #[arg(long, default_value = "t2")]
    pub domain: String,
    /// The other domain (A), copied unchanged.
    #[arg(long, default_value = "pd")]
    pub other: String,
    /// Seed of the field (and of the jitter).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest displacement of the shared field, in mm.
    #[arg(long, default_value_t = 8.0)]
    pub max_displacement_mm: f64,
    /// Highest in-plane frequency of the field (cycles per field of view).
    #[arg(long, default_value_t = 1.0)]
    pub max_freq: f64,
    /// Per-volume jitter as a fraction of the shared field's strength (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub jitter: f64,
    /// Overwrite an existing output folder's files.
    #[arg(long)]
    pub force: bool,
}

/// Runs `trainer data …`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::FetchTemplate => {
            let d = template::locate(None, true)?;
            println!("template ready: {}", d.display());
            Ok(())
        }
        DataCommand::Simulate(a) => simulate_cmd(a),
        DataCommand::Deform(a) => deform_cmd(a),
    }
}

fn bar(n: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Default slab thickness (mm) of `data simulate`, and of `--small`.
const SLAB_MM: usize = 64;
const SMALL_SLAB_MM: usize = 24;

/// `--voxel-mm`: 1 or 2 (the template is 1 mm; other sizes are not integer block means).
pub fn parse_voxel_mm(s: &str) -> Result<usize, String> {
    match s.trim() {
        "1" | "1.0" => Ok(1),
        "2" | "2.0" => Ok(2),
        _ => Err(format!(
            "{s:?} is not a supported voxel size: use 1 (the template's own 1 mm grid) or 2 (2×2×2 block means)"
        )),
    }
}

fn simulate_cmd(a: &SimulateArgs) -> Result<()> {
    let t0 = Instant::now();
    let v = a.voxel_mm;
    let (train, test, slices) = if a.small {
        (4, 2, SMALL_SLAB_MM / v)
    } else {
        (a.train, a.test, a.slices.unwrap_or(SLAB_MM / v))
    };
    if a.phantom && v != 2 {
        bail!("--phantom is a 2 mm anatomy: it cannot be combined with --voxel-mm {v}");
    }
    if train + test == 0 || slices == 0 {
        bail!("--train + --test and --slices must be positive");
    }
    if a.out.join("benchmark.json").exists() && !a.force {
        bail!(
            "{} already holds a benchmark (benchmark.json): choose another --out or pass --force",
            a.out.display()
        );
    }
    // The 2 mm grid is the reference: a 1 mm benchmark covers exactly its field of view
    // (192×224 mm in-plane, the slab centred where the 2 mm one is).
    let (anatomy, name, (dims, offset)) = if a.phantom {
        let anatomy = Anatomy::phantom([48, 56, 40]);
        let grid = simulate::centred_grid(&anatomy, [48, 56], slices.min(anatomy.dims()[2]));
        (anatomy, "sphere phantom".to_string(), grid)
    } else {
        let dir = template::locate(a.template.as_deref(), !a.no_fetch)?;
        eprintln!("anatomy: {}", dir.display());
        let name = format!("MNI ICBM152 2009a (nilearn 0.14.1), {v} mm");
        let reference = Anatomy::from_template(&dir, 2)?;
        if v == 2 {
            let grid =
                simulate::centred_grid(&reference, [96, 112], slices.min(reference.dims()[2]));
            (reference, name, grid)
        } else {
            let anatomy = Anatomy::from_template(&dir, v)?;
            let xy = [96 * 2 / v, 112 * 2 / v];
            let slices = slices.min(anatomy.dims()[2]);
            let grid = simulate::matching_grid(&reference, &anatomy, xy, slices);
            (anatomy, name, grid)
        }
    };
    let opts = SimOptions::ixi_like(a.seed, dims, offset);
    let pb = bar((train + test) as u64, "simulating subjects");
    simulate::write_benchmark(&anatomy, &opts, train, test, &a.out, &name, &pb)?;
    pb.finish();
    println!(
        "wrote {train} train + {test} test subjects ({}×{}×{} at {} mm, PD TE {} / T2 TE {} ms, TR {} ms) to {} in {:.1} s",
        dims[0],
        dims[1],
        dims[2],
        anatomy.voxel_mm(),
        opts.te_pd,
        opts.te_t2,
        opts.tr,
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
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

fn deform_cmd(a: &DeformArgs) -> Result<()> {
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
    let pb = bar(total as u64, "deforming");
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
    let mpath = a.out.join("deformation.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", mpath.display()))?;
    if let Ok(b) = std::fs::read(a.data.join("benchmark.json")) {
        std::fs::write(a.out.join("benchmark.json"), b).context("cannot copy benchmark.json")?;
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
