//! The study's results: per-seed means over test volumes, then mean ± sd over seeds, paired
//! per-volume wins against CycleGAN, the targets, and the Markdown page and `results.json`.
//! Everything here is computed from the files on disk; nothing is typed in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::cell::{cell_dir, load_eval, TAKEN_FROM};
use super::evaluate::{EvalRecord, VolumeScore, DIRECTIONS};
use super::plan::{data_dir, variant, Cell, Setting, StudyPlan, VARIANTS};
use crate::eval::metrics::mean_sd;

/// A metric the page reports: key, column title, accessor, whether higher is better.
pub struct Metric {
    /// Key in `results.json`.
    pub key: &'static str,
    /// Column title.
    pub title: &'static str,
    /// The value of one volume.
    pub get: fn(&VolumeScore) -> f64,
    /// Higher is better (`None`: neither, e.g. a ratio whose ideal is 1).
    pub higher_better: Option<bool>,
}

/// The page's metrics, in column order.
pub const METRICS: &[Metric] = &[
    Metric {
        key: "ssim_window",
        title: "SSIM (Gaussian 11/1.5)",
        get: |v| v.metrics.ssim_window,
        higher_better: Some(true),
    },
    Metric {
        key: "ssim_global",
        title: "SSIM (global, paper's)",
        get: |v| v.metrics.ssim_global,
        higher_better: Some(true),
    },
    Metric {
        key: "mse_z",
        title: "MSE (z-units)",
        get: |v| v.alignment.mse_z,
        higher_better: Some(false),
    },
    Metric {
        key: "psnr_z",
        title: "PSNR (z-units, dB)",
        get: |v| v.alignment.psnr_z,
        higher_better: Some(true),
    },
    Metric {
        key: "mse",
        title: "MSE (source units)",
        get: |v| v.metrics.mse,
        higher_better: Some(false),
    },
    Metric {
        key: "nmi_source",
        title: "NMI(source, output)",
        get: |v| v.alignment.nmi_source_pred,
        higher_better: Some(true),
    },
    Metric {
        key: "displacement_mm",
        title: "residual displacement (mm)",
        get: |v| v.alignment.displacement_mm,
        higher_better: Some(false),
    },
    Metric {
        key: "gradient_ratio",
        title: "gradient energy / truth's",
        get: |v| v.alignment.gradient_ratio,
        higher_better: None,
    },
];

fn metric(key: &str) -> &'static Metric {
    METRICS.iter().find(|m| m.key == key).unwrap_or(&METRICS[0])
}

/// Where a cell stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "detail")]
pub enum CellStatus {
    /// Every point evaluated.
    Done,
    /// Some points evaluated (or none yet) and no failure recorded.
    Pending,
    /// The last attempt failed with this error.
    Failed(String),
}

/// A cell and what is on disk for it.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// Its state.
    pub status: CellStatus,
    /// Evaluations recorded, by step.
    #[serde(skip)]
    pub evals: BTreeMap<u64, EvalRecord>,
    /// Steps evaluated.
    pub steps: Vec<u64>,
}

/// Reads every cell of the plan.
pub fn load_cells(study: &Path, plan: &StudyPlan) -> Result<Vec<CellResult>> {
    let mut out = Vec::new();
    for cell in &plan.cells {
        let dir = cell_dir(study, cell);
        let mut evals = BTreeMap::new();
        for &p in &plan.spec.points {
            if let Some(r) = load_eval(&dir, p)? {
                evals.insert(p, r);
            }
        }
        let failed = dir.join("failed.json");
        let status = if evals.len() == plan.spec.points.len() {
            CellStatus::Done
        } else if failed.exists() {
            let text = std::fs::read_to_string(&failed).unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(text);
            CellStatus::Failed(msg)
        } else {
            CellStatus::Pending
        };
        out.push(CellResult {
            cell: cell.clone(),
            status,
            steps: evals.keys().copied().collect(),
            evals,
        });
    }
    Ok(out)
}

/// Mean and sd over volumes of a metric in one direction of a record (NaN volumes skipped).
fn volume_mean_sd(r: &EvalRecord, direction: usize, m: &Metric) -> (f64, f64) {
    let v: Vec<f64> = r.directions[direction]
        .volumes
        .iter()
        .map(m.get)
        .filter(|x| x.is_finite())
        .collect();
    mean_sd(&v)
}

fn volume_mean(r: &EvalRecord, direction: usize, m: &Metric) -> f64 {
    volume_mean_sd(r, direction, m).0
}

/// One aggregated number: the per-seed volume means and their mean ± sd.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    /// Variant.
    pub variant: String,
    /// Setting.
    pub setting: Setting,
    /// Evaluation point.
    pub step: u64,
    /// "PD→T2" or "T2→PD".
    pub direction: String,
    /// Metric key.
    pub metric: String,
    /// (seed, mean over volumes).
    pub per_seed: Vec<(u64, f64)>,
    /// (seed, sd over volumes).
    pub per_seed_volume_sd: Vec<(u64, f64)>,
    /// Mean over seeds.
    pub mean: f64,
    /// Sample sd over seeds (0 for one seed).
    pub sd: f64,
}

fn aggregate(
    cells: &[CellResult],
    variant: &str,
    setting: Setting,
    step: u64,
    direction: usize,
    m: &Metric,
) -> Option<Aggregate> {
    let both: Vec<(u64, (f64, f64))> = cells
        .iter()
        .filter(|c| c.cell.variant == variant && c.cell.setting == setting)
        .filter_map(|c| {
            c.evals
                .get(&step)
                .map(|r| (c.cell.seed, volume_mean_sd(r, direction, m)))
        })
        .collect();
    if both.is_empty() {
        return None;
    }
    let per_seed: Vec<(u64, f64)> = both.iter().map(|(s, (m, _))| (*s, *m)).collect();
    let per_seed_volume_sd: Vec<(u64, f64)> = both.iter().map(|(s, (_, sd))| (*s, *sd)).collect();
    let values: Vec<f64> = per_seed.iter().map(|p| p.1).collect();
    let (mean, sd) = mean_sd(&values);
    Some(Aggregate {
        variant: variant.to_string(),
        setting,
        step,
        direction: DIRECTIONS[direction].to_string(),
        metric: m.key.to_string(),
        per_seed,
        per_seed_volume_sd,
        mean,
        sd,
    })
}

/// A DicycleGAN variant against CycleGAN, seed by seed (same seed, same test volumes).
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    /// Variant.
    pub variant: String,
    /// Setting.
    pub setting: Setting,
    /// Direction.
    pub direction: String,
    /// Evaluation point.
    pub step: u64,
    /// Seeds with both cells evaluated.
    pub seeds: Vec<u64>,
    /// Per seed: variant's windowed SSIM minus CycleGAN's (volume means).
    pub delta_ssim_window: Vec<f64>,
    /// Mean of those.
    pub mean_delta_ssim_window: f64,
    /// Per seed: variant's z-MSE over CycleGAN's.
    pub mse_z_ratio: Vec<f64>,
    /// Mean of the per-seed ratios.
    pub mean_mse_z_ratio: f64,
    /// Volumes (pooled over seeds) where the variant's windowed SSIM is higher.
    pub volume_wins: usize,
    /// Volumes compared.
    pub volumes: usize,
}

fn paired(
    cells: &[CellResult],
    variant: &str,
    setting: Setting,
    direction: usize,
    step: u64,
) -> Option<Paired> {
    let find = |v: &str, seed: u64| {
        cells
            .iter()
            .find(|c| c.cell.variant == v && c.cell.setting == setting && c.cell.seed == seed)
            .and_then(|c| c.evals.get(&step))
    };
    let mut out = Paired {
        variant: variant.to_string(),
        setting,
        direction: DIRECTIONS[direction].to_string(),
        step,
        seeds: Vec::new(),
        delta_ssim_window: Vec::new(),
        mean_delta_ssim_window: f64::NAN,
        mse_z_ratio: Vec::new(),
        mean_mse_z_ratio: f64::NAN,
        volume_wins: 0,
        volumes: 0,
    };
    let ssim = metric("ssim_window");
    let msez = metric("mse_z");
    let mut seeds: Vec<u64> = cells.iter().map(|c| c.cell.seed).collect();
    seeds.sort();
    seeds.dedup();
    for seed in seeds {
        let (Some(a), Some(b)) = (find(variant, seed), find("cyclegan", seed)) else {
            continue;
        };
        out.seeds.push(seed);
        out.delta_ssim_window
            .push(volume_mean(a, direction, ssim) - volume_mean(b, direction, ssim));
        out.mse_z_ratio
            .push(volume_mean(a, direction, msez) / volume_mean(b, direction, msez));
        let bv: BTreeMap<&str, &VolumeScore> = b.directions[direction]
            .volumes
            .iter()
            .map(|v| (v.volume.as_str(), v))
            .collect();
        for v in &a.directions[direction].volumes {
            if let Some(w) = bv.get(v.volume.as_str()) {
                out.volumes += 1;
                if v.metrics.ssim_window > w.metrics.ssim_window {
                    out.volume_wins += 1;
                }
            }
        }
    }
    if out.seeds.is_empty() {
        return None;
    }
    out.mean_delta_ssim_window = mean_sd(&out.delta_ssim_window).0;
    out.mean_mse_z_ratio = mean_sd(&out.mse_z_ratio).0;
    Some(out)
}

/// The issue's targets for one variant, checked on what is recorded.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// Variant.
    pub variant: String,
    /// Deformed, both directions: mean Δ windowed SSIM ≥ 0.10 and > 0 in every seed.
    pub deformed_ssim: Option<bool>,
    /// Deformed, both directions: z-MSE ≤ 0.5 × CycleGAN's.
    pub deformed_mse: Option<bool>,
    /// Undeformed, both directions: |Δ windowed SSIM| ≤ 0.03.
    pub undeformed_ssim: Option<bool>,
    /// Seeds behind the deformed checks (the fewest over the two directions).
    pub seeds: usize,
}

fn targets(pairs: &[Paired], variant: &str) -> TargetCheck {
    let of = |setting: Setting| -> Vec<&Paired> {
        pairs
            .iter()
            .filter(|p| p.variant == variant && p.setting == setting)
            .collect()
    };
    let both = |ps: &[&Paired], f: &dyn Fn(&Paired) -> bool| {
        (ps.len() == 2).then(|| ps.iter().all(|p| f(p)))
    };
    let def = of(Setting::Deformed);
    let und = of(Setting::Undeformed);
    TargetCheck {
        variant: variant.to_string(),
        deformed_ssim: both(&def, &|p| {
            p.mean_delta_ssim_window >= 0.10 && p.delta_ssim_window.iter().all(|d| *d > 0.0)
        }),
        deformed_mse: both(&def, &|p| p.mean_mse_z_ratio <= 0.5),
        undeformed_ssim: both(&und, &|p| p.mean_delta_ssim_window.abs() <= 0.03),
        seeds: def.iter().map(|p| p.seeds.len()).min().unwrap_or(0),
    }
}

/// The DicycleGAN variant with the largest mean Δ windowed SSIM over CycleGAN in the deformed
/// setting (both directions averaged) at the last point, among variants measured in both.
pub fn best_variant(study: &Path, plan: &StudyPlan) -> Result<Option<String>> {
    let cells = load_cells(study, plan)?;
    let Some(&last) = plan.spec.points.last() else {
        return Ok(None);
    };
    let mut best: Option<(f64, String)> = None;
    for v in VARIANTS.iter().filter(|v| v.name != "cyclegan") {
        let d: Vec<f64> = (0..2)
            .filter_map(|d| paired(&cells, v.name, Setting::Deformed, d, last))
            .map(|p| p.mean_delta_ssim_window)
            .collect();
        if d.len() == 2 {
            let m = (d[0] + d[1]) / 2.0;
            if best.as_ref().is_none_or(|(b, _)| m > *b) {
                best = Some((m, v.name.to_string()));
            }
        }
    }
    Ok(best.map(|b| b.1))
}

/// `results.json`.
#[derive(Debug, Serialize)]
pub struct Results<'a> {
    /// The plan.
    pub plan: &'a StudyPlan,
    /// Every cell's state.
    pub cells: &'a [CellResult],
    /// Mean ± sd over seeds of every metric, variant, setting, point and direction.
    pub aggregates: Vec<Aggregate>,
    /// DicycleGAN variants against CycleGAN at each point.
    pub paired: Vec<Paired>,
    /// The copy-the-target-geometry baseline (deformed setting), volume means.
    pub copy_baseline: Vec<(String, String, f64)>,
    /// Targets per DicycleGAN variant, at the last point.
    pub targets: Vec<TargetCheck>,
}

fn pm(mean: f64, sd: f64, digits: usize) -> String {
    if !mean.is_finite() {
        return "–".into();
    }
    format!("{mean:.digits$} ± {sd:.digits$}")
}

fn digits(key: &str) -> usize {
    match key {
        "mse" => 0,
        "psnr_z" | "displacement_mm" => 2,
        _ => 3,
    }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not yet measured",
    }
}

/// The deformation's strength as `deform` recorded it.
fn field_summary(study: &Path, voxel_mm: usize) -> String {
    let path = data_dir(study, Setting::Deformed).join("deformation.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return "the deformed data has not been made yet".into();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return format!("{} could not be read", path.display());
    };
    let mm = v["max_displacement_mm"].as_f64().unwrap_or(f64::NAN);
    let min_jac = v["volumes"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|x| x["min_jacobian"].as_f64())
                .fold(f64::INFINITY, f64::min)
        })
        .unwrap_or(f64::NAN);
    format!(
        "one shared smooth field (seed {}), largest displacement {mm:.1} mm = {:.1} voxels at {voxel_mm} mm, \
         smallest Jacobian determinant over all volumes {min_jac:.3}",
        v["seed"],
        mm / voxel_mm as f64
    )
}

/// File name of Fig. 4 in the study directory.
pub const FIG4: &str = "fig4-deformed.png";
/// File name of the SSIM-per-seed plot in the study directory.
pub const SSIM_PLOT: &str = "ssim-per-seed.png";
/// Stands for the study directory's path relative to wherever the page is written.
pub const FIGDIR: &str = "{study}";

/// What [`render`] makes.
pub struct Rendered {
    /// The Markdown page (figure links relative to [`FIGDIR`]).
    pub page: String,
    /// `results.json`.
    pub json: String,
    /// The headline table for the README: both settings at the last point.
    pub headline: String,
    /// `index.html` for the study directory ([`INDEX`]): the headline, the figures, and every
    /// cell with a link to its run's page.
    pub index: String,
}

/// The study's HTML page in its directory: links every cell's run page (`index.html` in
/// `cells/<cell>/run/`, written by `trainer train`) and the Markdown page.
pub const INDEX: &str = "index.html";

/// The study's `index.html` (see [`Rendered::index`]): static, relative links only, and
/// only to files that exist.
fn index_html(
    study: &Path,
    plan: &StudyPlan,
    cells: &[CellResult],
    done: usize,
    headline: &str,
) -> String {
    use crate::train::html::{document, escape, href, markdown};
    let mut b = String::new();
    let _ = writeln!(b, "<h2>Headline</h2>");
    b.push_str(&markdown(headline, 1));
    let links: Vec<String> = [
        ("RESULTS.md", "the full results page (Markdown)"),
        ("results.json", "every aggregate behind it"),
        ("study.json", "the plan and the command lines"),
        ("copy.json", "the copy-the-target baseline"),
    ]
    .into_iter()
    .filter(|(f, _)| study.join(f).is_file())
    .map(|(f, what)| {
        format!(
            "<a href=\"{}\"><code>{}</code></a> ({what})",
            href(f),
            escape(f)
        )
    })
    .collect();
    if !links.is_empty() {
        let _ = writeln!(b, "<p>{}</p>", links.join(" · "));
    }
    let figures: Vec<(&str, &str)> = [
        (
            FIG4,
            "Fig. 4 of the paper, on our benchmark: one slice of two test volumes, both directions",
        ),
        (
            SSIM_PLOT,
            "windowed SSIM per seed, variant, setting and direction",
        ),
    ]
    .into_iter()
    .filter(|(f, _)| study.join(f).is_file())
    .collect();
    if !figures.is_empty() {
        let _ = writeln!(b, "<h2>Figures</h2>");
        for (file, what) in figures {
            let _ = writeln!(
                b,
                "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption>{1}</figcaption></figure>",
                href(file),
                escape(what)
            );
        }
    }
    let _ = writeln!(
        b,
        "<h2>Cells</h2>\n<p class=\"note\">One training run each; its page shows the run's samples, loss curves \
         and checkpoints. A run folder that is not on disk (runs are not committed) has no page.</p>\n\
         <table><thead><tr><th>cell</th><th>variant</th><th>setting</th><th class=\"num\">seed</th><th>state</th>\
         <th>steps evaluated</th><th>run page</th></tr></thead><tbody>"
    );
    for c in cells {
        let name = c.cell.name();
        let state = match &c.status {
            CellStatus::Done => "<span class=\"badge ok\">done</span>".to_string(),
            CellStatus::Pending => "<span class=\"badge run\">pending</span>".to_string(),
            CellStatus::Failed(e) => format!(
                "<span class=\"badge bad\">failed</span> <span class=\"note\">{}</span>",
                escape(e)
            ),
        };
        let page = format!("cells/{name}/run/{}", crate::train::run_page::FILE);
        let link = if study.join(&page).is_file() {
            format!("<a href=\"{}\">run page</a>", href(&page))
        } else {
            "<span class=\"note\">–</span>".to_string()
        };
        let steps: Vec<String> = c.steps.iter().map(u64::to_string).collect();
        let _ = writeln!(
            b,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td>{state}</td>\
             <td>{}</td><td>{link}</td></tr>",
            escape(&name),
            escape(&c.cell.variant),
            c.cell.setting.name(),
            c.cell.seed,
            steps.join(", ")
        );
    }
    b.push_str("</tbody></table>\n");
    let _ = writeln!(
        b,
        "<footer>Generated by <code>trainer study</code> from the files in this folder, with RESULTS.md \
         (<code>--page-only</code> rebuilds both).</footer>"
    );
    let abs = std::path::absolute(study).unwrap_or_else(|_| study.to_path_buf());
    let title = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "study".into());
    let subtitle = format!(
        "<code>trainer study --scale {}</code>: {done} of {} cells done, {} steps per cell",
        format!("{:?}", plan.scale).to_lowercase(),
        cells.len(),
        plan.spec.steps
    );
    document(&format!("{title} — trainer study"), &subtitle, &b)
}

/// Builds `results.json`, the page and the headline table.
pub fn render(study: &Path, plan: &StudyPlan, copy: Option<&EvalRecord>) -> Result<Rendered> {
    let cells = load_cells(study, plan)?;
    let mut variants: Vec<&str> = Vec::new();
    for v in VARIANTS {
        if plan.cells.iter().any(|c| c.variant == v.name) {
            variants.push(v.name);
        }
    }
    let last = *plan
        .spec
        .points
        .last()
        .context("a study needs evaluation points")?;
    let mut aggregates = Vec::new();
    let mut pairs = Vec::new();
    for &v in &variants {
        for setting in Setting::ALL {
            for &step in &plan.spec.points {
                for d in 0..2 {
                    for m in METRICS {
                        aggregates.extend(aggregate(&cells, v, setting, step, d, m));
                    }
                    if v != "cyclegan" {
                        pairs.extend(paired(&cells, v, setting, d, step));
                    }
                }
            }
        }
    }
    let final_pairs: Vec<Paired> = pairs.iter().filter(|p| p.step == last).cloned().collect();
    let checks: Vec<TargetCheck> = variants
        .iter()
        .filter(|v| **v != "cyclegan")
        .map(|v| targets(&final_pairs, v))
        .collect();
    let copy_rows: Vec<(String, String, f64)> = copy
        .map(|r| {
            let mut rows = Vec::new();
            for (d, dir) in r.directions.iter().enumerate() {
                for m in METRICS {
                    rows.push((
                        dir.direction.clone(),
                        m.key.to_string(),
                        volume_mean(r, d, m),
                    ));
                }
            }
            rows
        })
        .unwrap_or_default();

    let find = |v: &str, s: Setting, step: u64, d: usize, key: &str| {
        aggregates.iter().find(|a| {
            a.variant == v
                && a.setting == s
                && a.step == step
                && a.direction == DIRECTIONS[d]
                && a.metric == key
        })
    };

    let spec = &plan.spec;
    let mut p = String::new();
    let _ = writeln!(
        p,
        "# Results: DicycleGAN vs CycleGAN on the simulated PD/T2 benchmark (`trainer study`)\n"
    );
    let _ = writeln!(
        p,
        "Generated by `trainer study` from the study directory's records; do not edit by hand. \
         Commands that ran this study (oldest first):\n"
    );
    let _ = writeln!(p, "```sh");
    for c in &plan.commands {
        let _ = writeln!(p, "{c}");
    }
    let _ = writeln!(p, "```\n");
    let done = cells
        .iter()
        .filter(|c| matches!(c.status, CellStatus::Done))
        .count();
    let failed = cells
        .iter()
        .filter(|c| matches!(c.status, CellStatus::Failed(_)))
        .count();
    let _ = writeln!(
        p,
        "**Progress: {done} of {} cells done, {failed} failed, {} pending.** Cells still pending are \
         missing from the tables below (each number says over how many seeds it is).\n",
        cells.len(),
        cells.len() - done - failed
    );
    let mut taken: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &plan.cells {
        if let Ok(origin) = std::fs::read_to_string(cell_dir(study, c).join(TAKEN_FROM)) {
            taken
                .entry(origin.trim().to_string())
                .or_default()
                .push(format!("`{}`", c.name()));
        }
    }
    for (origin, names) in &taken {
        let _ = writeln!(
            p,
            "Taken from the study in `{origin}` (`--undeformed-from`; same data and configuration, \
             the field does not enter an undeformed cell), not trained here: {}.\n",
            names.join(", ")
        );
    }

    let _ = writeln!(p, "## Scale `{:?}`\n", plan.scale);
    let _ = writeln!(p, "| | |\n|---|---|");
    let _ = writeln!(
        p,
        "| model | generator ngf {}, residual blocks {}; PatchGAN ndf {}, 3 layers |",
        spec.ngf, spec.blocks, spec.ndf
    );
    let _ = writeln!(
        p,
        "| training | {} steps per cell, batch 1, crop {}×{}, lr {:.0e} (half the epochs fixed, half linear decay; {} steps per epoch), early stop off, 1 libtorch thread per cell |",
        spec.steps, spec.crop, spec.crop, spec.lr, spec.steps_per_epoch
    );
    let _ = writeln!(
        p,
        "| evaluated at | steps {} (undeformed pass, whole slices) |",
        spec.points
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        p,
        "| data | {} anatomy, {} mm voxels, {} training + {} test subjects (`trainer data simulate`) |",
        if spec.phantom { "phantom" } else { "MNI ICBM152 2009a" },
        spec.voxel_mm,
        spec.train_subjects,
        spec.test_subjects
    );
    let _ = writeln!(
        p,
        "| deformed setting | {} |",
        field_summary(study, spec.voxel_mm)
    );
    let _ = writeln!(p);
    let _ = writeln!(p, "Variants:\n");
    for v in &variants {
        if let Ok(var) = variant(v) {
            let _ = writeln!(p, "* `{}` — {}", var.name, var.description);
        }
    }
    let _ = writeln!(p);

    let _ = writeln!(
        p,
        "## Measures\n\nPer test volume, inside the brain mask, against the source-aligned ground truth \
         (PD→T2: the undeformed T2; T2→PD: the PD warped by the field in the deformed setting, the PD itself \
         otherwise); then the mean over volumes per seed; tables show mean ± sd **over seeds**. z-units: \
         prediction and truth each normalised by its own mean and sd, as the paper does. Cells read \
         `mean ± sd over seeds (sd over volumes, averaged over seeds)`. NMI(source, output): \
         64-bin NMI of the synthesis with its input (compare with NMI(source, truth) in the caption). Residual \
         displacement: median over 15×15 blocks of the best-NCC shift (±6 voxels, sub-voxel) between output and \
         aligned truth, every other slice. Gradient energy: the output's in-plane gradient energy over the \
         truth's, both z-scored (1 = as sharp as the truth).\n"
    );

    if !copy_rows.is_empty() {
        let _ = writeln!(
            p,
            "## For scale: copying the target domain's geometry (deformed setting)\n\n\
             The deformed T2 itself as the \"synthesis\" of PD→T2, and the undeformed PD as that of T2→PD \
             (perfect appearance, the target's geometry): what a model that copies the deformation exactly \
             would score (mean over volumes).\n"
        );
        let _ = writeln!(
            p,
            "| direction | {} |",
            METRICS
                .iter()
                .map(|m| m.title)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(p, "|---|{}", "---:|".repeat(METRICS.len()));
        for dir in DIRECTIONS {
            let cells: Vec<String> = METRICS
                .iter()
                .map(|m| {
                    copy_rows
                        .iter()
                        .find(|r| r.0 == dir && r.1 == m.key)
                        .map_or("–".into(), |r| format!("{:.*}", digits(m.key), r.2))
                })
                .collect();
            let _ = writeln!(p, "| {dir} | {} |", cells.join(" | "));
        }
        let _ = writeln!(p);
    }

    let ratios: Vec<String> = (0..2)
        .filter_map(|d| {
            let def = find("cyclegan", Setting::Deformed, last, d, "mse_z")?;
            let und = find("cyclegan", Setting::Undeformed, last, d, "mse_z")?;
            Some(format!(
                "{} {:.2} ({} / {} seeds)",
                DIRECTIONS[d],
                def.mean / und.mean,
                def.per_seed.len(),
                und.per_seed.len()
            ))
        })
        .collect();
    if !ratios.is_empty() {
        let _ = writeln!(
            p,
            "Calibration: CycleGAN's z-unit MSE in the deformed setting over the undeformed one at step \
             {last}: {} (the paper's CycleGAN: about 3, PD→T2 Table 2 vs Table 1).\n",
            ratios.join(", ")
        );
    }

    for setting in Setting::ALL {
        if !plan.cells.iter().any(|c| c.setting == setting) {
            continue;
        }
        let title = match setting {
            Setting::Deformed => "Domain-deformed T2 (the paper's Table 2)",
            Setting::Undeformed => "Undeformed T2 (the paper's Table 1)",
        };
        let _ = writeln!(p, "## {title}, at step {last}\n");
        let _ = writeln!(
            p,
            "| variant | direction | seeds | {} |",
            METRICS
                .iter()
                .map(|m| m.title)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(p, "|---|---|---:|{}", "---:|".repeat(METRICS.len()));
        for (d, dir_label) in DIRECTIONS.iter().enumerate() {
            for &v in &variants {
                let Some(first) = find(v, setting, last, d, METRICS[0].key) else {
                    continue;
                };
                let cols: Vec<String> = METRICS
                    .iter()
                    .map(|m| {
                        find(v, setting, last, d, m.key).map_or("–".into(), |a| {
                            let vsd = mean_sd(
                                &a.per_seed_volume_sd.iter().map(|x| x.1).collect::<Vec<_>>(),
                            )
                            .0;
                            format!(
                                "{} ({:.*})",
                                pm(a.mean, a.sd, digits(m.key)),
                                digits(m.key),
                                vsd
                            )
                        })
                    })
                    .collect();
                let _ = writeln!(
                    p,
                    "| `{v}` | {} | {} | {} |",
                    dir_label,
                    first.per_seed.len(),
                    cols.join(" | ")
                );
            }
        }
        // NMI of the truth with the source: the level an aligned synthesis reaches.
        let nmi_truth: Vec<String> = (0..2)
            .filter_map(|d| {
                let v: Vec<f64> = cells
                    .iter()
                    .filter(|c| c.cell.setting == setting)
                    .filter_map(|c| c.evals.get(&last))
                    .flat_map(|r| {
                        r.directions[d]
                            .volumes
                            .iter()
                            .map(|v| v.alignment.nmi_source_truth)
                    })
                    .collect();
                (!v.is_empty()).then(|| format!("{} {:.3}", DIRECTIONS[d], mean_sd(&v).0))
            })
            .collect();
        if !nmi_truth.is_empty() {
            let _ = writeln!(p, "\nNMI(source, truth): {}.", nmi_truth.join(", "));
        }
        let _ = writeln!(p);

        let _ = writeln!(
            p,
            "### Over training: windowed SSIM at each evaluation point\n"
        );
        let _ = writeln!(
            p,
            "| variant | direction | {} |",
            spec.points
                .iter()
                .map(|s| format!("step {s}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(p, "|---|---|{}", "---:|".repeat(spec.points.len()));
        for (d, dir_label) in DIRECTIONS.iter().enumerate() {
            for &v in &variants {
                let cols: Vec<String> = spec
                    .points
                    .iter()
                    .map(|&s| {
                        find(v, setting, s, d, "ssim_window").map_or("–".into(), |a| {
                            format!("{} (n={})", pm(a.mean, a.sd, 3), a.per_seed.len())
                        })
                    })
                    .collect();
                if cols.iter().all(|c| c == "–") {
                    continue;
                }
                let _ = writeln!(p, "| `{v}` | {} | {} |", dir_label, cols.join(" | "));
            }
        }
        let _ = writeln!(p);

        let _ = writeln!(
            p,
            "### Paired with CycleGAN (same seed, same volumes), at step {last}\n"
        );
        let _ = writeln!(
            p,
            "| variant | direction | seeds | Δ windowed SSIM per seed | mean Δ | z-MSE ratio (mean) | volumes with higher windowed SSIM |"
        );
        let _ = writeln!(p, "|---|---|---:|---|---:|---:|---:|");
        for pr in final_pairs.iter().filter(|pr| pr.setting == setting) {
            let _ = writeln!(
                p,
                "| `{}` | {} | {} | {} | {:+.3} | {:.2} | {}/{} |",
                pr.variant,
                pr.direction,
                pr.seeds.len(),
                pr.delta_ssim_window
                    .iter()
                    .map(|d| format!("{d:+.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                pr.mean_delta_ssim_window,
                pr.mean_mse_z_ratio,
                pr.volume_wins,
                pr.volumes
            );
        }
        let _ = writeln!(p);
    }

    let _ = writeln!(p, "## Figures\n");
    let mut any_figure = false;
    for (file, what) in [
        (
            FIG4,
            "Fig. 4 of the paper, on our benchmark: one slice of two test volumes, both directions",
        ),
        (
            SSIM_PLOT,
            "windowed SSIM per seed, variant, setting and direction",
        ),
    ] {
        if study.join(file).exists() {
            any_figure = true;
            let _ = writeln!(p, "{what}:\n\n![{what}]({FIGDIR}/{file})\n");
        }
    }
    if !any_figure {
        let _ = writeln!(
            p,
            "None yet: they are drawn once the cells they show are done.\n"
        );
    }

    let _ = writeln!(p, "## Targets (at step {last})\n");
    let _ = writeln!(
        p,
        "Deformed: windowed SSIM higher than CycleGAN's by ≥ 0.10 in both directions (mean over seeds, and \
         higher in every seed); z-MSE ≤ 0.5 × CycleGAN's. Undeformed: |Δ windowed SSIM| ≤ 0.03.\n"
    );
    let _ = writeln!(
        p,
        "| variant | seeds (deformed) | deformed SSIM | deformed z-MSE | undeformed SSIM |"
    );
    let _ = writeln!(p, "|---|---:|---|---|---|");
    for t in &checks {
        let _ = writeln!(
            p,
            "| `{}` | {} | {} | {} | {} |",
            t.variant,
            t.seeds,
            yes_no(t.deformed_ssim),
            yes_no(t.deformed_mse),
            yes_no(t.undeformed_ssim)
        );
    }
    let _ = writeln!(p);

    let _ = writeln!(
        p,
        "## Cells\n\n| cell | state | steps evaluated | evaluation time (s) |\n|---|---|---|---:|"
    );
    for c in &cells {
        let state = match &c.status {
            CellStatus::Done => "done".to_string(),
            CellStatus::Pending => "pending".to_string(),
            CellStatus::Failed(e) => {
                format!("**failed**: {}", e.replace('\n', " ").replace('|', "/"))
            }
        };
        // An empty float sum is −0: a cell with no evaluation yet shows a dash instead.
        let secs = if c.evals.is_empty() {
            "–".to_string()
        } else {
            format!("{:.0}", c.evals.values().map(|r| r.seconds).sum::<f64>())
        };
        let _ = writeln!(
            p,
            "| `{}` | {state} | {} | {secs} |",
            c.cell.name(),
            c.steps
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let results = Results {
        plan,
        cells: &cells,
        aggregates: aggregates.clone(),
        paired: pairs,
        copy_baseline: copy_rows,
        targets: checks,
    };
    let json = serde_json::to_string_pretty(&results)?;

    let mut h = String::new();
    let _ = writeln!(
        h,
        "| setting | variant | seeds | windowed SSIM PD→T2 | windowed SSIM T2→PD | z-MSE PD→T2 | z-MSE T2→PD |"
    );
    let _ = writeln!(h, "|---|---|---:|---:|---:|---:|---:|");
    for setting in Setting::ALL {
        for &v in &variants {
            let get = |d: usize, key: &str| {
                find(v, setting, last, d, key).map_or("–".into(), |a| pm(a.mean, a.sd, 3))
            };
            let Some(n) = find(v, setting, last, 0, "ssim_window").map(|a| a.per_seed.len()) else {
                continue;
            };
            let _ = writeln!(
                h,
                "| {} | `{v}` | {n} | {} | {} | {} | {} |",
                setting.name(),
                get(0, "ssim_window"),
                get(1, "ssim_window"),
                get(0, "mse_z"),
                get(1, "mse_z")
            );
        }
    }
    let _ = writeln!(
        h,
        "\n`trainer study --scale {}` at step {last}, mean ± sd over seeds; {done} of {} cells done \
         ([docs/RESULTS.md](docs/RESULTS.md)).",
        format!("{:?}", plan.scale).to_lowercase(),
        cells.len()
    );
    let index = index_html(study, plan, &cells, done, &h);
    Ok(Rendered {
        page: p,
        json,
        headline: h,
        index,
    })
}

/// Marks the start of the generated headline table in a README.
pub const HEADLINE_BEGIN: &str = "<!-- trainer study headline: begin (generated) -->";
/// Marks its end.
pub const HEADLINE_END: &str = "<!-- trainer study headline: end -->";

/// `readme` with the text between [`HEADLINE_BEGIN`] and [`HEADLINE_END`] replaced by
/// `headline`; an error when the markers are missing.
pub fn splice_headline(readme: &str, headline: &str) -> Result<String> {
    let start = readme
        .find(HEADLINE_BEGIN)
        .context("the README has no study headline marker (add the begin/end comment lines where the table goes)")?;
    let end = readme[start..]
        .find(HEADLINE_END)
        .map(|e| start + e)
        .context("the README's study headline has a begin marker but no end marker")?;
    Ok(format!(
        "{}{HEADLINE_BEGIN}\n{headline}{}",
        &readme[..start],
        &readme[end..]
    ))
}
