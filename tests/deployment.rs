//! The deployment path a user takes, driven through the real command lines in-process:
//! simulate data → train a tiny model → export weight files and golden bundles → build a
//! flash image → verify the device against libtorch; a corrupted image is refused.

use std::path::Path;

use clap::Parser;

fn trainer(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("trainer").chain(args.iter().copied());
    dicyc_trainer::cli::Cli::try_parse_from(argv)?.run()
}

fn firmware(args: &[&str]) -> anyhow::Result<()> {
    let argv = std::iter::once("firmware-sim").chain(args.iter().copied());
    dicyc_firmware_sim::cli::Cli::try_parse_from(argv)?.run()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name)
        .to_str()
        .expect("temp paths are UTF-8")
        .to_owned()
}

#[test]
fn train_export_flash_verify_and_refuse_corruption() {
    let dir = std::env::temp_dir().join(format!("dicyc-deployment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (data, run, export) = (path(&dir, "data"), path(&dir, "run"), path(&dir, "export"));

    trainer(&["data", "simulate", "--small", "--phantom", "--out", &data]).unwrap();
    trainer(&[
        "train",
        "--preset",
        "small",
        "--max-steps",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--run-dir",
        &run,
    ])
    .unwrap();
    trainer(&[
        "export",
        "--run",
        &run,
        "--out",
        &export,
        "--golden-a",
        &format!("{data}/test/pd"),
        "--golden-b",
        &format!("{data}/test/t2"),
        "--golden-slices",
        "2",
    ])
    .unwrap();

    for tag in ["ab", "ba"] {
        let image = path(&dir, &format!("g_{tag}.flash"));
        let weights = format!("{export}/g_{tag}.dcw");
        let golden = format!("{export}/golden-{tag}");
        firmware(&[
            "flash",
            &weights,
            "--profile",
            "edge-8m",
            "--height",
            "48",
            "--width",
            "56",
            "-o",
            &image,
        ])
        .unwrap();
        firmware(&[
            "verify",
            "--image",
            &image,
            "--golden",
            &golden,
            "--profile",
            "edge-8m",
        ])
        .unwrap_or_else(|err| panic!("g_{tag}: the device disagrees with libtorch: {err:#}"));
        for fault in [["--flip-bits", "1"], ["--truncate", "5000"]] {
            let err = firmware(&[
                "verify",
                "--image",
                &image,
                "--golden",
                &golden,
                "--profile",
                "edge-8m",
                fault[0],
                fault[1],
            ])
            .expect_err("a corrupted image must be refused");
            assert!(
                format!("{err:#}").contains("refuses to boot"),
                "g_{tag} {fault:?}: {err:#}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
