//! A run directory: `config.toml` (the full resolved configuration, re-usable with
//! `--config`), `losses.jsonl` and `losses.csv` (one row per step), `epochs.csv`,
//! `samples/epoch-<N>.png`, `curves/<loss>.png`, `checkpoints/` and `run.lock` (held by the
//! process training into it: see [`RunLock`]).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use dicyc_volume::atomic::write_atomic;

/// The losses of one optimisation step. Fields a run's `losses.jsonl` lacks (written before
/// a term existed) read as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepLosses {
    /// Global step (1-based: the step that produced these losses).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: u32,
    /// Learning rate used.
    pub lr: f64,
    /// Total generator loss (weighted sum).
    pub g_total: f64,
    /// LSGAN generator loss (both directions, deformed outputs).
    pub gan: f64,
    /// Undeformed cycle L1 (both directions).
    pub cycle: f64,
    /// Deformation-invariant cycle L1 (both directions; 0 for CycleGAN).
    pub dicycle: f64,
    /// Alignment loss `2 − NMI − NMI` (0 for CycleGAN).
    pub alignment: f64,
    /// Identity L1 (0 when off).
    pub identity: f64,
    /// LSGAN generator loss on the undeformed outputs (0 when `loss.gan_undeformed` is off).
    pub gan_undeformed: f64,
    /// Offset penalty: `offset_magnitude · mean(offset²) + offset_smoothness · roughness`,
    /// already weighted (0 when both are off).
    pub offset: f64,
    /// Discriminator A's loss.
    pub d_a: f64,
    /// Discriminator B's loss.
    pub d_b: f64,
}

impl StepLosses {
    /// Names of the plotted series, in CSV order after `step, epoch, lr`.
    pub const SERIES: [&'static str; 10] = [
        "g_total",
        "gan",
        "cycle",
        "dicycle",
        "alignment",
        "identity",
        "gan_undeformed",
        "offset",
        "d_a",
        "d_b",
    ];

    /// The plotted values in [`Self::SERIES`] order.
    pub fn values(&self) -> [f64; 10] {
        [
            self.g_total,
            self.gan,
            self.cycle,
            self.dicycle,
            self.alignment,
            self.identity,
            self.gan_undeformed,
            self.offset,
            self.d_a,
            self.d_b,
        ]
    }

    /// Whether every loss is finite.
    pub fn all_finite(&self) -> bool {
        self.values().iter().all(|v| v.is_finite())
    }
}

/// The exclusive right to write into a run directory: an OS file lock (`flock`) on
/// `run.lock` in it, held while the value lives. The OS releases it when the process ends,
/// however it ends (a SIGKILL included), so a killed run can be resumed at once; a pid file
/// alone could not tell a dead holder from a live one that reused its pid. The file holds
/// the holder's pid, for the message a second process gets.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    _file: File,
}

impl RunLock {
    /// The lock file's name in a run directory.
    pub const FILE: &'static str = "run.lock";

    /// Locks the run directory `dir` (which must exist), or fails at once, naming the lock
    /// and the process holding it, when another process holds it.
    pub fn acquire(dir: &Path) -> anyhow::Result<RunLock> {
        let path = dir.join(Self::FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run directory's lock file {}", path.display()))?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{} is in use: another trainer process{holder} holds its lock {}. Two processes in one \
                     run directory would mix their checkpoints, logs and configuration; wait for that \
                     process to finish (or stop it), or choose another run directory",
                    dir.display(),
                    path.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when another open file
/// holds one. `flock(2)` through rustix's safe API (std's `File::try_lock` needs Rust 1.89,
/// above the workspace's MSRV).
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// [`try_lock`] where there is no `flock(2)`: std's lock (`LockFileEx` on Windows), which
/// needs Rust 1.89 there.
#[cfg(not(unix))]
#[allow(clippy::incompatible_msrv)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A run directory on disk, locked ([`RunLock`]) for as long as the value lives.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    jsonl: File,
    csv: File,
    _lock: RunLock,
}

const CSV_HEADER: &str =
    "step,epoch,lr,g_total,gan,cycle,dicycle,alignment,identity,gan_undeformed,offset,d_a,d_b";

impl RunDir {
    /// Creates a fresh run directory, locks it, refuses it if it already holds a run (checked
    /// under the lock, so of two processes starting into one directory only one gets it) and
    /// writes `config.toml`.
    pub fn create(path: &Path, config: &TrainConfig) -> anyhow::Result<RunDir> {
        fs::create_dir_all(path)
            .with_context(|| format!("creating the run directory {}", path.display()))?;
        let lock = RunLock::acquire(path)?;
        if path.join("config.toml").exists() {
            let started = path.join("checkpoints").join("latest").exists();
            if started {
                anyhow::bail!(
                    "{} already holds a run (config.toml exists): continue it with --resume {} or choose \
                     another --run-dir",
                    path.display(),
                    path.display()
                );
            }
            anyhow::bail!(
                "{} already holds a run that has no checkpoint yet (config.toml exists; the run was \
                 stopped before its first checkpoint): --resume {} starts it over from step 0 with that \
                 config.toml; to start a different run, delete {} or choose another --run-dir",
                path.display(),
                path.display(),
                path.display()
            );
        }
        write_atomic(&path.join("config.toml"), config.to_toml()?.as_bytes())?;
        for name in ["losses.jsonl", "losses.csv", "epochs.csv"] {
            let _ = fs::remove_file(path.join(name));
        }
        Self::open_logs(lock)
    }

    /// Opens an existing run directory for resuming at `global_step`, locking it: the logs
    /// are cut to the steps the checkpoint contains.
    pub fn open(path: &Path, global_step: u64) -> anyhow::Result<RunDir> {
        Self::open_locked(RunLock::acquire(path)?, global_step)
    }

    /// [`RunDir::open`] of a directory already locked (a resume locks it before it reads the
    /// checkpoint).
    pub fn open_locked(lock: RunLock, global_step: u64) -> anyhow::Result<RunDir> {
        let path = lock.dir();
        truncate_lines(&path.join("losses.jsonl"), |line| {
            serde_json::from_str::<StepLosses>(line)
                .map(|l| l.step <= global_step)
                .unwrap_or(false)
        })?;
        truncate_lines(&path.join("losses.csv"), |line| {
            line.starts_with("step")
                || line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s <= global_step)
        })?;
        truncate_lines(&path.join("epochs.csv"), |line| {
            line.starts_with("epoch")
                || line
                    .split(',')
                    .nth(1)
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s <= global_step)
        })?;
        Self::open_logs(lock)
    }

    fn open_logs(lock: RunLock) -> anyhow::Result<RunDir> {
        let path = lock.dir();
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.join(name))
                .with_context(|| format!("opening {}", path.join(name).display()))
        };
        let jsonl = append("losses.jsonl")?;
        let mut csv = append("losses.csv")?;
        if csv.metadata()?.len() == 0 {
            writeln!(csv, "{CSV_HEADER}")?;
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            jsonl,
            csv,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one step's losses to `losses.jsonl` and `losses.csv`.
    /// Each line goes out in one write, so a process killed midway leaves at most a partial
    /// last line, which [`RunDir::open`] drops.
    pub fn log_step(&mut self, losses: &StepLosses) -> anyhow::Result<()> {
        let json = format!("{}\n", serde_json::to_string(losses)?);
        self.jsonl
            .write_all(json.as_bytes())
            .context("writing losses.jsonl")?;
        let values: Vec<String> = losses.values().iter().map(|v| format!("{v:.6e}")).collect();
        let csv = format!(
            "{},{},{:.6e},{}\n",
            losses.step,
            losses.epoch,
            losses.lr,
            values.join(",")
        );
        self.csv
            .write_all(csv.as_bytes())
            .context("writing losses.csv")
    }

    /// Appends the epoch summary to `epochs.csv`.
    pub fn log_epoch(
        &mut self,
        epoch: u32,
        steps: u64,
        mean_g_total: f64,
        lr: f64,
        stage: &str,
    ) -> anyhow::Result<()> {
        let path = self.path.join("epochs.csv");
        let new = !path.exists();
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if new {
            writeln!(file, "epoch,global_step,mean_g_total,lr,next_stage")?;
        }
        let line = format!("{epoch},{steps},{mean_g_total:.6e},{lr:.6e},{stage}\n");
        file.write_all(line.as_bytes())
            .context("writing epochs.csv")
    }

    /// Every logged step so far (read back from `losses.jsonl`).
    pub fn history(&self) -> anyhow::Result<Vec<StepLosses>> {
        let path = self.path.join("losses.jsonl");
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            if let Ok(l) = serde_json::from_str(&line) {
                out.push(l);
            }
        }
        Ok(out)
    }
}

fn truncate_lines(path: &Path, keep: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // A last line without its newline is a write cut short (a killed process): dropped, even
    // where what is left of it would parse (`1` of `12,0,…`).
    let kept: String = text
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| keep(l))
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}
