//! The heap-free gate: links the core into a `#![no_std] #![no_main]` static host binary
//! with no global allocator (`core/heap-free-gate/`), then runs it.
//!
//! Linking fails with "no global memory allocator found" if anything in the core or its
//! dependencies allocates, so a green test proves the weight-file writer and reader and
//! the inference path are heap-free; running the binary proves they also work there.

use std::path::{Path, PathBuf};
use std::process::Command;

fn host_triple(cargo: &str) -> String {
    // `rustc` sits beside `cargo` in a rustup toolchain; fall back to PATH.
    let rustc = Path::new(cargo).with_file_name("rustc");
    let rustc = if rustc.exists() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    String::from_utf8(out.stdout)
        .expect("rustc -vV prints UTF-8")
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host triple")
}

#[test]
fn core_links_and_runs_without_an_allocator() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let gate = Path::new(env!("CARGO_MANIFEST_DIR")).join("heap-free-gate");
    let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/heap-free-gate");
    let host = host_triple(&cargo);
    // Build from inside the gate so that its .cargo/config.toml (static linking) applies;
    // `--target` keeps those flags away from proc-macros and build scripts.
    let build = Command::new(&cargo)
        .current_dir(&gate)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            &host,
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running cargo build for the heap-free gate");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        build.status.success(),
        "the heap-free gate failed to build or link (an allocation in dicyc-core or a dependency \
         shows up as 'no global memory allocator found'):\n{stderr}"
    );
    let binary = target_dir.join(&host).join("release/dicyc-heap-free-gate");
    let status = Command::new(&binary)
        .status()
        .expect("running the heap-free gate");
    assert_eq!(
        status.code(),
        Some(0),
        "the heap-free gate ran but failed (see the exit codes in core/heap-free-gate/src/main.rs)"
    );
}
