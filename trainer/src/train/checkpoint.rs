//! Checkpoints that survive crashes: each is a directory `checkpoints/step-<N>/` written
//! under a temporary name, every file fsynced, then renamed into place; the text file
//! `checkpoints/latest` (itself replaced atomically) names the newest complete one. A crash
//! at any moment leaves the previous checkpoint and pointer intact.
//!
//! Contents (all safetensors files open with Python's `safetensors` / `torch`):
//! `g_ab.safetensors`, `g_ba.safetensors` (generator weights under the core's tensor names),
//! `d_a.safetensors`, `d_b.safetensors`, `adam_g.safetensors`, `adam_d.safetensors`
//! (moments + step), `pools.safetensors` (image pools), `state.json` (epoch, step,
//! schedule, host RNG position) and `config.toml` (the configuration the checkpoint was
//! trained with, which a resume checks the run's `config.toml` against; checkpoints written
//! before it was recorded lack it).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dicyc_volume::atomic::write_atomic;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::schedule::Schedule;

/// The configuration a checkpoint was trained with: `config.toml` in its folder, or `None`
/// for a checkpoint written before checkpoints recorded theirs.
pub fn recorded_config(checkpoint: &Path) -> anyhow::Result<Option<TrainConfig>> {
    let path = checkpoint.join(CHECKPOINT_CONFIG);
    if !path.exists() {
        return Ok(None);
    }
    TrainConfig::load(&path).map(Some)
}

/// The name of a checkpoint's own configuration file.
pub const CHECKPOINT_CONFIG: &str = "config.toml";

/// Where a run is (everything but tensors), saved as `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Current epoch (0-based).
    pub epoch: u32,
    /// Steps already taken in the current epoch.
    pub step_in_epoch: u64,
    /// Steps taken in total.
    pub global_step: u64,
    /// Sum of the current epoch's total generator losses so far.
    pub epoch_loss_sum: f64,
    /// Schedule and early-stop state.
    pub schedule: Schedule,
    /// Host RNG (ChaCha8, seeded with the configuration's seed) word position, as a decimal
    /// string (a u128).
    pub rng_word_pos: String,
}

/// Writes `bytes` to `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// Fsyncs an already written file.
pub fn sync_file(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

fn sync_dir(path: &Path) -> anyhow::Result<()> {
    // Directory fsync makes renames durable (POSIX); not supported everywhere, so best effort.
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The checkpoints folder of a run.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// `run_dir/checkpoints`, created if missing.
    pub fn new(run_dir: &Path) -> anyhow::Result<Checkpoints> {
        let dir = run_dir.join("checkpoints");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Checkpoints { dir })
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a checkpoint for `step`: `fill` writes the files into the folder it is given
    /// (a temporary one); they are fsynced, the folder renamed to `step-<N>`, `latest`
    /// repointed and all but the newest `keep` checkpoints removed. Returns its path.
    pub fn write(
        &self,
        step: u64,
        keep: usize,
        fill: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        // A second checkpoint at the same step (e.g. `checkpoint_every` and the epoch's end)
        // gets the next repeat, `step-N.1`, `step-N.2`, …, after every existing one, so that it
        // sorts newest and pruning never removes it; the one `latest` names is never touched.
        let base = format!("step-{step:09}");
        let name = match self.repeats_of(step)?.into_iter().max() {
            None => base,
            Some(last) => format!("{base}.{}", last + 1),
        };
        let tmp = self.dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let filled = fill(&tmp).and_then(|()| {
            for entry in fs::read_dir(&tmp)? {
                sync_file(&entry?.path())?;
            }
            sync_dir(&tmp)
        });
        if let Err(e) = filled {
            // A partial checkpoint is never left behind (on a full disk it would keep the
            // disk full); `latest` still names the previous one.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.context(format!(
                "writing checkpoint {name} (the partial one was removed; check the free space \
                 in {})",
                self.dir.display()
            )));
        }
        let final_dir = self.dir.join(&name);
        fs::rename(&tmp, &final_dir)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        sync_dir(&self.dir)?;
        write_atomic(&self.dir.join("latest"), format!("{name}\n").as_bytes())?;
        self.prune(keep)?;
        Ok(final_dir)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> anyhow::Result<Option<PathBuf>> {
        let pointer = self.dir.join("latest");
        if !pointer.exists() {
            return Ok(None);
        }
        let name = fs::read_to_string(&pointer)
            .with_context(|| format!("reading {}", pointer.display()))?;
        let path = self.dir.join(name.trim());
        anyhow::ensure!(
            path.is_dir(),
            "{} names {}, which does not exist: the run directory was modified by hand",
            pointer.display(),
            path.display()
        );
        Ok(Some(path))
    }

    /// The repeat numbers of the checkpoints of `step` on disk: 0 for `step-N`, k for
    /// `step-N.k`.
    fn repeats_of(&self, step: u64) -> anyhow::Result<Vec<u64>> {
        let base = format!("step-{step:09}");
        let mut repeats = Vec::new();
        for entry in
            fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))?
        {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name == base {
                repeats.push(0);
            } else if let Some(k) = name
                .strip_prefix(&base)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|k| k.parse::<u64>().ok())
            {
                repeats.push(k);
            }
        }
        Ok(repeats)
    }

    fn prune(&self, keep: usize) -> anyhow::Result<()> {
        let mut steps: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
            })
            .collect();
        // Order by (step, repeat) — `step-N.k` — not by name.
        let key = |p: &PathBuf| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rest = name.trim_start_matches("step-");
            let (step, repeat) = rest.split_once('.').unwrap_or((rest, "0"));
            (
                step.parse::<u64>().unwrap_or(0),
                repeat.parse::<u64>().unwrap_or(0),
            )
        };
        steps.sort_by_key(key);
        let excess = steps.len().saturating_sub(keep.max(1));
        for old in &steps[..excess] {
            fs::remove_dir_all(old)
                .with_context(|| format!("removing old checkpoint {}", old.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &Checkpoints) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(c.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn repeats_at_one_step_sort_newest_and_latest_always_exists() {
        let run = dicyc_volume::testing::scratch_dir("checkpoint", "repeats");
        let c = Checkpoints::new(&run).unwrap();
        let mut written = Vec::new();
        for _ in 0..5 {
            let p = c.write(7, 2, |d| write_synced(&d.join("x"), b"x")).unwrap();
            assert_eq!(c.latest().unwrap().as_deref(), Some(p.as_path()));
            written.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            written,
            [
                "step-000000007",
                "step-000000007.1",
                "step-000000007.2",
                "step-000000007.3",
                "step-000000007.4"
            ]
        );
        assert_eq!(
            names(&c),
            ["latest", "step-000000007.3", "step-000000007.4"]
        );
        let _ = fs::remove_dir_all(&run);
    }

    #[test]
    fn a_failed_checkpoint_leaves_no_partial_folder_and_latest_unchanged() {
        let run = dicyc_volume::testing::scratch_dir("checkpoint", "failed");
        let c = Checkpoints::new(&run).unwrap();
        let good = c.write(1, 2, |d| write_synced(&d.join("x"), b"x")).unwrap();
        let err = c
            .write(2, 2, |d| {
                write_synced(&d.join("half"), b"half")?;
                anyhow::bail!("No space left on device")
            })
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("step-000000002") && msg.contains("free space"),
            "{msg}"
        );
        assert_eq!(c.latest().unwrap(), Some(good));
        assert_eq!(names(&c), ["latest", "step-000000001"]);
        let _ = fs::remove_dir_all(&run);
    }
}
