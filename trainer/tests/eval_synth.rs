//! `trainer synth` on a checkpoint: outputs keep the source's grid and geometry, are written
//! in the target domain's units (data-stats.json), both directions and passes run, and the
//! input folder is never written into; on an exported weight file (`--weights`, the core)
//! every volume is written and `--batch` changes nothing. `trainer eval --run` on a deformed phantom benchmark
//! synthesizes both directions and scores each against its own ground truth and mask.

use std::path::{Path, PathBuf};

use dicyc_trainer::data::nifti_io::{read_volume, write};
use dicyc_trainer::data::preprocess::{Normalization, PreprocessOptions};
use dicyc_trainer::data::sampling::DataStats;
use dicyc_trainer::data::simulate::{simulate_subject, Anatomy, SimOptions};
use dicyc_trainer::eval::{volume_metrics, DirectionResult};
use dicyc_trainer::model::Generator;
use dicyc_trainer::train::TrainConfig;
use tch::nn::VarStore;
use tch::Device;

mod common;
use common::{arg as s, trainer as run};

/// A tiny "trained" run in `run_dir`: config.toml (`TrainConfig::small`) and
/// checkpoints/latest → a step folder with freshly initialised g_ab / g_ba (seeded).
fn tiny_run(run_dir: &Path) {
    let step = run_dir.join("checkpoints").join("step-000000001");
    std::fs::create_dir_all(&step).unwrap();
    let config = TrainConfig::small();
    std::fs::write(run_dir.join("config.toml"), config.to_toml().unwrap()).unwrap();
    std::fs::write(
        run_dir.join("checkpoints").join("latest"),
        "step-000000001\n",
    )
    .unwrap();
    tch::manual_seed(0);
    for (name, gcfg) in [
        ("g_ab", config.effective_generator()),
        ("g_ba", config.effective_generator_ba()),
    ] {
        let vs = VarStore::new(Device::Cpu);
        let _g = Generator::new(&vs.root(), &gcfg, &config.init).unwrap();
        vs.save(step.join(format!("{name}.safetensors"))).unwrap();
    }
}

#[test]
fn synth_writes_source_grid_volumes_in_target_units() {
    let root: PathBuf = dicyc_volume::testing::scratch_dir("synth", "source-grid");
    let run_dir = root.join("run");
    tiny_run(&run_dir);
    let target = Normalization {
        mean: 500.0,
        scale: 30.0,
    };
    DataStats {
        a: Normalization {
            mean: 0.0,
            scale: 1.0,
        },
        b: target,
        preprocess: PreprocessOptions::default(),
    }
    .save(&run_dir.join("data-stats.json"))
    .unwrap();

    // Two source volumes (odd in-plane sizes: padding to a multiple of 4 is exercised).
    let a = Anatomy::phantom([30, 34, 6]);
    let o = SimOptions::ixi_like(1, a.dims(), [0.0; 3]);
    let input = root.join("pd");
    for i in 0..2 {
        write(
            &input.join(format!("s{i}.nii.gz")),
            &simulate_subject(&a, &o, i).pd,
        )
        .unwrap();
    }
    let out = root.join("out");
    run(&[
        "synth",
        "--run",
        s(&run_dir),
        "--input",
        s(&input),
        "--out",
        s(&out),
        "--device",
        "cpu",
        "--batch",
        "4",
    ])
    .unwrap();
    for i in 0..2 {
        let src = read_volume(&input.join(format!("s{i}.nii.gz"))).unwrap();
        let syn = read_volume(&out.join(format!("s{i}.nii.gz"))).unwrap();
        assert_eq!(syn.dim(), src.dim());
        assert_eq!(
            (syn.header.srow_x, syn.header.srow_y, syn.header.srow_z),
            (src.header.srow_x, src.header.srow_y, src.header.srow_z)
        );
        assert_eq!(syn.spacing(), src.spacing());
        // tanh output in [−1, 1] mapped by the target domain's inverse: [470, 530].
        assert!(
            syn.data.iter().all(|&v| (469.9..=530.1).contains(&v)),
            "target units"
        );
    }
    // The other direction, the deformed pass, one file.
    run(&[
        "synth",
        "--run",
        s(&run_dir),
        "--input",
        s(&input.join("s0.nii.gz")),
        "--out",
        s(&root.join("out2")),
        "--device",
        "cpu",
        "--direction",
        "b2a",
        "--pass",
        "deformed",
    ])
    .unwrap();
    assert!(root.join("out2/s0.nii.gz").exists());
    // Never into the input folder.
    let before = std::fs::read(input.join("s0.nii.gz")).unwrap();
    assert!(run(&[
        "synth",
        "--run",
        s(&run_dir),
        "--input",
        s(&input),
        "--out",
        s(&input),
        "--device",
        "cpu"
    ])
    .is_err());
    assert_eq!(std::fs::read(input.join("s0.nii.gz")).unwrap(), before);

    // The exported weight file through the core: every volume written on the source grid;
    // `--batch` is accepted but does not apply there (the core runs one slice at a time);
    // two calls write the same bytes (the core path is deterministic).
    let export = root.join("export");
    run(&[
        "export",
        "--run",
        s(&run_dir),
        "--out",
        s(&export),
        "--golden-a",
        s(&input),
        "--golden-b",
        s(&input),
        "--golden-slices",
        "1",
    ])
    .unwrap();
    let weights = export.join("g_ab.dcw");
    for (dir, batch) in [("core1", "1"), ("core8", "8")] {
        run(&[
            "synth",
            "--weights",
            s(&weights),
            "--input",
            s(&input),
            "--out",
            s(&root.join(dir)),
            "--batch",
            batch,
        ])
        .unwrap();
    }
    for i in 0..2 {
        let name = format!("s{i}.nii.gz");
        let src = read_volume(&input.join(&name)).unwrap();
        let core = read_volume(&root.join("core1").join(&name)).unwrap();
        assert_eq!(core.dim(), src.dim());
        assert!(core.data.iter().all(|v| v.is_finite()));
        assert_eq!(
            std::fs::read(root.join("core1").join(&name)).unwrap(),
            std::fs::read(root.join("core8").join(&name)).unwrap()
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn eval_run_scores_both_directions_against_their_own_truths_and_masks() {
    let root: PathBuf = dicyc_volume::testing::scratch_dir("eval-run", "both-directions");
    let (sim, def, run_dir, out) = (
        root.join("sim"),
        root.join("def"),
        root.join("run"),
        root.join("eval"),
    );
    run(&["data", "simulate", "--phantom", "--small", "--out", s(&sim)]).unwrap();
    run(&[
        "data",
        "deform",
        "--data",
        s(&sim),
        "--out",
        s(&def),
        "--seed",
        "2",
    ])
    .unwrap();
    tiny_run(&run_dir);
    run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--data",
        s(&def),
        "--out",
        s(&out),
        "--device",
        "cpu",
        "--title",
        "tiny",
    ])
    .unwrap();

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| PD→T2 | 2 |") && md.contains("| T2→PD | 2 |"),
        "{md}"
    );
    let results: Vec<DirectionResult> =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let names: Vec<&str> = results.iter().map(|r| r.direction.as_str()).collect();
    assert_eq!(names, ["PD→T2", "T2→PD"]);
    let test = def.join("test");
    // PD→T2: synthesized from test/pd, scored against gt-t2 (the undeformed T2, aligned with
    // PD) within mask; T2→PD: from the deformed test/t2, against gt-pd (PD warped by the
    // field) within mask-t2. Recomputing each volume's metrics from those files must give
    // the reported values, and the wrong truth or mask must not.
    for (r, tag, truth, mask, wrong_truth, wrong_mask) in [
        (&results[0], "a2b", "gt-t2", "mask", "t2", "mask-t2"),
        (&results[1], "b2a", "gt-pd", "mask-t2", "pd", "mask"),
    ] {
        assert_eq!(r.volumes.len(), 2, "{}", r.direction);
        for (name, got) in &r.volumes {
            let file = format!("{name}.nii.gz");
            let pred = read_volume(&out.join("synth").join(tag).join(&file)).unwrap();
            let load = |d: &str| read_volume(&test.join(d).join(&file)).unwrap().data;
            let (t, m) = (load(truth), load(mask));
            let want = volume_metrics(&pred.data.view(), &t.view(), Some(&m.view()));
            assert!(
                (got.mse - want.mse).abs() <= 1e-9 * want.mse.max(1.0),
                "{} {name}: {} vs {}",
                r.direction,
                got.mse,
                want.mse
            );
            assert_eq!(got.voxels, want.voxels, "{} {name}: mask", r.direction);
            let (wt, wm) = (load(wrong_truth), load(wrong_mask));
            let other_truth = volume_metrics(&pred.data.view(), &wt.view(), Some(&m.view()));
            assert!(
                (other_truth.mse - got.mse).abs() > 1e-6 * got.mse,
                "{} {name}: {wrong_truth} scores the same as {truth}",
                r.direction
            );
            let other_mask = volume_metrics(&pred.data.view(), &t.view(), Some(&wm.view()));
            assert_ne!(
                other_mask.voxels, got.voxels,
                "{} {name}: {wrong_mask} has as many voxels as {mask}",
                r.direction
            );
            // The prediction is on the source's grid.
            let src = if tag == "a2b" { "pd" } else { "t2" };
            assert_eq!(pred.dim(), load(src).dim());
        }
    }
    assert_eq!(
        &std::fs::read(out.join("examples.png")).unwrap()[1..4],
        b"PNG"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn synth_refuses_slices_too_small_for_the_generator_without_a_panic() {
    use dicyc_volume::testing::{f32_bytes, RawNifti};
    let root: PathBuf = dicyc_volume::testing::scratch_dir("synth", "too-small");
    let run_dir = root.join("run");
    tiny_run(&run_dir);
    for (name, shape) in [("tiny", [1i16, 1, 1]), ("thin", [1, 112, 12])] {
        let input = root.join(format!("{name}.nii"));
        let n: usize = shape.iter().map(|&d| d as usize).product();
        let data = f32_bytes(&(0..n).map(|i| i as f32).collect::<Vec<_>>(), false);
        std::fs::write(&input, RawNifti::float32(shape).file_bytes(&data)).unwrap();
        let out = root.join(format!("out-{name}"));
        let err = run(&[
            "synth",
            "--run",
            s(&run_dir),
            "--input",
            s(&input),
            "--out",
            s(&out),
            "--device",
            "cpu",
        ])
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("{name}.nii")) && msg.contains("at least 8×8"),
            "{msg}"
        );
        assert!(
            !out.join(format!("{name}.nii")).exists()
                && !out.join(format!("{name}.nii.gz")).exists()
        );
    }
}

/// `trainer synth` as a child process with `DICYC_MAX_FORWARD_BYTES` set to `limit` (or
/// removed), so that the limit is read as a user's shell would give it.
fn synth_with_limit(args: &[&str], limit: Option<&str>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.arg("synth").args(args).env_remove("RUST_BACKTRACE");
    match limit {
        Some(l) => c.env(dicyc_trainer::inference::MAX_FORWARD_BYTES_ENV, l),
        None => c.env_remove(dicyc_trainer::inference::MAX_FORWARD_BYTES_ENV),
    };
    c.output().unwrap()
}

#[test]
fn synth_refuses_slices_over_its_memory_limit_before_allocating_and_shrinks_batches_to_fit() {
    use dicyc_trainer::inference::{forward_bytes, MAX_FORWARD_BYTES_ENV};
    use dicyc_volume::testing::{f32_bytes, gzip, RawNifti};
    let root: PathBuf = dicyc_volume::testing::scratch_dir("synth", "forward-limit");
    let run_dir = root.join("run");
    tiny_run(&run_dir);
    let config = TrainConfig::small().effective_generator();

    // A 60 KB gzip declaring one 4096 × 4096 slice: under the default limit's volume reader
    // (64 MiB), but one forward would take gigabytes.
    let bomb = root.join("bomb.nii.gz");
    let zeros = f32_bytes(&vec![0.0; 4096 * 4096], false);
    std::fs::write(
        &bomb,
        gzip(&RawNifti::float32([4096, 4096, 1]).file_bytes(&zeros)),
    )
    .unwrap();
    let out = root.join("out-bomb");
    let o = synth_with_limit(
        &["--run", s(&run_dir), "--input", s(&bomb), "--out", s(&out)],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    for word in [
        "bomb.nii.gz",
        "4096×4096",
        MAX_FORWARD_BYTES_ENV,
        "limit of 2.0 GiB",
    ] {
        assert!(err.contains(word), "{word:?} missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.join("bomb.nii.gz").exists());

    // A limit that holds exactly one 32 × 32 slice: `--batch 8` runs one slice at a time and
    // gives what an unlimited batch of 8 gives.
    let a = Anatomy::phantom([32, 32, 5]);
    let input = root.join("pd");
    write(
        &input.join("v.nii.gz"),
        &simulate_subject(&a, &SimOptions::ixi_like(1, a.dims(), [0.0; 3]), 0).pd,
    )
    .unwrap();
    let one = forward_bytes(&config, (32, 32), 1).to_string();
    let mut outputs = Vec::new();
    for (tag, limit) in [("one", Some(one.as_str())), ("default", None)] {
        let out = root.join(format!("out-{tag}"));
        let o = synth_with_limit(
            &[
                "--run",
                s(&run_dir),
                "--input",
                s(&input),
                "--out",
                s(&out),
                "--batch",
                "8",
                "--device",
                "cpu",
            ],
            limit,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push(read_volume(&out.join("v.nii.gz")).unwrap().data);
    }
    let diff = (&outputs[0] - &outputs[1])
        .mapv(f32::abs)
        .fold(0.0f32, |m, &d| m.max(d));
    assert!(diff < 1e-4, "batch of 1 vs 8 differ by {diff}");

    // One byte less than a slice needs is refused, and so is a limit that is not a size.
    let less = (forward_bytes(&config, (32, 32), 1) - 1).to_string();
    for (limit, words) in [
        (less.as_str(), &["v.nii.gz", "over the limit"][..]),
        (
            "lots",
            &[MAX_FORWARD_BYTES_ENV, "\"lots\" is not a byte count"][..],
        ),
    ] {
        let out = root.join("out-refused");
        let o = synth_with_limit(
            &["--run", s(&run_dir), "--input", s(&input), "--out", s(&out)],
            Some(limit),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{limit}: {err}");
        for word in words {
            assert!(err.contains(word), "{word:?} missing from: {err}");
        }
        assert!(!out.join("v.nii.gz").exists());
    }
}
