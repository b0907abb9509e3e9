//! A run's page, `index.html` in its run directory: what the run is (model, networks, data),
//! how far it got, its evaluations (`trainer eval --run`: the metrics table and the example
//! slices), the sample grids newest first, the loss curves, the checkpoints and the
//! configuration — the CycleGAN reference's `web/index.html`, for this trainer.
//!
//! The page is built from the files in the run directory alone ([`render`]), so it is always
//! consistent with them and can be rebuilt at any time (`trainer page --run DIR`); `trainer
//! train` rewrites it (atomically) at each checkpoint and at the end, `trainer eval --run`
//! after recording its outputs in `evals.json` ([`record_eval`]). Static HTML with inline CSS:
//! no scripts, no outside resources, relative links only, so the folder reads offline and
//! can be moved or copied whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::config::{DataConfig, ModelKind, TrainConfig};
use super::html::{document, escape, href, markdown, relative_path};
use super::run_dir::StepLosses;
use crate::eval::table::{self, DirectionResult};
use dicyc_volume::atomic::write_atomic;

/// The page's file name in a run directory.
pub const FILE: &str = "index.html";
/// The evaluations of a run (`trainer eval --run`), newest last: [`EvalRecord`]s.
pub const EVALS: &str = "evals.json";

/// One `trainer eval --run` of this run, as `evals.json` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The eval's output folder (`results.json`, `results.md`, `examples.png`), relative to
    /// the run directory.
    pub out: String,
    /// The checkpoint evaluated (its folder name under `checkpoints/`).
    pub checkpoint: Option<String>,
    /// The data set (`--data`), as given on the command line.
    pub data: String,
    /// The generator pass used.
    pub pass: String,
}

/// Adds `record` to the run's `evals.json` (replacing an earlier record of the same output
/// folder, whose files the new eval overwrote), atomically.
pub fn record_eval(run: &Path, record: EvalRecord) -> anyhow::Result<()> {
    let mut records = read_evals(run);
    records.retain(|r| r.out != record.out);
    records.push(record);
    write_atomic(
        &run.join(EVALS),
        serde_json::to_string_pretty(&records)?.as_bytes(),
    )
}

/// After `trainer eval --run RUN --out OUT`: records OUT (relative to the run), the
/// checkpoint (`checkpoint`, else the one `checkpoints/latest` names), the data set and the
/// pass in the run's `evals.json`, and rebuilds the page; returns its path.
pub fn add_eval(
    run: &Path,
    out: &Path,
    checkpoint: Option<&Path>,
    data: &Path,
    pass: &str,
) -> anyhow::Result<PathBuf> {
    let checkpoint = match checkpoint {
        Some(c) => c.file_name().map(|n| n.to_string_lossy().into_owned()),
        None => fs::read_to_string(run.join("checkpoints").join("latest"))
            .ok()
            .map(|s| s.trim().to_string()),
    };
    record_eval(
        run,
        EvalRecord {
            out: relative_path(out, run),
            checkpoint,
            data: data.display().to_string(),
            pass: pass.to_string(),
        },
    )
    .with_context(|| format!("recording the evaluation in {}", run.join(EVALS).display()))?;
    write(run)
}

fn read_evals(run: &Path) -> Vec<EvalRecord> {
    fs::read_to_string(run.join(EVALS))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Renders the page of the run in `run` and writes it to `run/index.html` atomically;
/// returns its path.
pub fn write(run: &Path) -> anyhow::Result<PathBuf> {
    let path = run.join(FILE);
    write_atomic(&path, render(run)?.as_bytes())?;
    Ok(path)
}

/// [`write`], reporting a failure on stderr instead of returning it: training goes on when
/// its page cannot be written.
pub fn write_or_warn(run: &Path) {
    if let Err(e) = write(run) {
        eprintln!(
            "warning: the run page {} could not be written: {e:#}",
            run.join(FILE).display()
        );
    }
}

/// What the loss logs say: the last step and each series' range and recent mean.
#[derive(Default)]
struct LossLog {
    last: Option<StepLosses>,
    steps: usize,
    first_step: u64,
    /// Per series (in [`StepLosses::SERIES`] order): min, max.
    range: Vec<(f64, f64)>,
    /// The last values of each series (for a mean over the last 5 % of the run).
    tail: Vec<Vec<f64>>,
}

fn read_losses(run: &Path) -> LossLog {
    let mut log = LossLog {
        range: vec![(f64::INFINITY, f64::NEG_INFINITY); StepLosses::SERIES.len()],
        ..LossLog::default()
    };
    let Ok(file) = fs::File::open(run.join("losses.jsonl")) else {
        return log;
    };
    let mut all: Vec<[f64; 10]> = Vec::new();
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(l) = serde_json::from_str::<StepLosses>(&line) else {
            continue;
        };
        if log.steps == 0 {
            log.first_step = l.step;
        }
        log.steps += 1;
        let v = l.values();
        for (r, x) in log.range.iter_mut().zip(v) {
            if x.is_finite() {
                *r = (r.0.min(x), r.1.max(x));
            }
        }
        all.push(v);
        log.last = Some(l);
    }
    let window = (all.len() / 20).max(1);
    let tail = &all[all.len().saturating_sub(window)..];
    log.tail = (0..StepLosses::SERIES.len())
        .map(|i| tail.iter().map(|v| v[i]).collect())
        .collect();
    log
}

/// One row of `epochs.csv`.
struct EpochRow {
    epoch: u32,
    step: u64,
    mean_g: String,
    lr: String,
    next: String,
}

fn read_epochs(run: &Path) -> Vec<EpochRow> {
    let text = fs::read_to_string(run.join("epochs.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(EpochRow {
                epoch: f.first()?.parse().ok()?,
                step: f.get(1)?.parse().ok()?,
                mean_g: f.get(2)?.to_string(),
                lr: f.get(3)?.to_string(),
                next: f.get(4..)?.join(","),
            })
        })
        .collect()
}

/// A checkpoint folder and what its `state.json` says.
struct CheckpointInfo {
    name: String,
    step: Option<u64>,
    /// Epochs completed, and steps into the next one.
    epochs: Option<(u64, u64)>,
}

fn read_checkpoints(run: &Path) -> (Vec<CheckpointInfo>, Option<String>) {
    let dir = run.join("checkpoints");
    let latest = fs::read_to_string(dir.join("latest"))
        .ok()
        .map(|s| s.trim().to_string());
    let mut out: Vec<CheckpointInfo> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.starts_with("step-").then_some(name)
        })
        .map(|name| {
            let state: Option<serde_json::Value> =
                fs::read_to_string(dir.join(&name).join("state.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            let get = |k: &str| state.as_ref().and_then(|s| s.get(k)?.as_u64());
            CheckpointInfo {
                step: get("global_step"),
                epochs: get("epoch").map(|e| (e, get("step_in_epoch").unwrap_or(0))),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| b.name.cmp(&a.name));
    (out, latest)
}

/// A sample grid: its file, the step it shows (when known) and its caption.
struct Sample {
    file: String,
    step: Option<u64>,
    caption: String,
}

fn read_samples(run: &Path, epochs: &[EpochRow]) -> Vec<Sample> {
    let step_of_epoch: BTreeMap<u32, u64> = epochs.iter().map(|e| (e.epoch + 1, e.step)).collect();
    let mut out: Vec<Sample> = pngs(&run.join("samples"))
        .into_iter()
        .map(|stem| {
            let number = |prefix: &str| stem.strip_prefix(prefix)?.parse::<u64>().ok();
            let (step, caption) = if let Some(n) = number("epoch-") {
                let step = u32::try_from(n)
                    .ok()
                    .and_then(|n| step_of_epoch.get(&n).copied());
                let at = step.map(|s| format!(", step {s}")).unwrap_or_default();
                (step, format!("after epoch {n}{at}"))
            } else if let Some(s) = number("step-") {
                (
                    Some(s),
                    format!("step {s}, where the run stopped (max_steps)"),
                )
            } else {
                (None, stem.clone())
            };
            Sample {
                file: format!("samples/{stem}.png"),
                step,
                caption,
            }
        })
        .collect();
    out.sort_by(|a, b| b.step.cmp(&a.step).then_with(|| b.file.cmp(&a.file)));
    out
}

/// The stems of the `.png` files in `dir`, sorted.
fn pngs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".png")
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

/// What each loss series is, for the curves' captions.
fn series_meaning(name: &str) -> &'static str {
    match name {
        "g_total" => "total generator loss (the weighted sum of the terms below)",
        "gan" => "LSGAN generator loss on the deformed outputs, both directions",
        "cycle" => "undeformed cycle L1, both directions",
        "dicycle" => "deformation-invariant cycle L1, both directions",
        "alignment" => "alignment loss 2 − NMI(x_A, G̃_AB x_A) − NMI(x_B, G̃_BA x_B)",
        "identity" => "identity L1",
        "gan_undeformed" => "LSGAN generator loss on the undeformed outputs",
        "offset" => "offset penalty (weighted magnitude + smoothness)",
        "d_a" => "discriminator A's loss",
        "d_b" => "discriminator B's loss",
        _ => "",
    }
}

/// A loss value for the page: 4 significant digits.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// The domain names of the data (the NIfTI folders' names, else `A`/`B`).
fn domains(config: Option<&TrainConfig>) -> (String, String) {
    match config.map(|c| &c.data) {
        Some(DataConfig::Nifti { a, b, .. }) => {
            let name = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().to_uppercase())
                    .unwrap_or_default()
            };
            (format!("A ({})", name(a)), format!("B ({})", name(b)))
        }
        _ => ("A".into(), "B".into()),
    }
}

fn model_line(c: &TrainConfig) -> String {
    let g = c.effective_generator();
    let model = match c.model {
        ModelKind::Dicyclegan => {
            let sites: Vec<&str> = g.offset_layers.iter().map(|s| s.name()).collect();
            format!(
                "DicycleGAN, offset layers at {} ({} fields)",
                if sites.is_empty() {
                    "none".to_string()
                } else {
                    sites.join(", ")
                },
                g.offset_form.name()
            )
        }
        ModelKind::Cyclegan => "CycleGAN baseline".to_string(),
    };
    let d = &c.discriminator;
    let preset = [
        ("small", TrainConfig::small()),
        ("paper", TrainConfig::paper()),
    ]
    .into_iter()
    .find(|(_, p)| {
        p.generator.ngf == g.ngf && p.generator.n_blocks == g.n_blocks && &p.discriminator == d
    })
    .map(|(name, _)| format!("; the <code>{name}</code> preset's networks"))
    .unwrap_or_default();
    format!(
        "{model}; generator ngf {}, {} residual blocks; PatchGAN ndf {}, {} layers{preset}",
        g.ngf, g.n_blocks, d.ndf, d.n_layers
    )
}

fn data_line(c: &TrainConfig) -> String {
    match &c.data {
        DataConfig::Synthetic(s) => format!(
            "synthetic {0}×{0} slices, {1} per domain, shared deformation {2} px (seed {3})",
            s.size, s.slices, s.deformation, s.seed
        ),
        DataConfig::Nifti { a, b, preprocess } => format!(
            "NIfTI, A: <code>{}</code>, B: <code>{}</code>; {}×{} slices",
            escape(&a.display().to_string()),
            escape(&b.display().to_string()),
            preprocess.size.0,
            preprocess.size.1
        ),
    }
}

/// The run's planned length in steps, where it can be known: `max_steps`, or the epochs
/// times the steps per epoch (configured, or measured by the first epoch).
fn planned_steps(c: &TrainConfig, epochs: &[EpochRow]) -> Option<u64> {
    let per_epoch = match c.schedule.steps_per_epoch {
        0 => epochs.iter().find(|e| e.epoch == 0).map(|e| e.step),
        n => Some(n),
    };
    let scheduled = per_epoch.map(|n| n * u64::from(c.schedule.epochs + c.schedule.epochs_decay));
    match (c.max_steps, scheduled) {
        (0, s) => s,
        (m, Some(s)) => Some(m.min(s)),
        (m, None) => Some(m),
    }
}

/// The page of the run in `run`, from its files.
pub fn render(run: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(run.is_dir(), "{} is not a run directory", run.display());
    let config_text = fs::read_to_string(run.join("config.toml")).ok();
    let config = config_text
        .as_deref()
        .and_then(|t| toml::from_str::<TrainConfig>(t).ok());
    let abs = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let losses = read_losses(run);
    let epochs = read_epochs(run);
    let (checkpoints, latest) = read_checkpoints(run);
    let samples = read_samples(run, &epochs);
    let curves: Vec<String> = {
        // Any other plot there (e.g. an overview of several terms) first, then the loss
        // terms in their log order.
        let on_disk = pngs(&run.join("curves"));
        let known = |d: &String| StepLosses::SERIES.contains(&d.as_str());
        let mut ordered: Vec<String> = on_disk.iter().filter(|d| !known(d)).cloned().collect();
        ordered.extend(
            StepLosses::SERIES
                .iter()
                .filter(|s| on_disk.iter().any(|d| d == **s))
                .map(|s| s.to_string()),
        );
        ordered
    };
    let evals = read_evals(run);
    let (da, db) = domains(config.as_ref());

    let mut b = String::new();
    let sections = [
        ("summary", "Summary", true),
        ("evaluations", "Evaluations", !evals.is_empty()),
        ("samples", "Sample grids", !samples.is_empty()),
        ("curves", "Loss curves", !curves.is_empty()),
        ("epochs", "Epochs", !epochs.is_empty()),
        ("checkpoints", "Checkpoints", true),
        ("configuration", "Configuration", true),
        ("files", "Files", true),
    ];
    b.push_str("<nav>");
    for (id, title, shown) in sections {
        if shown {
            let _ = write!(b, "<a href=\"#{id}\">{title}</a>");
        }
    }
    b.push_str("</nav>\n");

    // Summary.
    let _ = writeln!(b, "<h2 id=\"summary\">Summary</h2>\n<dl class=\"kv\">");
    let mut kv = |k: &str, v: &str| {
        let _ = writeln!(b, "<dt>{}</dt><dd>{v}</dd>", escape(k));
    };
    match &config {
        Some(c) => {
            kv("model", &model_line(c));
            kv("data", &data_line(c));
            kv(
                "training",
                &format!(
                    "batch {}, lr {} (Adam β₁ {}), {} epochs at fixed lr + {} in linear decay{}, seed {}",
                    c.batch_size,
                    c.optim.lr,
                    c.optim.beta1,
                    c.schedule.epochs,
                    c.schedule.epochs_decay,
                    if c.schedule.early_stop { " (early stop on)" } else { "" },
                    c.seed
                ),
            );
        }
        None => kv(
            "configuration",
            "<span class=\"warn\">config.toml is missing or does not parse</span>",
        ),
    }
    let step = losses.last.map(|l| l.step).unwrap_or(0);
    let planned = config.as_ref().and_then(|c| planned_steps(c, &epochs));
    let finished = epochs.last().is_some_and(|e| e.next == "done");
    let at_max = config
        .as_ref()
        .is_some_and(|c| c.max_steps > 0 && step >= c.max_steps);
    let (badge, state) = if finished {
        (
            "ok",
            "finished (the schedule ended, or early stop ended it)",
        )
    } else if at_max {
        ("ok", "stopped at max_steps")
    } else if step == 0 {
        ("run", "not started yet")
    } else {
        (
            "run",
            "training, or stopped before the end (trainer train --resume DIR continues it)",
        )
    };
    let of = planned
        .map(|p| {
            format!(
                " of {p} planned ({:.0} %)",
                100.0 * step as f64 / p.max(1) as f64
            )
        })
        .unwrap_or_default();
    let epochs_done = epochs.last().map(|e| e.epoch + 1).unwrap_or(0);
    kv(
        "progress",
        &format!(
            "step {step}{of}, {epochs_done} epoch(s) completed <span class=\"badge {badge}\">{}</span>",
            escape(state)
        ),
    );
    if let Some(l) = &losses.last {
        kv(
            "last step",
            &format!(
                "step {} (in epoch {}), lr {}: generator {} (gan {}, cycle {}, dicycle {}, alignment {}), \
                 discriminators A {} / B {}",
                l.step,
                l.epoch + 1,
                num(l.lr),
                num(l.g_total),
                num(l.gan),
                num(l.cycle),
                num(l.dicycle),
                num(l.alignment),
                num(l.d_a),
                num(l.d_b)
            ),
        );
    }
    match latest
        .as_ref()
        .and_then(|n| checkpoints.iter().find(|c| &c.name == n))
    {
        Some(c) => kv(
            "latest checkpoint",
            &format!(
                "<a href=\"checkpoints/{0}/\"><code>checkpoints/{1}</code></a> (step {2})",
                href(&c.name),
                escape(&c.name),
                c.step.map_or("?".into(), |s| s.to_string())
            ),
        ),
        None => kv("latest checkpoint", "none yet"),
    }
    b.push_str("</dl>\n");

    // Evaluations, newest first.
    if !evals.is_empty() {
        let _ = writeln!(b, "<h2 id=\"evaluations\">Evaluations</h2>");
        for e in evals.iter().rev() {
            eval_section(&mut b, run, e);
        }
    }

    // Sample grids, newest first.
    if !samples.is_empty() {
        let n = config.as_ref().map_or(0, |c| c.output.samples);
        let _ = writeln!(
            b,
            "<h2 id=\"samples\">Sample grids</h2>\n<p class=\"note\">The same {n} slices of each domain at \
             every point, newest first. Rows: {n} {da} slices translated to {db}, then {n} {db} slices \
             translated to {da}. Columns: the source slice; the generator's output with its offset layers \
             (deformed pass); without them (undeformed pass, what synthesis uses); and that output \
             translated back (undeformed cycle), which should match the source.</p>",
            da = escape(&da),
            db = escape(&db)
        );
        let (newest, older) = samples.split_at(1);
        let s = &newest[0];
        // The newest at full size, the earlier ones beside it as thumbnails.
        let _ = writeln!(
            b,
            "<div class=\"side\"><figure><a href=\"{0}\"><img src=\"{0}\" alt=\"sample grid {1}\"></a>\
             <figcaption>newest: {1} (<code>{2}</code>)</figcaption></figure>",
            href(&s.file),
            escape(&s.caption),
            escape(&s.file)
        );
        if !older.is_empty() {
            let _ = writeln!(
                b,
                "<div><h3>Earlier ({}, newest first; click for full size)</h3>\n<div class=\"gallery\">",
                older.len()
            );
            for s in older {
                let _ = writeln!(
                    b,
                    "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"sample grid {1}\"></a>\
                     <figcaption>{1}</figcaption></figure>",
                    href(&s.file),
                    escape(&s.caption)
                );
            }
            b.push_str("</div></div>\n");
        }
        b.push_str("</div>\n");
    }

    // Loss curves.
    if !curves.is_empty() {
        let last_step = losses.last.map_or(0, |l| l.step);
        let _ = writeln!(
            b,
            "<h2 id=\"curves\">Loss curves</h2>\n<p class=\"note\">Per step (light) and moving average \
             (dark) over steps {}–{last_step}, as drawn when the plots were last written; the numbers \
             are in <a href=\"losses.csv\">losses.csv</a>. Terms that are zero throughout are not drawn.</p>\
             \n<div class=\"grid\">",
            losses.first_step
        );
        for c in &curves {
            let i = StepLosses::SERIES.iter().position(|s| *s == c.as_str());
            let stats = i
                .filter(|_| losses.steps > 0)
                .map(|i| {
                    let (lo, hi) = losses.range[i];
                    let tail = &losses.tail[i];
                    let recent = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
                    format!(
                        "<br>range {} – {}; last {}, mean of the last {} step(s) {}",
                        num(lo),
                        num(hi),
                        num(*tail.last().unwrap_or(&f64::NAN)),
                        tail.len(),
                        num(recent)
                    )
                })
                .unwrap_or_default();
            let file = format!("curves/{c}.png");
            let (class, meaning) = match i {
                Some(_) => ("", format!(" — {}", escape(series_meaning(c)))),
                None => (" class=\"wide\"", String::new()),
            };
            let _ = writeln!(
                b,
                "<figure{class}><a href=\"{0}\"><img src=\"{0}\" alt=\"{1} loss curve\"></a>\
                 <figcaption><strong>{1}</strong>{meaning}{stats}</figcaption></figure>",
                href(&file),
                escape(c),
            );
        }
        b.push_str("</div>\n");
    }

    // Epochs.
    if !epochs.is_empty() {
        let _ = writeln!(
            b,
            "<h2 id=\"epochs\">Epochs</h2>\n<details{}><summary>{} epoch(s) from \
             <a href=\"epochs.csv\">epochs.csv</a> (which counts from 0; here from 1, as the sample \
             grids do)</summary>\n<table><thead><tr><th class=\"num\">epoch</th>\
             <th class=\"num\">step</th><th class=\"num\">mean generator loss</th><th class=\"num\">lr</th>\
             <th>next stage</th></tr></thead><tbody>",
            if epochs.len() <= 12 { " open" } else { "" },
            epochs.len()
        );
        for e in epochs.iter().rev() {
            let parsed = |s: &str| s.parse::<f64>().map(num).unwrap_or_else(|_| escape(s));
            let _ = writeln!(
                b,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                e.epoch + 1,
                e.step,
                parsed(&e.mean_g),
                parsed(&e.lr),
                escape(&e.next)
            );
        }
        b.push_str("</tbody></table></details>\n");
    }

    // Checkpoints.
    let _ = writeln!(b, "<h2 id=\"checkpoints\">Checkpoints</h2>");
    if checkpoints.is_empty() {
        b.push_str(
            "<p class=\"note\">None yet: the first is written at the end of the first epoch.</p>\n",
        );
    } else {
        b.push_str(
            "<table><thead><tr><th>folder</th><th class=\"num\">step</th>\
             <th class=\"num\">epochs completed</th><th></th></tr></thead><tbody>\n",
        );
        for c in &checkpoints {
            let mark = if latest.as_ref() == Some(&c.name) {
                "<span class=\"badge ok\">latest</span>"
            } else {
                ""
            };
            let _ = writeln!(
                b,
                "<tr><td><a href=\"checkpoints/{0}/\"><code>checkpoints/{1}/</code></a></td>\
                 <td class=\"num\">{2}</td><td class=\"num\">{3}</td><td>{mark}</td></tr>",
                href(&c.name),
                escape(&c.name),
                c.step.map_or("?".into(), |s| s.to_string()),
                c.epochs.map_or("?".into(), |(e, s)| match s {
                    0 => e.to_string(),
                    s => format!("{e} + {s} steps"),
                }),
            );
        }
        b.push_str(
            "</tbody></table>\n<p class=\"note\">Each holds both generators and discriminators \
             (safetensors), the optimiser moments, the image pools, <code>state.json</code> and the \
             configuration it was trained with. <code>trainer export --run DIR</code> turns the latest into \
             the core's weight files; <code>trainer eval --run DIR --data DATA</code> scores it and adds its \
             results to this page.</p>\n",
        );
    }

    // Configuration.
    let _ = writeln!(b, "<h2 id=\"configuration\">Configuration</h2>");
    match &config_text {
        Some(t) => {
            let _ = writeln!(
                b,
                "<p class=\"note\"><a href=\"config.toml\">config.toml</a>, the full resolved configuration \
                 (<code>trainer train --config</code> starts a new run from it).</p>\n<pre>{}</pre>",
                escape(t)
            );
        }
        None => b.push_str("<p class=\"warn\">config.toml is missing.</p>\n"),
    }

    // Files.
    let _ = writeln!(b, "<h2 id=\"files\">Files</h2>\n<ul>");
    for (file, what) in [
        ("config.toml", "the configuration"),
        ("losses.csv", "every step's losses (CSV)"),
        ("losses.jsonl", "the same, one JSON object per line"),
        ("epochs.csv", "one line per epoch"),
        (
            "data-stats.json",
            "the intensity maps of both domains (used by trainer synth)",
        ),
        (EVALS, "where this run's evaluations wrote their results"),
    ] {
        if run.join(file).is_file() {
            let _ = writeln!(
                b,
                "<li><a href=\"{}\"><code>{}</code></a> — {what}</li>",
                href(file),
                escape(file)
            );
        }
    }
    b.push_str("</ul>\n");
    let _ = writeln!(
        b,
        "<footer>Generated by <code>trainer</code> from the files in this folder (rebuilt at every checkpoint, \
         at the end of training and by <code>trainer eval --run</code>; <code>trainer page --run DIR</code> \
         rebuilds it by hand). Static, relative links only: the folder can be moved or copied whole.</footer>"
    );

    let model = config.as_ref().map_or("run", |c| match c.model {
        ModelKind::Dicyclegan => "DicycleGAN",
        ModelKind::Cyclegan => "CycleGAN",
    });
    let subtitle = format!(
        "step {step}{of} · {} · <code>{}</code>",
        escape(state),
        escape(&abs.display().to_string())
    );
    Ok(document(&format!("{name} — {model} run"), &subtitle, &b))
}

/// One evaluation: its metrics table (from its `results.json`) and its example slices.
fn eval_section(b: &mut String, run: &Path, e: &EvalRecord) {
    let dir = run.join(&e.out);
    let checkpoint = e.checkpoint.as_deref().unwrap_or("the latest checkpoint");
    let _ = writeln!(
        b,
        "<h3>{} ({} pass) on <code>{}</code></h3>",
        escape(checkpoint),
        escape(&e.pass),
        escape(&e.data)
    );
    let results: Option<Vec<DirectionResult>> = fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(results) = results else {
        let _ = writeln!(
            b,
            "<p class=\"warn\">Its results are gone: <code>{}/results.json</code> is missing or unreadable.</p>",
            escape(&e.out)
        );
        return;
    };
    b.push_str(&markdown(&table::markdown(&results, None), 2));
    let link = |file: &str| {
        dir.join(file)
            .is_file()
            .then(|| format!("{}/{file}", e.out.trim_end_matches('/')))
    };
    if let Some(png) = link("examples.png") {
        let _ = writeln!(
            b,
            "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"example slices\"></a><figcaption>Example test \
             slices, one row per volume and direction. Columns: source | synthesized | ground truth \
             (source-aligned) | |difference|.</figcaption></figure>",
            href(&png)
        );
    }
    let files: Vec<String> = ["results.md", "results.json", "examples.png"]
        .into_iter()
        .filter_map(|f| link(f).map(|l| format!("<a href=\"{}\">{}</a>", href(&l), escape(f))))
        .collect();
    let _ = writeln!(
        b,
        "<p class=\"note\">In <code>{}</code>: {}.</p>",
        escape(&e.out),
        files.join(", ")
    );
}
