//! `trainer eval`: metrics of synthesized volumes against ground truths, per direction;
//! prints the paper-style table and writes `results.md`, `results.json`, `examples.png`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dicyc_volume::atomic::write_atomic;

use crate::eval::figure::{write_figure, FigureRow};
use crate::eval::table::markdown;
use crate::eval::{evaluate, DirectionSpec};
use crate::train::run_page;

/// `trainer eval` arguments. Either a model on a dataset (`--run RUN --data DIR`: both
/// directions of `DIR/test` are synthesized into `<out>/synth/` and evaluated), or folders
/// of predictions: one `--pred`/`--truth`/`--name` triple per direction (repeat the flags);
/// `--source` and `--mask` are optional, once per direction when given.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory to evaluate (with --data): synthesizes, then evaluates both directions,
    /// and shows the results on the run's page (index.html; recorded in its evals.json).
    #[arg(long, requires = "data", conflicts_with_all = ["names", "preds", "truths"])]
    pub run: Option<PathBuf>,
    /// Dataset with `test/<a>`, `test/<b>` and optionally `test/gt-<a|b>`, `test/mask`,
    /// `test/mask-<b>` (the layout of `trainer data simulate` / `deform`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Checkpoint folder of --run (default: its latest).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Domain folder names A and B in --data.
    #[arg(long, num_args = 2, default_values = ["pd", "t2"])]
    pub domains: Vec<String>,
    /// Pass used with --run.
    #[arg(long, value_parser = dicyc_volume::slicewise::parse_pass, default_value = "undeformed")]
    pub pass: crate::model::Pass,
    /// Device used with --run.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: crate::device::DeviceChoice,
    /// Direction label, e.g. "PD→T2" (one per direction).
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Folder of synthesized volumes (one per direction).
    #[arg(long = "pred")]
    pub preds: Vec<PathBuf>,
    /// Folder of source-aligned ground truths, same file names (one per direction).
    #[arg(long = "truth")]
    pub truths: Vec<PathBuf>,
    /// Folder of source volumes, for the figure (none, or one per direction).
    #[arg(long = "source")]
    pub sources: Vec<PathBuf>,
    /// Folder of ROI masks, same file names (none, or one per direction).
    #[arg(long = "mask")]
    pub masks: Vec<PathBuf>,
    /// Where to write results.md, results.json and examples.png.
    #[arg(long, default_value = "out/eval")]
    pub out: PathBuf,
    /// Example volumes per direction in the figure.
    #[arg(long, default_value_t = 2)]
    pub examples: usize,
    /// Title of the table (e.g. the model's name).
    #[arg(long)]
    pub title: Option<String>,
}

fn model_specs(a: &EvalArgs, run: &std::path::Path) -> Result<Vec<DirectionSpec>> {
    use crate::cli::synth::{self, SynthArgs};
    use crate::inference::Direction;
    let data = a.data.as_ref().context("--run needs --data")?;
    let test = data.join("test");
    let (da, db) = (&a.domains[0], &a.domains[1]);
    let pick = |first: String, second: String| {
        let p = test.join(&first);
        if p.is_dir() {
            p
        } else {
            test.join(second)
        }
    };
    let mut specs = Vec::new();
    for (dir, src, dst) in [(Direction::A2b, da, db), (Direction::B2a, db, da)] {
        let tag = if dir == Direction::A2b { "a2b" } else { "b2a" };
        let pred = a.out.join("synth").join(tag);
        synth::run(&SynthArgs {
            run: Some(run.to_path_buf()),
            weights: None,
            checkpoint: a.checkpoint.clone(),
            input: test.join(src),
            out: pred.clone(),
            direction: dir,
            pass: a.pass,
            batch: 8,
            device: a.device,
            stats: None,
        })?;
        let mask = if dir == Direction::A2b {
            test.join("mask")
        } else {
            pick(format!("mask-{src}"), "mask".into())
        };
        specs.push(DirectionSpec {
            name: format!("{}→{}", src.to_uppercase(), dst.to_uppercase()),
            pred,
            truth: pick(format!("gt-{dst}"), dst.clone()),
            source: Some(test.join(src)),
            mask: mask.is_dir().then_some(mask),
        });
    }
    Ok(specs)
}

/// Runs `trainer eval`.
pub fn run(a: &EvalArgs) -> Result<()> {
    let t0 = Instant::now();
    if let Some(run) = &a.run {
        let specs = model_specs(a, run)?;
        evaluate_and_report(a, specs, t0)?;
        // The run's page shows this evaluation (evals.json records where it went).
        let data = a.data.as_deref().unwrap_or(std::path::Path::new("?"));
        let pass = format!("{:?}", a.pass).to_lowercase();
        let page = run_page::add_eval(run, &a.out, a.checkpoint.as_deref(), data, &pass)?;
        eprintln!("updated the run page {}", page.display());
        return Ok(());
    }
    let n = a.names.len();
    if n == 0 {
        bail!("give --run RUN --data DIR, or --name/--pred/--truth per direction");
    }
    if a.preds.len() != n || a.truths.len() != n {
        bail!(
            "give one --pred and one --truth per --name ({} names, {} preds, {} truths)",
            n,
            a.preds.len(),
            a.truths.len()
        );
    }
    for (what, v) in [("--source", &a.sources), ("--mask", &a.masks)] {
        if !v.is_empty() && v.len() != n {
            bail!(
                "{what}: give none or one per direction ({} given, {n} directions)",
                v.len()
            );
        }
    }
    let specs = (0..n)
        .map(|i| DirectionSpec {
            name: a.names[i].clone(),
            pred: a.preds[i].clone(),
            truth: a.truths[i].clone(),
            source: a.sources.get(i).cloned(),
            mask: a.masks.get(i).cloned(),
        })
        .collect();
    evaluate_and_report(a, specs, t0)
}

fn evaluate_and_report(a: &EvalArgs, specs: Vec<DirectionSpec>, t0: Instant) -> Result<()> {
    let mut results = Vec::new();
    let mut examples = Vec::new();
    for spec in specs {
        let pb = indicatif::ProgressBar::new(
            crate::data::nifti_io::list_volumes(&spec.truth).map_or(0, |v| v.len() as u64),
        );
        pb.set_message(spec.name.clone());
        let (r, ex) = evaluate(&spec, a.examples, Some(&pb))?;
        pb.finish_and_clear();
        results.push(r);
        // The figure's labels are ASCII.
        let direction = spec.name.replace('→', "->");
        examples.extend(ex.into_iter().map(|e| (direction.clone(), e)));
    }
    let md = markdown(&results, a.title.as_deref());
    println!("{md}");
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let write = |name: &str, text: &str| write_atomic(&a.out.join(name), text.as_bytes());
    write("results.md", &md)?;
    write("results.json", &serde_json::to_string_pretty(&results)?)?;
    let rows: Vec<FigureRow<'_>> = examples
        .iter()
        .map(|(direction, e)| FigureRow {
            source: e.source.as_ref().map(|s| s.view()),
            synth: e.synth.view(),
            truth: e.truth.view(),
            direction,
            subject: &e.subject,
            slice: e.slice,
        })
        .collect();
    if !rows.is_empty() {
        write_figure(&a.out.join("examples.png"), &rows)?;
    }
    eprintln!(
        "wrote {}/results.md, results.json, examples.png (columns: source | synthesized | ground truth | |difference|) in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
