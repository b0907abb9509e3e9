//! `dicyc_volume::atomic`: a file appears whole or not at all, and no temporary is left on
//! any error path (a writer failing midway, a destination that cannot be replaced, a folder
//! that does not exist or is read-only, a writer dropped without commit).

use std::io::Write;
use std::path::Path;

use dicyc_volume::atomic::{write_atomic, write_atomic_with, AtomicFile};
use dicyc_volume::testing::{listing, scratch_dir};

#[test]
fn write_atomic_creates_and_replaces_the_file() {
    let dir = scratch_dir("atomic", "replace");
    let path = dir.join("out.bin");
    write_atomic(&path, b"first").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    write_atomic(&path, b"").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    assert_eq!(listing(&dir), vec!["out.bin"]);
}

#[test]
fn a_relative_path_without_a_folder_is_written_in_the_current_folder() {
    // `Path::parent` of a bare name is "": the temporary goes to ".", next to the file.
    // (The other tests of this file use absolute paths: changing folder does not affect them.)
    let dir = scratch_dir("atomic", "bare");
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    let result = write_atomic(Path::new("bare.txt"), b"x");
    std::env::set_current_dir(cwd).unwrap();
    result.unwrap();
    assert_eq!(listing(&dir), vec!["bare.txt"]);
}

#[test]
fn the_streaming_writer_commits_whole_files_only() {
    let dir = scratch_dir("atomic", "stream");
    let path = dir.join("report.json");
    let mut file = AtomicFile::create(&path).unwrap();
    assert_eq!(file.path(), path);
    file.write_all(b"{\"a\": ").unwrap();
    // Nothing at the destination until the commit; the temporary is hidden, next to it.
    assert!(!path.exists());
    let temp = file.temp_path().to_owned();
    assert_eq!(temp.parent(), Some(dir.as_path()));
    assert!(temp.exists());
    file.write_all(b"1}").unwrap();
    file.commit().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\": 1}");
    assert!(!temp.exists());
    assert_eq!(listing(&dir), vec!["report.json"]);
}

#[test]
fn dropping_without_commit_removes_the_temporary_and_keeps_the_old_file() {
    let dir = scratch_dir("atomic", "drop");
    let path = dir.join("x.flash");
    std::fs::write(&path, b"old image").unwrap();
    {
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(&[7u8; 100_000]).unwrap();
        // An error (or a panic) elsewhere: the writer is dropped uncommitted.
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"old image");
    assert_eq!(listing(&dir), vec!["x.flash"]);
}

/// A writer that fails midway, as on a full disk: no temporary, no final file, the error
/// names the destination.
#[test]
fn a_write_failing_midway_leaves_nothing() {
    let dir = scratch_dir("atomic", "midway");
    let path = dir.join("v.json");
    let err = write_atomic_with(&path, |w| {
        w.write_all(&[1u8; 4096])?;
        Err(std::io::Error::from_raw_os_error(28).into()) // ENOSPC
    })
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("No space left"), "{message}");
    assert_eq!(listing(&dir), Vec::<String>::new());

    // The same over an existing file: the old content survives.
    std::fs::write(&path, b"old").unwrap();
    assert!(write_atomic_with(&path, |w| {
        w.write_all(b"new and partial")?;
        anyhow::bail!("the producer failed")
    })
    .is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(listing(&dir), vec!["v.json"]);
}

#[test]
fn a_destination_that_cannot_be_replaced_leaves_no_temporary() {
    let dir = scratch_dir("atomic", "rename");
    // A non-empty folder cannot be replaced by a file: the rename fails at commit.
    std::fs::create_dir_all(dir.join("out.bin").join("inside")).unwrap();
    let message = format!(
        "{:#}",
        write_atomic(&dir.join("out.bin"), b"data").unwrap_err()
    );
    assert!(message.contains("out.bin"), "{message}");
    assert_eq!(listing(&dir), vec!["out.bin"]);
    assert!(dir.join("out.bin").join("inside").is_dir());
}

#[test]
fn a_missing_folder_is_an_error_naming_the_file() {
    let dir = scratch_dir("atomic", "missing");
    let path = dir.join("no").join("such").join("file.bin");
    let message = format!("{:#}", write_atomic(&path, b"data").unwrap_err());
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("folder"), "{message}");
    assert_eq!(listing(&dir), Vec::<String>::new());
}

#[cfg(unix)]
#[test]
fn a_read_only_folder_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("atomic", "readonly");
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores the permission bits: then there is nothing to test.
    let probe = ro.join("probe");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        let message = format!(
            "{:#}",
            write_atomic(&ro.join("f.bin"), b"data").unwrap_err()
        );
        assert!(message.contains("f.bin"), "{message}");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !writable {
        assert_eq!(listing(&ro), Vec::<String>::new());
    }
}

#[test]
fn staged_outputs_replace_the_older_set_whole_or_not_at_all() {
    use dicyc_volume::atomic::StagedOutputs;
    let dir = scratch_dir("atomic", "staged");
    // An older set: a file, a folder, a report, and a folder this set will not have.
    std::fs::create_dir_all(dir.join("bundle")).unwrap();
    std::fs::write(dir.join("bundle").join("old.bin"), b"old").unwrap();
    std::fs::create_dir_all(dir.join("gone")).unwrap();
    std::fs::write(dir.join("a.bin"), b"old a").unwrap();
    std::fs::write(dir.join("report.json"), b"old report").unwrap();
    let before = listing(&dir);

    // Dropped uncommitted (an error on the way): the folder is as it was, no staging left.
    {
        let staged = StagedOutputs::create(&dir, "report.json").unwrap();
        write_atomic(&staged.path("a.bin"), b"new a").unwrap();
        std::fs::create_dir_all(staged.path("bundle")).unwrap();
        assert_ne!(
            listing(&dir),
            before,
            "the staging folder is in the output folder"
        );
    }
    assert_eq!(listing(&dir), before);
    assert_eq!(std::fs::read(dir.join("a.bin")).unwrap(), b"old a");

    // Committed: every staged output replaces its older namesake (a folder whole), the stale
    // one is removed, and nothing else is left.
    let mut staged = StagedOutputs::create(&dir, "report.json").unwrap();
    write_atomic(&staged.path("a.bin"), b"new a").unwrap();
    std::fs::create_dir_all(staged.path("bundle")).unwrap();
    write_atomic(&staged.path("bundle").join("new.bin"), b"new").unwrap();
    write_atomic(&staged.path("report.json"), b"new report").unwrap();
    assert_eq!(staged.final_path("a.bin"), dir.join("a.bin"));
    staged.remove_stale("gone");
    staged.commit().unwrap();
    assert_eq!(listing(&dir), ["a.bin", "bundle", "report.json"]);
    assert_eq!(listing(&dir.join("bundle")), ["new.bin"]);
    assert_eq!(
        std::fs::read(dir.join("report.json")).unwrap(),
        b"new report"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A staging folder left by a process that was killed (Ctrl-C skips the cleanup on drop)
/// is removed by the next command into the folder; one of a running process is kept.
#[cfg(target_os = "linux")]
#[test]
fn staging_folders_of_ended_processes_are_removed_by_the_next_one() {
    use dicyc_volume::atomic::StagedOutputs;
    let dir = scratch_dir("atomic", "dead-stage");
    // A process that has ended: spawn one, wait for it, and use its id.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let dead_stage = dir.join(format!(".staged-{dead}-0"));
    std::fs::create_dir_all(dead_stage.join("golden-ab")).unwrap();
    std::fs::write(dead_stage.join("g_ab.dcw"), b"partial").unwrap();
    // A running process (this one, under another counter) and a look-alike that is no stage.
    let live_stage = dir.join(format!(".staged-{}-999", std::process::id()));
    std::fs::create_dir_all(&live_stage).unwrap();
    std::fs::write(dir.join(".staged-notes"), b"not a stage").unwrap();

    let staged = StagedOutputs::create(&dir, "report.json").unwrap();
    write_atomic(&staged.path("report.json"), b"new").unwrap();
    staged.commit().unwrap();
    let left = listing(&dir);
    assert!(!dead_stage.exists(), "{left:?}");
    assert!(live_stage.exists(), "{left:?}");
    assert!(dir.join(".staged-notes").exists(), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An output that is one of the inputs (by its own path, another spelling, a symbolic or a
/// hard link) is refused, naming both; a new output or another file is fine.
#[test]
fn an_output_that_is_an_input_is_refused() {
    use dicyc_volume::atomic::ensure_not_an_input;
    let dir = scratch_dir("atomic", "output-is-input");
    let input = dir.join("t1.nii.gz");
    std::fs::write(&input, b"the user's scan").unwrap();
    let other = dir.join("other.nii.gz");
    std::fs::write(&other, b"another file").unwrap();
    let inputs = [(input.as_path(), "input volume")];

    let spellings = [
        input.clone(),
        dir.join(".").join("t1.nii.gz"),
        dir.join("..")
            .join(dir.file_name().unwrap())
            .join("t1.nii.gz"),
    ];
    let mut links = Vec::new();
    #[cfg(unix)]
    {
        let symlink = dir.join("link.nii.gz");
        std::os::unix::fs::symlink(&input, &symlink).unwrap();
        links.push(symlink);
    }
    let hard = dir.join("hard.nii.gz");
    std::fs::hard_link(&input, &hard).unwrap();
    links.push(hard);
    for output in spellings.iter().chain(&links) {
        let message = format!("{:#}", ensure_not_an_input(output, &inputs).unwrap_err());
        assert!(
            message.contains(&output.display().to_string())
                && message.contains(&input.display().to_string())
                && message.contains("input volume")
                && message.contains("choose another output"),
            "{message}"
        );
    }
    ensure_not_an_input(&other, &inputs).unwrap();
    ensure_not_an_input(&dir.join("new.nii.gz"), &inputs).unwrap();
    assert_eq!(std::fs::read(&input).unwrap(), b"the user's scan");
    std::fs::remove_dir_all(&dir).unwrap();
}
