//! `trainer study` end to end on the tiny scale (phantom data, a few steps): two cells, the
//! study and its cell processes killed with SIGKILL while it runs and started again, against an uninterrupted study;
//! a failing cell is reported on the page and in the exit status; undeformed cells are taken
//! from a study of another field only when the data agree.
//!
//! The study runs each cell in a child process of the `trainer` binary, so these tests run
//! the real binary (not the in-process runner).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dicyc_volume::testing::scratch_dir;

const CELLS: &str = "cyclegan.deformed.s0,dicyc-input.deformed.s0";

fn study(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args(["study", "--scale", "tiny", "--dir"])
        .arg(dir)
        .args(["--cells", CELLS])
        .stdin(Stdio::null());
    c
}

/// Every `eval-*.json` under `cells/`, by relative path, without the timing field.
fn records(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for cell in std::fs::read_dir(dir.join("cells")).unwrap() {
        let cell = cell.unwrap().path();
        for f in std::fs::read_dir(&cell).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("eval-") && name.ends_with(".json") {
                let mut v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                out.push((f.strip_prefix(dir).unwrap().to_path_buf(), v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// SIGKILLs the `--run-cell` processes whose command line names `dir`.
fn kill_cells_of(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "--run-cell") && args.contains(&needle) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

#[test]
fn a_killed_study_resumes_to_the_uninterrupted_result() {
    let reference = scratch_dir("study", "uninterrupted");
    let out = study(&reference).output().unwrap();
    assert!(
        out.status.success(),
        "uninterrupted study failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = records(&reference);
    assert_eq!(
        expected.len(),
        4,
        "2 cells × 2 evaluation points: {expected:?}"
    );
    let page = std::fs::read_to_string(reference.join("RESULTS.md")).unwrap();
    assert!(page.contains("2 of 2 cells done"), "{page}");
    assert!(page.contains("`dicyc-input` | PD→T2"), "{page}");
    assert!(
        page.contains("copying the target domain's geometry"),
        "{page}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference.join("results.json")).unwrap())
            .unwrap();
    assert!(!results["aggregates"].as_array().unwrap().is_empty());
    assert_eq!(
        results["paired"].as_array().unwrap().len(),
        4,
        "1 variant × 2 directions × 2 points"
    );

    // The same study, killed (the whole process group, children included) as soon as its
    // first evaluation is on disk, then run again.
    let dir = scratch_dir("study", "killed");
    let first = dir
        .join("cells")
        .join("cyclegan.deformed.s0")
        .join("eval-000000002.json");
    let mut child = study(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !first.exists() && start.elapsed() < Duration::from_secs(300) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL the study, then every cell process it started (found by their command lines,
    // which name this test's own study directory): each by its own pid.
    let _ = child.kill();
    let _ = child.wait();
    kill_cells_of(&dir);
    assert!(
        first.exists(),
        "the study recorded no evaluation before it was killed"
    );
    let kept = std::fs::read(&first).unwrap();
    let out = study(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "resumed study failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&first).unwrap(),
        kept,
        "a finished evaluation was redone"
    );
    assert_eq!(
        records(&dir),
        expected,
        "the resumed study differs from the uninterrupted one"
    );

    // A second run has nothing left to do and rebuilds the same page.
    let out = study(&dir).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 to run"));
}

#[test]
fn a_failing_cell_is_on_the_page_and_in_the_exit_status() {
    let dir = scratch_dir("study", "failing");
    let out = study(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Break one cell: forget its last evaluation and corrupt the checkpoint it resumes from.
    let cell = dir.join("cells").join("dicyc-input.deformed.s0");
    std::fs::remove_file(cell.join("eval-000000004.json")).unwrap();
    let ckpts = cell.join("run").join("checkpoints");
    let latest = std::fs::read_to_string(ckpts.join("latest")).unwrap();
    let latest = ckpts.join(latest.trim());
    std::fs::write(latest.join("state.json"), b"{ not json").unwrap();
    let out = study(&dir).output().unwrap();
    assert!(!out.status.success(), "a failed cell must fail the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dicyc-input.deformed.s0"), "{stderr}");
    let page = std::fs::read_to_string(dir.join("RESULTS.md")).unwrap();
    assert!(page.contains("1 failed"), "{page}");
    assert!(page.contains("**failed**"), "{page}");
    assert!(
        page.contains("state.json"),
        "the error is on the page: {page}"
    );
    // The other cell's records are untouched.
    assert!(dir
        .join("cells")
        .join("cyclegan.deformed.s0")
        .join("eval-000000004.json")
        .exists());
}

#[test]
fn the_headline_replaces_only_the_marked_part_of_a_readme() {
    use dicyc_trainer::study::page::{splice_headline, HEADLINE_BEGIN, HEADLINE_END};
    let readme =
        format!("# dicyc\n\nintro\n\n{HEADLINE_BEGIN}\nold table\n{HEADLINE_END}\n\nrest\n");
    let new = splice_headline(&readme, "| new | table |\n").unwrap();
    assert_eq!(
        new,
        format!("# dicyc\n\nintro\n\n{HEADLINE_BEGIN}\n| new | table |\n{HEADLINE_END}\n\nrest\n")
    );
    // Idempotent, and a README without the markers is an error, not a silent append.
    assert_eq!(splice_headline(&new, "| new | table |\n").unwrap(), new);
    let err = splice_headline("# no markers\n", "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("marker"), "{err}");
}

/// `trainer study` with explicit cells and extra arguments, run to completion.
fn run_study(dir: &Path, cells: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["study", "--scale", "tiny", "--dir"])
        .arg(dir)
        .args(["--cells", cells])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn undeformed_cells_are_taken_from_a_study_of_another_field_only_when_the_data_agree() {
    let cell = "cyclegan.undeformed.s0";
    let first = scratch_dir("study", "field-8");
    let out = run_study(&first, cell, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Same scale, another field: the undeformed cell is taken, not trained.
    let second = scratch_dir("study", "field-4");
    let from = first.to_string_lossy().into_owned();
    let out = run_study(
        &second,
        cell,
        &["--field-mm", "4", "--undeformed-from", &from],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 finished undeformed cell(s) taken"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 to run"),
        "nothing left to train: {stderr}"
    );
    assert_eq!(
        records(&second),
        records(&first),
        "the records are the first study's"
    );
    assert!(
        !second.join("cells").join(cell).join("run").exists(),
        "no training ran"
    );
    let page = std::fs::read_to_string(second.join("RESULTS.md")).unwrap();
    assert!(
        page.contains("Taken from the study in") && page.contains(&format!("`{cell}`")),
        "{page}"
    );

    // Undeformed data that differ by one byte: refused, naming both studies, nothing taken.
    let third = scratch_dir("study", "field-4-other-data");
    let out = run_study(&third, cell, &["--field-mm", "4", "--data-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let volume = std::fs::read_dir(third.join("data").join("train").join("pd"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&volume).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&volume, bytes).unwrap();
    let out = run_study(
        &third,
        cell,
        &["--field-mm", "4", "--undeformed-from", &from],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("undeformed data differ"), "{stderr}");
    assert!(
        !third.join("cells").exists() || records(&third).is_empty(),
        "nothing taken or trained"
    );
}
