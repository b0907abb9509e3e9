//! The training loop on tiny data: finite losses, an overfit check, exact resume, both
//! models through the CLI, and clear errors for bad configuration or data.

use std::path::{Path, PathBuf};

use dicyc_trainer::cli::train::{run, TrainArgs};
use dicyc_trainer::model::{DiscriminatorConfig, GeneratorConfig, OffsetSite};
use dicyc_trainer::source::UnpairedSlices;
use dicyc_trainer::train::config::{DataConfig, SyntheticConfig};
use dicyc_trainer::train::{ModelKind, SyntheticSlices, TrainConfig, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn tiny_config(model: ModelKind) -> TrainConfig {
    let mut c = TrainConfig::small();
    c.model = model;
    c.generator = GeneratorConfig {
        ngf: 4,
        n_blocks: 1,
        offset_layers: OffsetSite::ALL.to_vec(),
        ..c.generator
    };
    c.discriminator = DiscriminatorConfig {
        ndf: 4,
        n_layers: 3,
    };
    c.data = DataConfig::Synthetic(SyntheticConfig {
        size: 32,
        slices: 8,
        deformation: 2.0,
        seed: 3,
    });
    c.schedule.epochs = 2;
    c.schedule.epochs_decay = 1;
    c.schedule.steps_per_epoch = 3;
    c.pool_size = 2;
    c.output.samples = 2;
    c.device = dicyc_trainer::device::DeviceChoice::Cpu;
    c
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dicyc-train-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

#[test]
fn resume_reproduces_an_uninterrupted_run_and_the_run_directory_is_complete() {
    let dir = scratch_dir("resume");
    let config = tiny_config(ModelKind::Dicyclegan);
    let config_path = write_config(&dir, &config);
    // Uninterrupted: 5 steps (crosses the epoch boundary after step 3).
    let whole = dir.join("whole");
    let (_, summary) = run(&TrainArgs {
        max_steps: Some(5),
        ..args(&config_path, &whole)
    })
    .unwrap();
    assert_eq!(summary.global_step, 5);
    // Interrupted after 2 steps (mid-epoch, pool not yet full), then resumed to 5.
    let parts = dir.join("parts");
    let (_, first) = run(&TrainArgs {
        max_steps: Some(2),
        checkpoint_every: Some(1),
        ..args(&config_path, &parts)
    })
    .unwrap();
    assert_eq!(first.global_step, 2);
    let resume = TrainArgs {
        resume: Some(parts.clone()),
        max_steps: Some(5),
        quiet: true,
        ..TrainArgs::default()
    };
    let (_, second) = run(&resume).unwrap();
    assert_eq!((second.global_step, second.steps_this_call), (5, 3));

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
    // The logs hold each step once, also across the resume.
    let steps: Vec<u64> = std::fs::read_to_string(parts.join("losses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5]);
    // Run directory: re-usable config, CSV, sample grid and curves after the first epoch.
    let saved = TrainConfig::load(&whole.join("config.toml")).unwrap();
    assert_eq!(
        saved,
        TrainConfig {
            max_steps: 5,
            ..config.clone()
        }
    );
    assert!(whole.join("losses.csv").exists());
    assert!(whole.join("epochs.csv").exists());
    assert!(whole.join("samples/epoch-0001.png").exists());
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
            .fill_(f64::NAN);
    });
    let mut run_dir = dicyc_trainer::train::RunDir::open(&good, 1).unwrap();
    let DataConfig::Synthetic(s) = &config.data else {
        unreachable!()
    };
    let err = trainer
        .run(&mut SyntheticSlices::new(s).unwrap(), &mut run_dir, false)
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("non-finite generator loss") && text.contains("last good checkpoint"),
        "{text}"
    );
    let after = parameters(&checkpoint);
    for ((n, a), (_, b)) in before.iter().zip(&after) {
        assert!(a.equal(b), "{n} changed in the last good checkpoint");
    }
    let _ = std::fs::remove_dir_all(&dir);
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
