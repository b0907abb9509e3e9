//! The training loop on tiny data: finite losses, an overfit check, exact resume, both
//! models through the CLI, and clear errors for bad configuration or data.

mod common;

use std::path::{Path, PathBuf};

use dicyc_trainer::cli::train::{run, TrainArgs};
use dicyc_trainer::model::OffsetForm;
use dicyc_trainer::source::UnpairedSlices;
use dicyc_trainer::train::checkpoint::RunState;
use dicyc_trainer::train::config::{DataConfig, SyntheticConfig};
use dicyc_trainer::train::schedule::Stage;
use dicyc_trainer::train::{ModelKind, SyntheticSlices, TrainConfig, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn tiny_config(model: ModelKind) -> TrainConfig {
    common::tiny_train_config(model)
}

fn scratch_dir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("train", name)
}

fn write_config(dir: &Path, config: &TrainConfig) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    path
}

fn args(config: &Path, run_dir: &Path) -> TrainArgs {
    TrainArgs {
        config: Some(config.to_path_buf()),
        run_dir: Some(run_dir.to_path_buf()),
        quiet: true,
        ..TrainArgs::default()
    }
}

fn fixed_batch(config: &TrainConfig) -> (Tensor, Tensor) {
    let DataConfig::Synthetic(s) = &config.data else {
        unreachable!()
    };
    let mut source = SyntheticSlices::new(s).unwrap();
    source
        .next_batch(config.batch_size, &mut ChaCha8Rng::seed_from_u64(9))
        .unwrap()
}

#[test]
fn every_loss_is_finite_and_the_generator_loss_drops_on_a_fixed_batch() {
    for model in [ModelKind::Dicyclegan, ModelKind::Cyclegan] {
        let config = tiny_config(model);
        let (a, b) = fixed_batch(&config);
        let mut trainer = Trainer::new(config, Device::Cpu).unwrap();
        let before = trainer.generator_loss(&a, &b);
        for _ in 0..12 {
            let losses = trainer.train_step(&a, &b).unwrap();
            assert!(losses.all_finite(), "{model:?}: {losses:?}");
            if model == ModelKind::Dicyclegan {
                assert!(losses.dicycle > 0.0 && losses.alignment > 0.0, "{losses:?}");
            } else {
                assert_eq!((losses.dicycle, losses.alignment), (0.0, 0.0));
            }
        }
        let after = trainer.generator_loss(&a, &b);
        assert!(
            after < 0.8 * before,
            "{model:?}: generator loss {before} -> {after}"
        );
    }
}

#[test]
fn the_study_variants_terms_enter_the_loss_and_train() {
    // Shared fields, offset penalties and an undeformed-pass GAN term: each is logged, is
    // part of the total, and a few steps of each keep every loss finite.
    let base = tiny_config(ModelKind::Dicyclegan);
    let (a, b) = fixed_batch(&base);
    let mut penalised = base.clone();
    penalised.generator.offset_form = OffsetForm::Shared;
    penalised.loss.offset_magnitude = 0.5;
    penalised.loss.offset_smoothness = 2.0;
    penalised.loss.gan_undeformed = 0.3;
    let mut trainer = Trainer::new(penalised.clone(), Device::Cpu).unwrap();
    let first = trainer.train_step(&a, &b).unwrap();
    assert!(
        first.offset > 0.0 && first.gan_undeformed > 0.0,
        "{first:?}"
    );
    let weighted = first.gan * penalised.loss.gan
        + first.cycle * penalised.loss.cycle
        + first.dicycle * penalised.loss.dicycle
        + first.alignment * penalised.loss.alignment
        + first.gan_undeformed * penalised.loss.gan_undeformed
        + first.offset;
    assert!(
        (weighted - first.g_total).abs() <= 1e-4 * first.g_total.abs(),
        "total {} vs the weighted terms {weighted}",
        first.g_total
    );
    for _ in 0..4 {
        assert!(trainer.train_step(&a, &b).unwrap().all_finite());
    }
    // Off by default: the terms are 0 and the offsets' shapes are per channel.
    let mut plain = Trainer::new(base, Device::Cpu).unwrap();
    let l = plain.train_step(&a, &b).unwrap();
    assert_eq!((l.offset, l.gan_undeformed), (0.0, 0.0));
    // CycleGAN ignores them (no offsets, no undeformed/deformed distinction).
    let mut cyc = penalised;
    cyc.model = ModelKind::Cyclegan;
    let l = Trainer::new(cyc, Device::Cpu)
        .unwrap()
        .train_step(&a, &b)
        .unwrap();
    assert_eq!((l.offset, l.gan_undeformed), (0.0, 0.0));
}

fn parameters(checkpoint: &Path) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for name in ["g_ab", "g_ba", "d_a", "d_b"] {
        let mut t =
            Tensor::read_safetensors(checkpoint.join(format!("{name}.safetensors"))).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(t.into_iter().map(|(n, t)| (format!("{name}.{n}"), t)));
    }
    out
}

fn state_of(checkpoint: &Path) -> RunState {
    serde_json::from_str(&std::fs::read_to_string(checkpoint.join("state.json")).unwrap()).unwrap()
}

#[test]
fn resume_reproduces_an_uninterrupted_run_and_the_run_directory_is_complete() {
    let dir = scratch_dir("resume");
    let config = tiny_config(ModelKind::Dicyclegan);
    let config_path = write_config(&dir, &config);
    // Uninterrupted: 8 steps. 3 steps per epoch; epochs 0 and 1 at the fixed rate, the decay
    // stage from epoch 2 (step 7); the run stops mid-epoch 2.
    let whole = dir.join("whole");
    let (_, summary) = run(&TrainArgs {
        max_steps: Some(8),
        ..args(&config_path, &whole)
    })
    .unwrap();
    assert_eq!(summary.global_step, 8);
    // Interrupted after 2 steps (mid-epoch 0; the pools, of 2, have just filled), resumed to
    // 5 (mid-epoch 1, pools swapping), resumed to 8 (across the start of the decay stage).
    let parts = dir.join("parts");
    let (_, first) = run(&TrainArgs {
        max_steps: Some(2),
        checkpoint_every: Some(1),
        ..args(&config_path, &parts)
    })
    .unwrap();
    assert_eq!(first.global_step, 2);
    let resume = |max_steps| TrainArgs {
        resume: Some(parts.clone()),
        max_steps: Some(max_steps),
        quiet: true,
        ..TrainArgs::default()
    };
    let (_, second) = run(&resume(5)).unwrap();
    assert_eq!((second.global_step, second.steps_this_call), (5, 3));
    let (_, second) = run(&resume(8)).unwrap();
    assert_eq!((second.global_step, second.steps_this_call), (8, 3));

    let a = parameters(summary.checkpoint.as_ref().unwrap());
    let b = parameters(second.checkpoint.as_ref().unwrap());
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        // Bit-for-bit: same kernels, same thread count, same inputs in the same order.
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(ta.equal(tb), "{na} differs by {diff} after resume");
    }
    // Generator checkpoints use the core's tensor names.
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "g_ab.stem.weight",
        "g_ab.offset.down1.weight",
        "g_ab.blocks.0.conv1.bias",
        "g_ab.up.0.weight",
        "g_ba.head.bias",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    // The same schedule: stage, epoch, running loss, RNG position and every step's lr.
    let state = state_of(summary.checkpoint.as_ref().unwrap());
    assert_eq!(state, state_of(second.checkpoint.as_ref().unwrap()));
    assert_eq!((state.epoch, state.step_in_epoch), (2, 2));
    assert_eq!(state.schedule.stage, Stage::Decay { start: 2 });
    // The logs hold each step once, also across the resumes, and equal the uninterrupted
    // run's line for line (losses and lr).
    let log = |run: &Path| std::fs::read_to_string(run.join("losses.jsonl")).unwrap();
    assert_eq!(log(&parts), log(&whole));
    let (steps, lrs): (Vec<u64>, Vec<f64>) = log(&whole)
        .lines()
        .map(|l| {
            let v = serde_json::from_str::<serde_json::Value>(l).unwrap();
            (v["step"].as_u64().unwrap(), v["lr"].as_f64().unwrap())
        })
        .unzip();
    assert_eq!(steps, (1..=8).collect::<Vec<u64>>());
    let lr = config.optim.lr;
    assert_eq!(lrs, [[lr; 6].as_slice(), &[lr * 0.5; 2]].concat());
    // Run directory: re-usable config, CSV, sample grids and curves after each epoch and at
    // a mid-epoch stop.
    let saved = TrainConfig::load(&whole.join("config.toml")).unwrap();
    assert_eq!(
        saved,
        TrainConfig {
            max_steps: 8,
            ..config.clone()
        }
    );
    assert!(whole.join("losses.csv").exists());
    assert!(whole.join("epochs.csv").exists());
    for grid in ["epoch-0001", "epoch-0002", "step-000000008"] {
        assert!(whole.join(format!("samples/{grid}.png")).exists(), "{grid}");
    }
    for grid in ["step-000000002", "step-000000005", "step-000000008"] {
        assert!(parts.join(format!("samples/{grid}.png")).exists(), "{grid}");
    }
    assert!(whole.join("curves/g_total.png").exists());
    assert!(whole.join("checkpoints/latest").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cyclegan_trains_through_the_cli_and_has_no_offset_tensors() {
    let dir = scratch_dir("cyclegan");
    let config_path = write_config(&dir, &tiny_config(ModelKind::Dicyclegan));
    let run_dir = dir.join("run");
    let (_, summary) = run(&TrainArgs {
        model: Some(ModelKind::Cyclegan),
        max_steps: Some(2),
        ..args(&config_path, &run_dir)
    })
    .unwrap();
    let params = parameters(summary.checkpoint.as_ref().unwrap());
    assert!(params.iter().all(|(n, _)| !n.contains("offset")));
    assert!(summary.last.unwrap().all_finite());
    let saved = TrainConfig::load(&run_dir.join("config.toml")).unwrap();
    assert_eq!(saved.model, ModelKind::Cyclegan);
    // A second run into the same directory is refused with a pointer to --resume.
    let err = run(&args(&config_path, &run_dir)).unwrap_err();
    assert!(format!("{err:#}").contains("--resume"), "{err:#}");
    // A resume that fails (here: a damaged checkpoint) does not record its overrides.
    let before = std::fs::read(run_dir.join("config.toml")).unwrap();
    std::fs::remove_file(
        summary
            .checkpoint
            .as_ref()
            .unwrap()
            .join("g_ab.safetensors"),
    )
    .unwrap();
    let err = run(&TrainArgs {
        resume: Some(run_dir.clone()),
        epochs: Some(9),
        quiet: true,
        ..TrainArgs::default()
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("checkpoint"), "{err:#}");
    assert_eq!(std::fs::read(run_dir.join("config.toml")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A source whose data can be made wrong.
struct BadSource {
    channels: i64,
    size: i64,
    value: f32,
}

impl UnpairedSlices for BadSource {
    fn next_batch(&mut self, batch: usize, _: &mut ChaCha8Rng) -> anyhow::Result<(Tensor, Tensor)> {
        let t = Tensor::full(
            [batch as i64, self.channels, self.size, self.size],
            self.value as f64,
            (Kind::Float, Device::Cpu),
        );
        Ok((t.shallow_clone(), t))
    }
    fn slices_per_epoch(&self) -> usize {
        4
    }
    fn channels(&self) -> (i64, i64) {
        (self.channels, self.channels)
    }
    fn slice_size(&self) -> (i64, i64) {
        (self.size, self.size)
    }
}

#[test]
fn bad_configuration_or_data_gives_a_clear_error() {
    let dir = scratch_dir("errors");
    // Missing configuration file: the error names the file.
    let missing = dir.join("nope.toml");
    let err = run(&args(&missing, &dir.join("r0"))).unwrap_err();
    assert!(format!("{err:#}").contains("nope.toml"), "{err:#}");
    // Unknown field in a configuration file.
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "batch_sise = 2\n").unwrap();
    let err = run(&args(&typo, &dir.join("r1"))).unwrap_err();
    assert!(format!("{err:#}").contains("batch_sise"), "{err:#}");
    // Size not divisible by 4.
    let mut config = tiny_config(ModelKind::Dicyclegan);
    config.data = DataConfig::Synthetic(SyntheticConfig {
        size: 30,
        ..SyntheticConfig::default()
    });
    let err = config.validate().unwrap_err();
    assert!(err.to_string().contains("multiple of 4"), "{err}");

    let config = tiny_config(ModelKind::Dicyclegan);
    let trainer = Trainer::new(config.clone(), Device::Cpu).unwrap();
    // Wrong channels.
    let err = trainer
        .check_source(&BadSource {
            channels: 2,
            size: 32,
            value: 0.0,
        })
        .unwrap_err();
    assert!(err.to_string().contains("channel"), "{err}");
    // Slices not a multiple of 4.
    let err = trainer
        .check_source(&BadSource {
            channels: 1,
            size: 30,
            value: 0.0,
        })
        .unwrap_err();
    assert!(err.to_string().contains("multiples of 4"), "{err}");
    // Too small for the PatchGAN.
    let err = trainer
        .check_source(&BadSource {
            channels: 1,
            size: 16,
            value: 0.0,
        })
        .unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");

    // Non-finite data.
    let mut trainer = Trainer::new(config.clone(), Device::Cpu).unwrap();
    let mut run_dir = dicyc_trainer::train::RunDir::create(&dir.join("nan-data"), &config).unwrap();
    let err = trainer
        .run(
            &mut BadSource {
                channels: 1,
                size: 32,
                value: f32::NAN,
            },
            &mut run_dir,
            false,
        )
        .unwrap_err();
    assert!(format!("{err:#}").contains("non-finite values"), "{err:#}");

    // A non-finite loss stops the run and leaves the last good checkpoint intact.
    let config_path = write_config(&dir, &config);
    let good = dir.join("good");
    let (_, summary) = run(&TrainArgs {
        max_steps: Some(1),
        ..args(&config_path, &good)
    })
    .unwrap();
    let checkpoint = summary.checkpoint.unwrap();
    let before = parameters(&checkpoint);
    let checkpoints_before = checkpoint_listing(&good);
    // NaN in the head bias: the loss itself is NaN. +Inf: tanh saturates, so every loss (and
    // gradient) stays finite while the weights do not — the checkpoint is refused instead.
    for (poison, expected) in [
        (f64::NAN, "non-finite generator loss"),
        (
            f64::INFINITY,
            "refusing to write a checkpoint at step 3: parameter g_ab.head.bias",
        ),
    ] {
        let mut trainer = Trainer::new(
            TrainConfig {
                max_steps: 3,
                ..config.clone()
            },
            Device::Cpu,
        )
        .unwrap();
        trainer.load_checkpoint(&checkpoint).unwrap();
        tch::no_grad(|| {
            let _ = trainer.models.vs_g_ab.variables()["head.bias"]
                .shallow_clone()
                .fill_(poison);
        });
        let mut run_dir = dicyc_trainer::train::RunDir::open(&good, 1).unwrap();
        let DataConfig::Synthetic(s) = &config.data else {
            unreachable!()
        };
        let err = trainer
            .run(&mut SyntheticSlices::new(s).unwrap(), &mut run_dir, false)
            .unwrap_err();
        let text = format!("{err:#}");
        let last_good = format!("the last good checkpoint is {}", checkpoint.display());
        assert!(
            text.contains(expected) && text.contains(&last_good),
            "{poison}: {text}"
        );
        // Nothing new was written, `latest` still names the good checkpoint, and its
        // weights are untouched.
        assert_eq!(checkpoint_listing(&good), checkpoints_before, "{poison}");
        let after = parameters(&checkpoint);
        for ((n, a), (_, b)) in before.iter().zip(&after) {
            assert!(
                a.equal(b),
                "{poison}: {n} changed in the last good checkpoint"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `checkpoints/latest`'s content and the names in `checkpoints/`.
fn checkpoint_listing(run_dir: &Path) -> (String, Vec<String>) {
    let dir = run_dir.join("checkpoints");
    let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (latest, names)
}

#[test]
fn trains_on_nifti_folders_through_the_data_pipeline() {
    use dicyc_trainer::data::nifti_io::write_volume;
    let dir = scratch_dir("nifti");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for domain in ["a", "b"] {
        for subject in 0..2 {
            let volume = ndarray::Array3::from_shape_fn((40, 36, 3), |(x, y, z)| {
                let r = ((x as f32 - 20.0).powi(2) + (y as f32 - 18.0).powi(2)).sqrt();
                let noise: f32 = rand::Rng::gen_range(&mut rng, 0.0..0.1);
                if r < 14.0 {
                    100.0 + 10.0 * z as f32 + 50.0 * (x as f32 / 7.0).sin() + noise
                } else {
                    0.0
                }
            });
            let path = dir.join(domain).join(format!("s{subject}.nii.gz"));
            write_volume(&path, &volume, &nifti::NiftiHeader::default()).unwrap();
        }
    }
    let config_path = write_config(&dir, &tiny_config(ModelKind::Dicyclegan));
    let run_dir = dir.join("run");
    let train = TrainArgs {
        data_a: Some(dir.join("a")),
        data_b: Some(dir.join("b")),
        size: Some(32),
        max_steps: Some(2),
        ..args(&config_path, &run_dir)
    };
    let (_, summary) = run(&train).unwrap();
    assert!(summary.last.unwrap().all_finite());
    let saved = TrainConfig::load(&run_dir.join("config.toml")).unwrap();
    assert!(
        matches!(saved.data, DataConfig::Nifti { .. }),
        "{:?}",
        saved.data
    );
    assert!(run_dir.join("data-stats.json").exists());
    // A missing folder is named in the error, and no run directory is left behind.
    let missing = TrainArgs {
        data_a: Some(dir.join("nope")),
        run_dir: Some(dir.join("run2")),
        ..train
    };
    let err = run(&missing).unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
    assert!(!dir.join("run2").join("config.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn command_line_overrides_reach_the_configuration() {
    use clap::Parser;
    use dicyc_trainer::cli::{Cli, Command};
    let cli = Cli::try_parse_from([
        "trainer",
        "train",
        "--preset",
        "small",
        "--early-stop",
        "false",
        "--keep-checkpoints",
        "5",
        "--epochs",
        "7",
    ])
    .unwrap();
    let Command::Train(args) = cli.command else {
        panic!("parsed as another subcommand")
    };
    let config = args.resolve().unwrap();
    assert!(!config.schedule.early_stop);
    assert_eq!(config.output.keep_checkpoints, 5);
    assert_eq!(config.schedule.epochs, 7);
    // Left alone, the preset's values stand; a bad value is a parse error naming the flag.
    let default = TrainArgs {
        preset: Some(dicyc_trainer::train::Preset::Small),
        ..TrainArgs::default()
    };
    assert!(default.resolve().unwrap().schedule.early_stop);
    let err = Cli::try_parse_from(["trainer", "train", "--early-stop", "maybe"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--early-stop"), "{err}");
}
