//! `trainer synth` on a checkpoint: outputs keep the source's grid and geometry, are written
//! in the target domain's units (data-stats.json), both directions and passes run, and the
//! input folder is never written into.

use std::path::{Path, PathBuf};

use clap::Parser;
use dicyc_trainer::cli::Cli;
use dicyc_trainer::data::nifti_io::{read_volume, write};
use dicyc_trainer::data::preprocess::{Normalization, PreprocessOptions};
use dicyc_trainer::data::sampling::DataStats;
use dicyc_trainer::data::simulate::{simulate_subject, Anatomy, SimOptions};
use dicyc_trainer::model::Generator;
use dicyc_trainer::train::TrainConfig;
use tch::nn::VarStore;
use tch::Device;

fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["trainer"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .run()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn synth_writes_source_grid_volumes_in_target_units() {
    let root: PathBuf =
        std::env::temp_dir().join(format!("dicyc-test-synth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // A tiny "trained" run: config.toml + checkpoints/latest → step folder with g_ab / g_ba.
    let run_dir = root.join("run");
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
    std::fs::remove_dir_all(&root).unwrap();
}
