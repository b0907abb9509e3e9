//! A run directory is never silently corrupted, through the real `trainer` binary:
//! `--resume` refuses an edited `config.toml` that changes what the checkpoint was trained
//! with, naming each field (and a checkpoint of other slices is an error, not a panic); a run
//! killed before its first checkpoint is started over by `--resume`; a second process into a
//! run directory in use is refused, and a SIGKILLed holder releases it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dicyc_trainer::train::checkpoint::RunState;
use dicyc_trainer::train::config::DataConfig;
use dicyc_trainer::train::{ModelKind, RunLock, TrainConfig};

/// The trainer tests' tiny DicycleGAN.
fn tiny_config() -> TrainConfig {
    common::tiny_train_config(ModelKind::Dicyclegan)
}

/// A config that never reaches an epoch end in a test's time: no checkpoint unless asked for.
fn long_config() -> TrainConfig {
    let mut c = tiny_config();
    c.schedule.steps_per_epoch = 1_000_000;
    c
}

fn scratch(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("run-dir-safety", name)
}

fn write_config(path: &Path, config: &TrainConfig) {
    std::fs::write(path, config.to_toml().unwrap()).unwrap();
}

fn trainer(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args(args).stdin(Stdio::null());
    c
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `trainer <args>` to the end.
fn run(args: &[&str]) -> Output {
    trainer(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the command failed with an error (exit status 1), not a panic (101).
fn assert_refused(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    err
}

fn assert_ok(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "{what} failed: {err}");
    err
}

/// `trainer train --config <config> --run-dir <run> --quiet <extra>`.
fn train(config: &Path, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        p(config),
        "--run-dir",
        p(run),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    self::run(&args)
}

/// `trainer train --resume <run> --quiet --max-steps <max_steps>`.
fn resume(run: &Path, max_steps: u64) -> Output {
    let steps = max_steps.to_string();
    self::run(&[
        "train",
        "--resume",
        p(run),
        "--quiet",
        "--max-steps",
        &steps,
    ])
}

fn latest(run: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).ok()?;
    Some(run.join("checkpoints").join(name.trim()))
}

fn state(checkpoint: &Path) -> RunState {
    serde_json::from_str(&std::fs::read_to_string(checkpoint.join("state.json")).unwrap()).unwrap()
}

/// The steps in `losses.jsonl`, in file order.
fn logged_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("losses.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// Everything in the run directory that a refused command must leave alone: config.toml,
/// the logs, `latest` and the checkpoint names.
fn snapshot(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in [
        "config.toml",
        "losses.jsonl",
        "losses.csv",
        "checkpoints/latest",
    ] {
        out.push((
            name.to_string(),
            std::fs::read(run.join(name)).unwrap_or_default(),
        ));
    }
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    out.push(("checkpoints/".into(), names.join(",").into_bytes()));
    out
}

/// A training process that is SIGKILLed when the test is done with it, also when the test
/// fails midway (a long run would otherwise outlive it).
struct Background(Child);

impl Background {
    fn spawn(command: &mut Command) -> Background {
        Background(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// Polls `done` every 20 ms until it holds (a panic if the process exits first).
    fn wait_for(&mut self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            if let Some(status) = self.0.try_wait().unwrap() {
                panic!("the training process exited ({status}) before {what}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Complete lines in `losses.jsonl` (a process being killed may leave a partial last one).
fn complete_log_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("losses.jsonl"))
        .unwrap_or_default()
        .matches('\n')
        .count()
}

/// Finding 7: an edited config.toml is checked against the configuration the checkpoint was
/// trained with; a change that would not continue the same run is refused, naming each field
/// with both values, and nothing in the run directory changes. Resumable fields may change.
#[test]
fn resume_refuses_an_edited_config_naming_each_changed_field() {
    let dir = scratch("edited");
    let config_path = dir.join("tiny.toml");
    write_config(&config_path, &tiny_config());
    let run_dir = dir.join("run");
    assert_ok(
        &train(&config_path, &run_dir, &["--max-steps", "2"]),
        "train",
    );
    let run_config = run_dir.join("config.toml");
    let original = TrainConfig::load(&run_config).unwrap();

    // A changed slice size (used to panic inside libtorch: "stack expects each tensor to be
    // equal size").
    let mut edited = original.clone();
    if let DataConfig::Synthetic(s) = &mut edited.data {
        s.size = 64;
    }
    write_config(&run_config, &edited);
    let before = snapshot(&run_dir);
    let err = assert_refused(&resume(&run_dir, 4), "a resume with another slice size");
    assert!(err.contains(p(&run_config)), "names the file: {err}");
    assert!(
        err.contains("data.size: 32 (checkpoint) -> 64 (config.toml)"),
        "{err}"
    );
    assert_eq!(
        snapshot(&run_dir),
        before,
        "the refused resume changed the run"
    );

    // Learning rate, seed, batch size, model, a loss weight and the data seed at once: each
    // is named; resumable fields edited alongside are not.
    let mut edited = original.clone();
    edited.optim.lr = 0.002;
    edited.seed = 7;
    edited.batch_size = 2;
    edited.model = ModelKind::Cyclegan;
    edited.loss.cycle = 5.0;
    if let DataConfig::Synthetic(s) = &mut edited.data {
        s.seed = 4;
    }
    edited.max_steps = 9;
    edited.schedule.epochs = 5;
    edited.output.plot_every = 0;
    write_config(&run_config, &edited);
    let before = snapshot(&run_dir);
    let err = assert_refused(&resume(&run_dir, 4), "a resume with changed fields");
    for change in [
        "optim.lr: 0.001 (checkpoint) -> 0.002 (config.toml)",
        "seed: 0 (checkpoint) -> 7 (config.toml)",
        "batch_size: 1 (checkpoint) -> 2 (config.toml)",
        "model: \"dicyclegan\" (checkpoint) -> \"cyclegan\" (config.toml)",
        "loss.cycle: 10.0 (checkpoint) -> 5.0 (config.toml)",
        "data.seed: 3 (checkpoint) -> 4 (config.toml)",
    ] {
        assert!(err.contains(change), "missing {change:?} in: {err}");
    }
    for resumable in ["max_steps", "schedule.epochs", "output.plot_every"] {
        assert!(
            !err.contains(&format!("{resumable}:")),
            "{resumable} may change: {err}"
        );
    }
    assert!(err.contains("--config"), "says what to do: {err}");
    assert_eq!(
        snapshot(&run_dir),
        before,
        "the refused resume changed the run"
    );

    // Only resumable fields edited: the resume goes ahead, from the checkpoint.
    let mut edited = original.clone();
    edited.schedule.epochs = 3;
    edited.output.plot_every = 0;
    edited.threads = 1;
    write_config(&run_config, &edited);
    assert_ok(&resume(&run_dir, 4), "a resume with resumable edits");
    assert_eq!(logged_steps(&run_dir), [1, 2, 3, 4]);
    let checkpoint = latest(&run_dir).unwrap();
    assert_eq!(state(&checkpoint).global_step, 4);
    // Each checkpoint records the configuration it was trained with.
    assert_eq!(
        TrainConfig::load(&checkpoint.join("config.toml")).unwrap(),
        TrainConfig {
            max_steps: 4,
            ..edited
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 7, for checkpoints written before they recorded their configuration: the resume
/// says it cannot check and goes ahead, and a changed slice size is still an error naming
/// config.toml, not a panic.
#[test]
fn a_checkpoint_without_a_recorded_config_resumes_and_other_slices_are_an_error() {
    let dir = scratch("legacy");
    let config_path = dir.join("tiny.toml");
    write_config(&config_path, &tiny_config());
    let run_dir = dir.join("run");
    assert_ok(
        &train(&config_path, &run_dir, &["--max-steps", "2"]),
        "train",
    );
    // As an older trainer wrote it: no config.toml in the checkpoint.
    let _ = std::fs::remove_file(latest(&run_dir).unwrap().join("config.toml"));
    let run_config = run_dir.join("config.toml");
    let original = TrainConfig::load(&run_config).unwrap();
    let mut edited = original.clone();
    if let DataConfig::Synthetic(s) = &mut edited.data {
        s.size = 64;
    }
    write_config(&run_config, &edited);
    let before = snapshot(&run_dir);
    let err = assert_refused(&resume(&run_dir, 4), "a legacy resume with other slices");
    assert!(err.contains("records no configuration"), "{err}");
    assert!(
        err.contains("image pool") && err.contains("config.toml"),
        "{err}"
    );
    assert_eq!(
        snapshot(&run_dir),
        before,
        "the refused resume changed the run"
    );
    write_config(&run_config, &original);
    let err = assert_ok(&resume(&run_dir, 3), "a legacy resume");
    assert!(err.contains("records no configuration"), "{err}");
    assert_eq!(logged_steps(&run_dir), [1, 2, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 8: a run killed before its first checkpoint is not stuck. `train` into it says
/// that `--resume` starts it over; `--resume` does, from step 0 with its config.toml, and
/// gets exactly a fresh run's losses.
#[test]
fn a_run_killed_before_its_first_checkpoint_is_started_over_by_resume() {
    let dir = scratch("no-checkpoint");
    let config_path = dir.join("long.toml");
    write_config(&config_path, &long_config());
    let run_dir = dir.join("run");
    let mut child = Background::spawn(
        trainer(&[
            "train",
            "--config",
            p(&config_path),
            "--run-dir",
            p(&run_dir),
        ])
        .arg("--quiet"),
    );
    child.wait_for("two logged steps", || complete_log_lines(&run_dir) >= 2);
    child.kill();
    assert!(latest(&run_dir).is_none(), "a checkpoint was written");

    // A new run into it is refused, pointing at --resume; nothing changes.
    let before = snapshot(&run_dir);
    let err = assert_refused(&train(&config_path, &run_dir, &[]), "train into it");
    assert!(
        err.contains(p(&run_dir)) && err.contains("no checkpoint yet") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(snapshot(&run_dir), before);

    // --resume starts it over, and says so.
    let err = assert_ok(&resume(&run_dir, 2), "--resume of a run with no checkpoint");
    assert!(err.contains("starting it over from step 0"), "{err}");
    assert_eq!(
        logged_steps(&run_dir),
        [1, 2],
        "the killed attempt's steps are gone"
    );
    assert_eq!(state(&latest(&run_dir).unwrap()).global_step, 2);
    // The same as a run that was never interrupted.
    let fresh = dir.join("fresh");
    assert_ok(
        &train(&config_path, &fresh, &["--max-steps", "2"]),
        "a fresh run",
    );
    let log = |run: &Path| std::fs::read_to_string(run.join("losses.jsonl")).unwrap();
    assert_eq!(log(&run_dir), log(&fresh));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 9: a run directory in use is refused to a second process — a new run into it and a
/// `--resume` alike, naming the lock and the holder's pid — with nothing changed; once the
/// holder is SIGKILLed the OS releases the lock and the run resumes with consistent logs.
#[test]
fn a_second_process_into_a_run_directory_in_use_is_refused() {
    let dir = scratch("locked");
    let config_path = dir.join("long.toml");
    write_config(&config_path, &long_config());

    // Two new runs into one directory: the second one (here, while this test process holds
    // the lock, as a first one does from before it checks the directory) is refused and
    // writes no config.toml.
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let held = RunLock::acquire(&fresh).unwrap();
    let err = assert_refused(
        &train(&config_path, &fresh, &["--max-steps", "1"]),
        "a second new run",
    );
    assert!(
        err.contains("in use")
            && err.contains(p(&fresh.join("run.lock")))
            && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(!fresh.join("config.toml").exists());
    drop(held);
    assert_ok(
        &train(&config_path, &fresh, &["--max-steps", "1"]),
        "a new run once the lock is free",
    );

    // A resume while another process trains into the run.
    let run_dir = dir.join("run");
    let mut child = Background::spawn(
        trainer(&[
            "train",
            "--config",
            p(&config_path),
            "--run-dir",
            p(&run_dir),
        ])
        .args(["--quiet", "--checkpoint-every", "1"]),
    );
    child.wait_for("a checkpoint", || latest(&run_dir).is_some());
    let config_before = std::fs::read(run_dir.join("config.toml")).unwrap();
    for (what, out) in [
        ("a second --resume", resume(&run_dir, 3)),
        (
            "a second train",
            train(&config_path, &run_dir, &["--seed", "2"]),
        ),
    ] {
        let err = assert_refused(&out, what);
        assert!(
            err.contains("in use")
                && err.contains(p(&run_dir.join("run.lock")))
                && err.contains(&format!("pid {}", child.pid())),
            "{what}: {err}"
        );
    }
    assert!(child.running(), "the first process stopped");
    child.kill(); // SIGKILL: the OS releases the lock
    assert_eq!(
        std::fs::read(run_dir.join("config.toml")).unwrap(),
        config_before
    );
    let at = state(&latest(&run_dir).unwrap()).global_step;
    let out = resume(&run_dir, at + 1);
    assert_ok(&out, "--resume after the holder was killed");
    assert_eq!(
        logged_steps(&run_dir),
        (1..=at + 1).collect::<Vec<u64>>(),
        "each step logged once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A log line cut short by a kill is dropped when the run is resumed, even where what is left
/// of it parses (`1` of `12,…`, which used to survive as a bogus step-1 row).
#[test]
fn a_partial_last_log_line_is_dropped_on_resume() {
    use dicyc_trainer::train::RunDir;
    let dir = scratch("partial");
    let run_dir = dir.join("run");
    drop(RunDir::create(&run_dir, &tiny_config()).unwrap());
    let header = "step,epoch,lr\n";
    std::fs::write(
        run_dir.join("losses.csv"),
        format!("{header}1,0,1e-3\n2,0,1e-3\n1"),
    )
    .unwrap();
    drop(RunDir::open(&run_dir, 11).unwrap());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("losses.csv")).unwrap(),
        format!("{header}1,0,1e-3\n2,0,1e-3\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resume of a finished run takes no step and so writes no checkpoint: however often it is
/// repeated, the checkpoints and `latest` stay as they were (repeats used to write
/// `step-N.1`, `step-N.2`, then `step-N` again, which pruning removed while `latest` named it).
#[test]
fn resuming_a_finished_run_again_and_again_changes_no_checkpoint() {
    let dir = scratch("resume-finished");
    let config_path = dir.join("tiny.toml");
    let mut config = tiny_config();
    config.output.keep_checkpoints = 2;
    write_config(&config_path, &config);
    let run_dir = dir.join("run");
    assert_ok(
        &train(&config_path, &run_dir, &["--max-steps", "4"]),
        "train",
    );
    let names = |run: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let before = (names(&run_dir), latest(&run_dir));
    for i in 0..4 {
        let err = assert_ok(&resume(&run_dir, 4), &format!("resume {i}"));
        assert!(!err.contains("Error"), "{err}");
        assert_eq!(
            (names(&run_dir), latest(&run_dir)),
            before,
            "after resume {i}"
        );
    }
    assert!(latest(&run_dir).unwrap().is_dir());
    // And the run goes on from there.
    assert_ok(&resume(&run_dir, 6), "resume to step 6");
    assert_eq!(state(&latest(&run_dir).unwrap()).global_step, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data folders given as relative paths are recorded absolute, so that a resume from another
/// working directory trains on the same volumes, not on whatever lies under the same relative
/// path there.
#[test]
fn data_paths_are_recorded_absolute_so_a_resume_elsewhere_reads_the_same_data() {
    let dir = scratch("relative-data");
    for (domain, scale) in [("a", 100.0), ("b", 7.0)] {
        let d = dir.join("data").join(domain);
        std::fs::create_dir_all(&d).unwrap();
        dicyc_volume::testing::write_phantom_folder(&d, 2, scale).unwrap();
    }
    let config_path = dir.join("tiny.toml");
    write_config(&config_path, &tiny_config());
    let out = trainer(&[
        "train",
        "--config",
        "tiny.toml",
        "--data-a",
        "data/a",
        "--data-b",
        "data/b",
        "--size",
        "32",
        "--run-dir",
        "run",
        "--max-steps",
        "2",
        "--quiet",
    ])
    .current_dir(&dir)
    .output()
    .unwrap();
    assert_ok(&out, "train with relative data paths");
    let run_dir = dir.join("run");
    let recorded = TrainConfig::load(&run_dir.join("config.toml")).unwrap();
    let DataConfig::Nifti { a, b, .. } = &recorded.data else {
        panic!("not NIfTI data: {:?}", recorded.data)
    };
    let abs = |p: &str| std::path::absolute(dir.join(p)).unwrap();
    assert_eq!((a.clone(), b.clone()), (abs("data/a"), abs("data/b")));
    // From another folder that has no data/ at all, the resume still finds the volumes.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = trainer(&[
        "train",
        "--resume",
        p(&run_dir),
        "--max-steps",
        "3",
        "--quiet",
    ])
    .current_dir(&elsewhere)
    .output()
    .unwrap();
    assert_ok(&out, "resume from another folder");
    assert_eq!(state(&latest(&run_dir).unwrap()).global_step, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An absurd thread count is a configuration error, not a libtorch stack overflow.
#[test]
fn an_absurd_thread_count_is_refused_before_libtorch_sees_it() {
    let dir = scratch("threads");
    let config_path = dir.join("tiny.toml");
    write_config(&config_path, &tiny_config());
    let run_dir = dir.join("run");
    let err = assert_refused(
        &train(&config_path, &run_dir, &["--threads", "100000"]),
        "--threads 100000",
    );
    assert!(
        err.contains("threads = 100000") && err.contains("at most"),
        "{err}"
    );
    assert!(!run_dir.exists(), "a run directory was created");
    let _ = std::fs::remove_dir_all(&dir);
}
