//! The repository keeps its promises to a new user: the README opens with the two set-up
//! commands, they exist, and CI runs exactly the README's test command.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shell commands of the README's first code block.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md exists");
    let block = readme
        .split("```")
        .nth(1)
        .expect("README.md has a code block");
    block
        .lines()
        .skip(1) // the fence's language tag
        .map(|line| line.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn readme_opens_with_the_demo_and_the_test_command() {
    let commands = readme_commands();
    assert_eq!(
        commands.len(),
        2,
        "the README's first code block must hold exactly two commands: {commands:?}"
    );
    for command in &commands {
        let script = command.split_whitespace().next().unwrap();
        let path = root().join(script);
        assert!(
            path.is_file(),
            "README command {command:?}: {} does not exist",
            path.display()
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let test_command = readme_commands().pop().unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run exists");
    assert!(
        ci.lines().any(|line| line.trim() == test_command),
        ".ci/run must run the README's test command `{test_command}` on a line of its own"
    );
}
