//! Writing a file so that it appears whole or not at all — the one helper the host crates
//! use for their outputs (flash images, reports, golden bundles, exports).
//!
//! The bytes go to a hidden temporary file in the destination's own folder (so the final
//! rename never crosses a file system), which is flushed and fsynced, then renamed over the
//! destination; the folder is then fsynced, best-effort, so the rename itself survives a
//! power cut. On every error path — a write failing midway (a full disk), the fsync, the
//! rename, the producer's own error — and when an [`AtomicFile`] is dropped without
//! [`AtomicFile::commit`], the temporary is removed and an existing destination is left as
//! it was. A crash of the process (a kill, a power cut) can leave a temporary named
//! `.NAME-PID-N.tmp` behind (dots in `NAME` become `_`), never a half-written `NAME`.
//!
//! ```
//! use std::io::Write;
//! use dicyc_volume::atomic::{write_atomic, AtomicFile};
//!
//! let dir = std::env::temp_dir().join(format!("dicyc-atomic-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! write_atomic(&dir.join("a.bin"), b"all at once")?;
//! let mut file = AtomicFile::create(&dir.join("b.json"))?;
//! writeln!(file, "{{\"streamed\": true}}")?;
//! file.commit()?; // without it, dropping `file` leaves no trace
//! assert_eq!(std::fs::read(dir.join("b.json"))?, b"{\"streamed\": true}\n");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

/// Makes temporary names unique within the process (the process id, across processes).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: afterwards `path` holds exactly `bytes`, or, on an
/// error, what it held before (or nothing), and no temporary is left.
///
/// The destination's folder must exist. Errors name `path` and say what to check.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|err| AtomicFile::write_error(path, err))?;
    file.commit()
}

/// Streams a file into place atomically: `produce` writes into the (buffered) temporary;
/// when it returns `Ok` the file is committed, when it returns an error (its own, or a
/// failed write passed on with `?`) nothing is written and the temporary is removed.
pub fn write_atomic_with<F>(path: &Path, produce: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut AtomicFile) -> anyhow::Result<()>,
{
    let mut file = AtomicFile::create(path)?;
    produce(&mut file)
        .with_context(|| format!("cannot write {}: nothing was written", path.display()))?;
    file.commit()
}

/// A file being written atomically: a [`Write`] into a temporary next to the destination
/// that becomes the destination on [`commit`](AtomicFile::commit), and disappears when
/// dropped uncommitted.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    /// `None` once committed (or after a failed commit, whose cleanup is the drop's).
    file: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary for `path` (in `path`'s folder, which must exist).
    pub fn create(path: &Path) -> anyhow::Result<AtomicFile> {
        AtomicFile::create_with_temp_extension(path, "tmp")
    }

    /// Like [`AtomicFile::create`], with a temporary whose name ends in `.{extension}`: for
    /// writers that open the file by name and insist on its extension (the NIfTI writer
    /// rewrites any other into `.nii` / `.nii.gz`). Such a writer rewrites
    /// [`temp_path`](AtomicFile::temp_path) in place; [`commit`](AtomicFile::commit) then
    /// fsyncs and renames what it wrote.
    pub fn create_with_temp_extension(path: &Path, extension: &str) -> anyhow::Result<AtomicFile> {
        let name = path.file_name().with_context(|| {
            format!(
                "cannot write {}: the path names no file (give a file name, not a folder)",
                path.display()
            )
        })?;
        let folder = folder_of(path);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // One dot only, before the extension: writers that force their extension cut the
        // name at its last dot and would otherwise write elsewhere.
        let stem = name.to_string_lossy().replace('.', "_");
        let temp_name = format!(".{stem}-{}-{n}.{extension}", std::process::id());
        let temp = folder.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| {
                format!(
                    "cannot write {}: cannot create a temporary file in the folder {} (does the folder exist, is it writable, is there free space?)",
                    path.display(),
                    folder.display()
                )
            })?;
        Ok(AtomicFile {
            dest: path.to_owned(),
            temp,
            file: Some(BufWriter::new(file)),
            committed: false,
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// The temporary being written (hidden, in the destination's folder).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes and fsyncs the temporary, renames it over the destination and fsyncs the
    /// folder (best-effort). On an error the temporary is removed and the destination is
    /// left as it was.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let Some(writer) = self.file.take() else {
            anyhow::bail!("cannot write {}: already committed", self.dest.display());
        };
        let file = writer
            .into_inner()
            .map_err(|err| AtomicFile::write_error(&self.dest, err.into_error()))?;
        file.sync_all()
            .map_err(|err| AtomicFile::write_error(&self.dest, err))?;
        drop(file);
        std::fs::rename(&self.temp, &self.dest).with_context(|| {
            format!(
                "cannot write {}: cannot move the finished temporary into place (is the destination a folder, or on a read-only file system?); nothing was written",
                self.dest.display()
            )
        })?;
        self.committed = true;
        // The rename is durable once the folder's entry is on disk; some platforms cannot
        // open or fsync a folder, and the file itself is complete either way.
        if let Ok(folder) = File::open(folder_of(&self.dest)) {
            let _ = folder.sync_all();
        }
        Ok(())
    }

    /// The error of a failed write, naming the destination (not the temporary), for writers
    /// that write the temporary themselves ([`AtomicFile::temp_path`]).
    pub fn write_error(dest: &Path, err: io::Error) -> anyhow::Error {
        anyhow::Error::new(err).context(format!(
            "cannot write {}: nothing was written (is there free space on its file system?)",
            dest.display()
        ))
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the atomic file was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Close before removing (required on some platforms); a failed flush of the
            // buffered tail does not matter, the temporary goes.
            if let Some(writer) = self.file.take() {
                let (file, _) = writer.into_parts();
                drop(file);
            }
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Refuses an output that is one of the command's own inputs (the same file, through any
/// path, link or hard link): the atomic write would replace the input with the output, and
/// the user's input would be gone. `inputs` pairs each input's path with what it is, for
/// the message. An output that does not exist yet cannot be an input.
pub fn ensure_not_an_input(output: &Path, inputs: &[(&Path, &str)]) -> anyhow::Result<()> {
    let Ok(out_meta) = std::fs::metadata(output) else {
        return Ok(());
    };
    for (input, what) in inputs {
        let Ok(in_meta) = std::fs::metadata(input) else {
            continue;
        };
        if same_file(&out_meta, &in_meta, output, input) {
            anyhow::bail!(
                "the output {} is the {what} {}: writing it would replace the {what}; choose \
                 another output path (inputs are never overwritten)",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Whether two existing paths are one file (device and inode on Unix, the canonical paths
/// elsewhere).
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata, pa: &Path, pb: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (pa, pb);
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        matches!((pa.canonicalize(), pb.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// Several outputs of one command in one folder that appear together or not at all (a weight
/// file per direction, their golden bundles, the report): each is written into a hidden
/// staging folder inside the output folder, and only [`commit`](StagedOutputs::commit)
/// moves them into place, replacing older outputs of the same names, with the `marker`
/// entry (the report) moved last, so a folder whose marker is new holds the whole new set.
/// Dropped uncommitted — any error on the way, a full disk included — the staging folder is
/// removed and the output folder is left as it was. (Only a failed rename inside the one
/// folder, during the commit itself, can leave part of the new set beside the old marker.)
#[derive(Debug)]
pub struct StagedOutputs {
    out: PathBuf,
    stage: PathBuf,
    marker: String,
    stale: Vec<String>,
    committed: bool,
}

impl StagedOutputs {
    /// Stages outputs for the folder `out` (created if missing); `marker` is the entry that
    /// says the set is complete, moved into place after every other one.
    pub fn create(out: &Path, marker: &str) -> anyhow::Result<StagedOutputs> {
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create the output folder {}", out.display()))?;
        remove_dead_stages(out);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stage = out.join(format!("{STAGE_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir(&stage).with_context(|| {
            format!(
                "cannot write into {}: cannot create a staging folder there (is it writable, is there free space?)",
                out.display()
            )
        })?;
        Ok(StagedOutputs {
            out: out.to_owned(),
            stage,
            marker: marker.to_owned(),
            stale: Vec::new(),
            committed: false,
        })
    }

    /// Where to write the output `name` now (a file or a folder inside the staging folder).
    pub fn path(&self, name: &str) -> PathBuf {
        self.stage.join(name)
    }

    /// Where the output `name` will be once committed.
    pub fn final_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Removes an older output `name` on commit, when this set has none of that name (so the
    /// folder never mixes outputs of two runs of the command).
    pub fn remove_stale(&mut self, name: &str) {
        self.stale.push(name.to_owned());
    }

    /// Moves every staged output into the output folder (replacing older ones of the same
    /// names, the marker last), removes the stale ones and the staging folder.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let mut names: Vec<String> = std::fs::read_dir(&self.stage)
            .with_context(|| format!("cannot list the staging folder {}", self.stage.display()))?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()
            .with_context(|| format!("cannot list the staging folder {}", self.stage.display()))?;
        names.sort_by_key(|name| (*name == self.marker, name.clone()));
        for name in self.stale.iter().filter(|n| !names.contains(n)) {
            remove_entry(&self.out.join(name))?;
        }
        for name in &names {
            let dest = self.out.join(name);
            if dest.is_dir() {
                remove_entry(&dest)?;
            }
            std::fs::rename(self.stage.join(name), &dest).with_context(|| {
                format!(
                    "cannot move the finished {} into place (is it a folder in use, or on a read-only file system?)",
                    dest.display()
                )
            })?;
        }
        self.committed = true;
        std::fs::remove_dir(&self.stage).with_context(|| {
            format!("cannot remove the staging folder {}", self.stage.display())
        })?;
        if let Ok(folder) = File::open(&self.out) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// Staging folders are named `.staged-PID-N`.
const STAGE_PREFIX: &str = ".staged-";

/// Removes the staging folders in `out` left by processes that no longer run (killed, or
/// interrupted with Ctrl-C, which skips the cleanup on drop), so that a command run again
/// into the same folder tidies up after the one that was cut short. A folder whose process
/// still runs, or whose owner cannot be told (no `/proc`), is left alone; failures to remove
/// are ignored (the new output does not depend on it).
fn remove_dead_stages(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if process_is_gone(pid) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether the process `pid` has certainly ended: only where `/proc` lists processes (Linux),
/// and never for this process.
fn process_is_gone(pid: u32) -> bool {
    pid != std::process::id()
        && Path::new("/proc/self").exists()
        && !Path::new("/proc").join(pid.to_string()).exists()
}

impl Drop for StagedOutputs {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.stage);
        }
    }
}

/// Removes the file or folder `path`, if there is one.
fn remove_entry(path: &Path) -> anyhow::Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(anyhow::Error::new(err).context(
            format!("cannot replace the older output {}", path.display()),
        )),
        _ => Ok(()),
    }
}

/// The folder `path` is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
