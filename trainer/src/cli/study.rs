//! `trainer study`: runs the paper's experiment grid (variants × settings × seeds) on the
//! simulated benchmark, resumably and in parallel, and writes the results page.
//!
//! The parent process makes the data, then runs each cell in a child process
//! (`trainer study --run-cell NAME`, one libtorch thread each, at most `--jobs` at once), so
//! cells are isolated (libtorch's global RNG and thread pool) and a failing cell cannot take
//! the others down. See [`crate::study`] for the directory layout.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::data::{self as data_cli, DataArgs, DataCommand, DeformArgs, SimulateArgs};
use crate::study::cell::{cell_dir, is_done, run_cell, TAKEN_FROM};
use crate::study::evaluate::{copy_baseline, EvalRecord};
use crate::study::figure::{write_fig4, write_ssim_plot};
use crate::study::page::{best_variant, render, splice_headline, FIG4, FIGDIR, INDEX, SSIM_PLOT};
use crate::study::plan::{
    cell_config, data_dir, default_settings, default_variants, variant, Cell, Scale, ScaleSpec,
    Setting, StudyPlan, VARIANTS,
};
use crate::train::html::relative_path;
use dicyc_volume::atomic::write_atomic;

/// `trainer study` arguments.
#[derive(Debug, Clone, Args)]
pub struct StudyArgs {
    /// Scale: `quick` (2 CPU cores, about 3 hours for the default grid), `demo` (the quick
    /// scale's 400 steps, CycleGAN against DicycleGAN on the deformed benchmark, about 10
    /// minutes), `paper` (GPU), `tiny` (tests).
    #[arg(long, value_enum, default_value = "quick")]
    pub scale: Scale,
    /// Study directory (default `studies/<scale>-<field>mm`, e.g. `studies/quick-16mm`);
    /// rerun with the same one to continue.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Cells run at once (each a process with one libtorch thread).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Seeds (comma-separated; default 0..the scale's default count).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Variants (comma-separated; default cyclegan, dicyc-4pc, dicyc-input, dicyc-shared;
    /// for `--scale demo` cyclegan, dicyc-shared).
    #[arg(long, value_delimiter = ',')]
    pub variants: Option<Vec<String>>,
    /// Settings (comma-separated; default both; for `--scale demo` deformed).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub settings: Option<Vec<Setting>>,
    /// Exactly these cells (`<variant>.<setting>.s<seed>`, comma-separated) instead of the
    /// grid of --variants × --settings × --seeds.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["seeds", "variants", "settings"])]
    pub cells: Option<Vec<String>>,
    /// Also write the results page here (e.g. docs/RESULTS.md); it is always written to
    /// `<dir>/RESULTS.md`.
    #[arg(long)]
    pub page: Option<PathBuf>,
    /// Also replace the headline table in this README (between the `trainer study
    /// headline` comment markers).
    #[arg(long)]
    pub readme: Option<PathBuf>,
    /// Only rebuild the page from what is recorded; run nothing.
    #[arg(long)]
    pub page_only: bool,
    /// Template folder for `data simulate` (default: the cache; fetched when missing).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Largest displacement of the shared field in mm, instead of the scale's (part of the
    /// study's parameters: a study directory holds one field).
    #[arg(long, value_name = "MM")]
    pub field_mm: Option<f64>,
    /// Take the finished undeformed cells from this other study of the same scale and
    /// parameters (only its field may differ: the field does not enter an undeformed cell),
    /// after checking that both hold the same undeformed data; saves retraining half the
    /// grid when only the field changes.
    #[arg(long, value_name = "DIR")]
    pub undeformed_from: Option<PathBuf>,
    /// Only make the data and the copy baseline, and write the page: to see what copying
    /// the deformation costs before training anything.
    #[arg(long)]
    pub data_only: bool,
    /// Run one cell (used by the study's own child processes).
    #[arg(long, hide = true)]
    pub run_cell: Option<String>,
}

impl StudyArgs {
    /// The study directory: `--dir`, or one named for the scale and the field (a directory
    /// holds one field, so studies of two fields never collide).
    fn dir(&self, spec: &ScaleSpec) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            PathBuf::from("studies").join(format!(
                "{}-{}mm",
                format!("{:?}", self.scale).to_lowercase(),
                spec.field_mm
            ))
        })
    }

    /// The cells this call asks for.
    fn selected(&self, plan_seeds: u32) -> Result<Vec<Cell>> {
        if let Some(names) = &self.cells {
            return names.iter().map(|n| Cell::parse(n)).collect();
        }
        let variants: Vec<&str> = match &self.variants {
            Some(v) => v
                .iter()
                .map(|n| variant(n).map(|v| v.name))
                .collect::<Result<_>>()?,
            None => default_variants(self.scale)
                .iter()
                .map(|v| v.name)
                .collect(),
        };
        let settings = self
            .settings
            .clone()
            .unwrap_or_else(|| default_settings(self.scale));
        let seeds = self
            .seeds
            .clone()
            .unwrap_or_else(|| (0..u64::from(plan_seeds)).collect());
        let mut cells = Vec::new();
        for &seed in &seeds {
            for &setting in &settings {
                for &v in &variants {
                    cells.push(Cell {
                        variant: v.to_string(),
                        setting,
                        seed,
                    });
                }
            }
        }
        anyhow::ensure!(!cells.is_empty(), "the selection holds no cell");
        Ok(cells)
    }
}

/// Where the page goes besides the study directory.
struct Outputs {
    page: Option<PathBuf>,
    readme: Option<PathBuf>,
}

/// Runs `trainer study`.
pub fn run(a: &StudyArgs) -> Result<()> {
    let mut spec = a.scale.spec();
    if let Some(mm) = a.field_mm {
        anyhow::ensure!(
            mm.is_finite() && mm >= 0.0,
            "--field-mm must be a displacement >= 0 in mm, got {mm}"
        );
        spec.field_mm = mm;
    }
    let dir = a.dir(&spec);
    let outputs = Outputs {
        page: a.page.clone(),
        readme: a.readme.clone(),
    };
    if let Some(name) = &a.run_cell {
        return run_child(&dir, name);
    }
    let t0 = Instant::now();
    let mut plan = match StudyPlan::load(&dir)? {
        Some(plan) => {
            plan.check_spec(a.scale, &spec, &dir)?;
            plan
        }
        None => {
            if a.page_only {
                bail!(
                    "{} holds no study (no study.json): run `trainer study` first",
                    dir.display()
                );
            }
            StudyPlan {
                scale: a.scale,
                spec: spec.clone(),
                cells: Vec::new(),
                commands: Vec::new(),
            }
        }
    };
    if a.page_only {
        return write_page(&dir, &plan, &outputs);
    }
    anyhow::ensure!(a.jobs >= 1, "--jobs must be at least 1");
    let selected = if a.data_only {
        Vec::new()
    } else {
        a.selected(spec.default_seeds)?
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = StudyLock::take(&dir)?;
    plan.extend(&selected, command_line())?;
    plan.save(&dir)?;

    make_data(&dir, &plan, a)?;
    copy_record(&dir)?;
    if let Some(from) = &a.undeformed_from {
        let taken = take_undeformed(&dir, &plan, from, &selected)?;
        eprintln!(
            "study {}: {taken} finished undeformed cell(s) taken from {}",
            dir.display(),
            from.display()
        );
    }
    if a.data_only {
        write_page(&dir, &plan, &outputs)?;
        eprintln!(
            "study {}: data and copy baseline ready; page {}",
            dir.display(),
            dir.join("RESULTS.md").display()
        );
        return Ok(());
    }

    let mut queue: Vec<Cell> = selected
        .iter()
        .filter(|c| !is_done(&dir, &plan, c))
        .cloned()
        .collect();
    // Deformed (the paper's point) before undeformed, low seeds first: a study stopped early
    // still has the most telling cells.
    queue.sort_by_key(|c| (c.seed, c.setting != Setting::Deformed));
    let total = queue.len();
    eprintln!(
        "study {}: {} cell(s) selected, {} to run, {} job(s) at once",
        dir.display(),
        selected.len(),
        total,
        a.jobs
    );
    let mut running: Vec<(Cell, Child, Instant)> = Vec::new();
    let mut finished = 0usize;
    let mut failures = Vec::new();
    queue.reverse();
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < a.jobs {
            let Some(cell) = queue.pop() else { break };
            let child = spawn_cell(&dir, a.scale, &cell)?;
            eprintln!("  started {}", cell.name());
            running.push((cell, child, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.try_wait()? {
                let (cell, _, started) = running.remove(i);
                finished += 1;
                let minutes = started.elapsed().as_secs_f64() / 60.0;
                if status.success() {
                    eprintln!(
                        "  [{finished}/{total}] {} done in {minutes:.1} min",
                        cell.name()
                    );
                } else {
                    record_failure(
                        &dir,
                        &cell,
                        &format!("the cell's process exited with {status}"),
                    )?;
                    eprintln!(
                        "  [{finished}/{total}] {} FAILED after {minutes:.1} min (see {})",
                        cell.name(),
                        cell_dir(&dir, &cell).join("log.txt").display()
                    );
                    failures.push(cell.name());
                }
                write_page_quietly(&dir, &plan, &outputs);
            } else {
                i += 1;
            }
        }
    }
    write_page(&dir, &plan, &outputs)?;
    eprintln!(
        "study {}: finished in {:.1} min; page {}{}",
        dir.display(),
        t0.elapsed().as_secs_f64() / 60.0,
        dir.join("RESULTS.md").display(),
        a.page
            .as_ref()
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    );
    if !failures.is_empty() {
        bail!(
            "{} cell(s) failed: {} (their errors are on the page; rerun the same command to retry them)",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

/// The child side: one cell; a failure is recorded in the cell's `failed.json`.
fn run_child(dir: &Path, name: &str) -> Result<()> {
    let plan =
        StudyPlan::load(dir)?.with_context(|| format!("{} holds no study.json", dir.display()))?;
    let cell = Cell::parse(name)?;
    if let Err(err) = run_cell(dir, &plan, &cell) {
        record_failure(dir, &cell, &format!("{err:#}"))?;
        return Err(err);
    }
    Ok(())
}

fn record_failure(dir: &Path, cell: &Cell, error: &str) -> Result<()> {
    let path = cell_dir(dir, cell).join("failed.json");
    if path.exists() && error.starts_with("the cell's process exited") {
        return Ok(()); // the child recorded its own, more precise error
    }
    std::fs::create_dir_all(cell_dir(dir, cell))?;
    write_atomic(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({ "cell": cell.name(), "error": error }))?
            .as_bytes(),
    )
}

fn spawn_cell(dir: &Path, scale: Scale, cell: &Cell) -> Result<Child> {
    let cdir = cell_dir(dir, cell);
    std::fs::create_dir_all(&cdir).with_context(|| format!("creating {}", cdir.display()))?;
    let _ = std::fs::remove_file(cdir.join("failed.json"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cdir.join("log.txt"))
        .with_context(|| format!("opening {}", cdir.join("log.txt").display()))?;
    let exe = std::env::current_exe().context("locating the trainer executable")?;
    Command::new(exe)
        .arg("study")
        .arg("--scale")
        .arg(format!("{scale:?}").to_lowercase())
        .arg("--dir")
        .arg(dir)
        .arg("--run-cell")
        .arg(cell.name())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the process of cell {}", cell.name()))
}

/// The benchmark (undeformed) and its deformed copy, made once; a marker file written last
/// tells a complete data folder from one a killed study left half-written.
fn make_data(dir: &Path, plan: &StudyPlan, a: &StudyArgs) -> Result<()> {
    let spec = &plan.spec;
    let plain = data_dir(dir, Setting::Undeformed);
    let marker = ".study-complete";
    if !plain.join(marker).exists() {
        eprintln!("study: simulating the benchmark into {}", plain.display());
        data_cli::run(&DataArgs {
            command: DataCommand::Simulate(SimulateArgs {
                out: plain.clone(),
                template: a.template.clone(),
                no_fetch: false,
                seed: 0,
                train: spec.train_subjects,
                test: spec.test_subjects,
                voxel_mm: spec.voxel_mm,
                slices: spec.slices,
                small: false,
                phantom: spec.phantom,
                force: true,
            }),
        })?;
        write_atomic(&plain.join(marker), b"")?;
    }
    let deformed = data_dir(dir, Setting::Deformed);
    if !deformed.join(marker).exists() {
        eprintln!(
            "study: deforming every T2 with one shared {} mm field into {}",
            spec.field_mm,
            deformed.display()
        );
        data_cli::run(&DataArgs {
            command: DataCommand::Deform(DeformArgs {
                data: plain,
                out: deformed.clone(),
                domain: "t2".into(),
                other: "pd".into(),
                seed: 1,
                max_displacement_mm: spec.field_mm,
                max_freq: 1.0,
                jitter: 0.0,
                force: true,
            }),
        })?;
        write_atomic(&deformed.join(marker), b"")?;
    }
    Ok(())
}

/// `--undeformed-from`: copies the records (evaluations, log) of the selected undeformed
/// cells that `from` finished and this study has not, after checking that nothing but the
/// field differs between the two studies and that their undeformed data are the same bytes.
/// Each copied cell keeps a [`TAKEN_FROM`] file naming its origin. Returns how many were taken.
fn take_undeformed(dir: &Path, plan: &StudyPlan, from: &Path, selected: &[Cell]) -> Result<usize> {
    let other = StudyPlan::load(from)?
        .with_context(|| format!("--undeformed-from {}: no study.json there", from.display()))?;
    let mut other_spec = other.spec.clone();
    other_spec.field_mm = plan.spec.field_mm;
    anyhow::ensure!(
        other.scale == plan.scale && other_spec == plan.spec,
        "--undeformed-from {}: that study has other parameters than {} (besides the field); \
         its undeformed cells are not this study's",
        from.display(),
        dir.display()
    );
    let ours = data_dir(dir, Setting::Undeformed);
    let theirs = data_dir(from, Setting::Undeformed);
    same_tree(&ours, &theirs).with_context(|| {
        format!(
            "--undeformed-from {}: its undeformed data differ from {}'s",
            from.display(),
            dir.display()
        )
    })?;
    let mut taken = 0;
    for cell in selected.iter().filter(|c| c.setting == Setting::Undeformed) {
        if is_done(dir, plan, cell) || !is_done(from, &other, cell) {
            continue;
        }
        // The configurations must agree once the data paths (the only thing that names the
        // directory) are set to ours.
        let mut theirs_config = cell_config(&other.spec, cell, from)?;
        theirs_config.data = cell_config(&plan.spec, cell, dir)?.data;
        anyhow::ensure!(
            theirs_config == cell_config(&plan.spec, cell, dir)?,
            "--undeformed-from {}: cell {} was trained with another configuration",
            from.display(),
            cell.name()
        );
        let (src, dst) = (cell_dir(from, cell), cell_dir(dir, cell));
        std::fs::create_dir_all(&dst).with_context(|| format!("creating {}", dst.display()))?;
        for entry in
            std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))?
        {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("eval-") && name.ends_with(".json") || name == "log.txt" {
                let bytes = std::fs::read(src.join(&*name))
                    .with_context(|| format!("reading {}", src.join(&*name).display()))?;
                write_atomic(&dst.join(&*name), &bytes)?;
            }
        }
        write_atomic(
            &dst.join(TAKEN_FROM),
            format!("{}\n", from.display()).as_bytes(),
        )?;
        taken += 1;
    }
    Ok(taken)
}

/// Fails unless the two folders hold the same files with the same bytes (the study's own
/// marker files included).
fn same_tree(a: &Path, b: &Path) -> Result<()> {
    let list = |root: &Path| -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(root)?.to_path_buf());
                }
            }
        }
        files.sort();
        Ok(files)
    };
    let (fa, fb) = (list(a)?, list(b)?);
    anyhow::ensure!(
        fa == fb,
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    for f in &fa {
        let read = |root: &Path| {
            std::fs::read(root.join(f))
                .with_context(|| format!("reading {}", root.join(f).display()))
        };
        anyhow::ensure!(read(a)? == read(b)?, "{} differs", f.display());
    }
    Ok(())
}

/// The copy-the-target-geometry baseline, computed once (`copy.json`).
fn copy_record(dir: &Path) -> Result<()> {
    let path = dir.join("copy.json");
    if !path.exists() {
        let record = copy_baseline(&data_dir(dir, Setting::Deformed))?;
        write_atomic(&path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    Ok(())
}

/// Draws the figures (when the runs they need are on disk), then writes the page into the
/// study directory and to `also`, with figure links relative to each.
fn write_page(dir: &Path, plan: &StudyPlan, outputs: &Outputs) -> Result<()> {
    if let Some(best) = best_variant(dir, plan)? {
        let seed = plan.cells.iter().map(|c| c.seed).min().unwrap_or(0);
        if write_fig4(dir, plan, &best, seed, 2, &dir.join(FIG4))? {
            eprintln!(
                "study: {} drawn with {best} (seed {seed})",
                dir.join(FIG4).display()
            );
        }
    }
    let variants: Vec<&str> = VARIANTS
        .iter()
        .map(|v| v.name)
        .filter(|v| plan.cells.iter().any(|c| c.variant == *v))
        .collect();
    write_ssim_plot(dir, plan, &variants, &dir.join(SSIM_PLOT))?;
    write_pages(dir, plan, outputs)
}

/// The page and `results.json` only (no figures): after each finished cell.
fn write_pages(dir: &Path, plan: &StudyPlan, outputs: &Outputs) -> Result<()> {
    let copy: Option<EvalRecord> = std::fs::read_to_string(dir.join("copy.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let r = render(dir, plan, copy.as_ref())?;
    write_atomic(
        &dir.join("RESULTS.md"),
        r.page.replace(FIGDIR, ".").as_bytes(),
    )?;
    write_atomic(&dir.join("results.json"), r.json.as_bytes())?;
    write_atomic(&dir.join(INDEX), r.index.as_bytes())?;
    if let Some(p) = &outputs.page {
        let rel = relative_path(dir, p.parent().unwrap_or(Path::new(".")));
        write_atomic(p, r.page.replace(FIGDIR, &rel).as_bytes())?;
    }
    if let Some(readme) = &outputs.readme {
        let text = std::fs::read_to_string(readme)
            .with_context(|| format!("reading {}", readme.display()))?;
        let text = splice_headline(&text, &r.headline)
            .with_context(|| format!("--readme {}", readme.display()))?;
        write_atomic(readme, text.as_bytes())?;
    }
    Ok(())
}

fn write_page_quietly(dir: &Path, plan: &StudyPlan, outputs: &Outputs) {
    if let Err(err) = write_pages(dir, plan, outputs) {
        eprintln!("  (the page could not be rebuilt yet: {err:#})");
    }
}

fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "trainer".into();
    }
    args.join(" ")
}

/// One study process per directory: `<dir>/.lock` holds the owner's pid; a lock whose
/// process is gone (a killed study) is taken over.
struct StudyLock {
    path: PathBuf,
}

impl StudyLock {
    fn take(dir: &Path) -> Result<StudyLock> {
        let path = dir.join(".lock");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                let alive = Path::new(&format!("/proc/{pid}")).exists();
                if alive && pid != std::process::id() {
                    bail!(
                        "another `trainer study` (pid {pid}) is running in {}: wait for it or stop it first",
                        dir.display()
                    );
                }
            }
        }
        write_atomic(&path, std::process::id().to_string().as_bytes())?;
        Ok(StudyLock { path })
    }
}

impl Drop for StudyLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
