//! Pieces of the training loop: Adam (against libtorch's), the image pool, the schedule
//! and early-stop rule, configuration files.

use dicyc_trainer::model::OffsetSite;
use dicyc_trainer::train::adam::Adam;
use dicyc_trainer::train::config::{DataConfig, ScheduleConfig};
use dicyc_trainer::train::pool::ImagePool;
use dicyc_trainer::train::schedule::{Schedule, Stage};
use dicyc_trainer::train::{Preset, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn adam_matches_libtorch_adam_and_restores_its_state() {
    tch::manual_seed(0);
    let target = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let start = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let loss_of = |w: &Tensor| (w - &target).pow_tensor_scalar(3.0).abs().sum(Kind::Float);

    let vs = nn::VarStore::new(Device::Cpu);
    let w_ref = vs.root().var_copy("w", &start);
    let mut reference = nn::Adam {
        beta1: 0.5,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(&vs, 0.01)
    .unwrap();

    let w = start.copy().set_requires_grad(true);
    let mut ours = Adam::new(
        vec![("w".into(), w.shallow_clone())],
        0.01,
        0.5,
        0.999,
        1e-8,
    );
    for step in 0..20 {
        reference.zero_grad();
        loss_of(&w_ref).backward();
        reference.step();
        ours.zero_grad();
        loss_of(&w).backward();
        ours.step();
        let diff = (&w - &w_ref).abs().max().double_value(&[]);
        assert!(
            diff < 1e-6,
            "step {step}: ours and libtorch's Adam differ by {diff}"
        );
    }
    // Save, continue; restore into a fresh optimizer, continue: identical.
    let dir = dicyc_volume::testing::scratch_dir("train-parts", "adam");
    let path = dir.join("adam.safetensors");
    ours.save(&path).unwrap();
    let saved_w = w.detach().copy();
    let step = |opt: &mut Adam, w: &Tensor| {
        opt.zero_grad();
        loss_of(w).backward();
        opt.step();
    };
    step(&mut ours, &w);
    let w2 = saved_w.copy().set_requires_grad(true);
    let mut restored = Adam::new(
        vec![("w".into(), w2.shallow_clone())],
        0.01,
        0.5,
        0.999,
        1e-8,
    );
    restored.load(&path).unwrap();
    assert_eq!(restored.steps(), 20);
    step(&mut restored, &w2);
    assert!(w.equal(&w2), "restored Adam diverged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_pool_fills_then_swaps_half_and_round_trips() {
    let mut pool = ImagePool::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = |v: f64| Tensor::full([1, 1, 2, 2], v, (Kind::Float, Device::Cpu));
    for i in 0..3 {
        let out = pool.query(&batch(i as f64), &mut rng);
        assert_eq!(
            out.double_value(&[0, 0, 0, 0]),
            i as f64,
            "not yet full: passes through"
        );
    }
    assert_eq!(pool.len(), 3);
    let mut swapped = 0;
    for i in 3..203 {
        let out = pool.query(&batch(i as f64), &mut rng);
        if out.double_value(&[0, 0, 0, 0]) != i as f64 {
            swapped += 1;
        }
    }
    assert!((70..130).contains(&swapped), "swapped {swapped} of 200");
    let saved = pool.to_tensor().unwrap();
    let mut restored = ImagePool::new(3);
    restored.restore(&saved, Device::Cpu).unwrap();
    assert!(restored.to_tensor().unwrap().equal(&saved));
    assert!(ImagePool::new(2).restore(&saved, Device::Cpu).is_err());
}

fn schedule(epochs: u32, decay: u32, early_stop: bool) -> ScheduleConfig {
    ScheduleConfig {
        epochs,
        epochs_decay: decay,
        early_stop,
        patience: 2,
        patience_decay: 3,
        steps_per_epoch: 0,
    }
}

/// The lr factor of every epoch until the schedule ends, with a steadily falling epoch loss
/// (so early stop never fires).
fn lr_factors_with_falling_loss(s: &mut Schedule, config: &ScheduleConfig) -> Vec<f64> {
    let mut factors = Vec::new();
    let mut epoch = 0;
    loop {
        factors.push(s.lr_factor(epoch, config));
        if !s.end_epoch(epoch, 10.0 - epoch as f64, config) {
            return factors;
        }
        epoch += 1;
    }
}

#[test]
fn schedule_is_fixed_then_linear_decay_to_zero() {
    let config = schedule(3, 4, false);
    let mut s = Schedule::default();
    let factors = lr_factors_with_falling_loss(&mut s, &config);
    let expected = [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2];
    assert_eq!(factors.len(), expected.len(), "{factors:?}");
    for (f, e) in factors.iter().zip(expected) {
        assert!((f - e).abs() < 1e-12, "{factors:?}");
    }
    assert_eq!(s.stage, Stage::Done);
}

#[test]
fn early_stop_moves_to_decay_then_stops() {
    let config = schedule(100, 100, true);
    let mut s = Schedule::default();
    // Improves for 3 epochs, then plateaus: after `patience` (2) flat epochs, decay starts.
    let losses = [5.0, 4.0, 3.0, 3.0, 3.5];
    for (e, l) in losses.iter().enumerate() {
        assert!(s.end_epoch(e as u32, *l, &config));
    }
    assert_eq!(s.stage, Stage::Decay { start: 5 });
    assert!((s.lr_factor(5, &config) - (1.0 - 1.0 / 101.0)).abs() < 1e-12);
    // In the decay stage: a new best, then `patience_decay` (3) epochs without improvement.
    assert!(s.end_epoch(5, 2.0, &config));
    assert!(s.end_epoch(6, 2.5, &config));
    assert!(s.end_epoch(7, 2.5, &config));
    assert!(!s.end_epoch(8, 2.1, &config));
    assert_eq!(s.stage, Stage::Done);
}

#[test]
fn configurations_round_trip_through_toml() {
    for preset in [Preset::Paper, Preset::Small] {
        let config = TrainConfig::preset(preset);
        config.validate().unwrap();
        let text = config.to_toml().unwrap();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config, "{text}");
    }
    let mut nifti = TrainConfig::paper();
    nifti.data = DataConfig::Nifti {
        a: "data/pd".into(),
        b: "data/t2".into(),
        preprocess: dicyc_trainer::data::PreprocessOptions::default(),
    };
    let text = nifti.to_toml().unwrap();
    let back: TrainConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, nifti, "{text}");
    // Omitted fields take the paper defaults.
    let partial: TrainConfig =
        toml::from_str("model = \"cyclegan\"\n[generator]\nngf = 16\n").unwrap();
    assert_eq!(partial.generator.n_blocks, 9);
    assert_eq!(partial.loss.cycle, 10.0);
    assert_eq!(partial.optim.lr, 2e-4);
    // The paper's numbers (the four offset sites are also the study's choice).
    let paper = TrainConfig::paper();
    assert_eq!(
        (
            paper.generator.ngf,
            paper.generator.n_blocks,
            paper.generator.offset_layers.clone()
        ),
        (64, 9, OffsetSite::ALL.to_vec())
    );
    assert_eq!(
        (paper.schedule.epochs, paper.schedule.epochs_decay),
        (100, 100)
    );
    assert_eq!(
        (paper.schedule.patience, paper.schedule.patience_decay),
        (10, 20)
    );
    assert_eq!(
        (
            paper.loss.cycle,
            paper.loss.dicycle,
            paper.loss.alignment,
            paper.loss.identity
        ),
        (10.0, 10.0, 0.9, 0.0)
    );
    assert_eq!((paper.pool_size, paper.batch_size), (50, 1));
}

#[test]
fn checkpoints_are_renamed_into_place_and_pruned() {
    use dicyc_trainer::train::checkpoint::Checkpoints;
    let dir = dicyc_volume::testing::scratch_dir("train-parts", "checkpoints");
    let checkpoints = Checkpoints::new(&dir).unwrap();
    assert_eq!(checkpoints.latest().unwrap(), None);
    let write = |step: u64, text: &str| {
        checkpoints
            .write(step, 2, |tmp| {
                std::fs::write(tmp.join("state.json"), text).map_err(Into::into)
            })
            .unwrap()
    };
    let first = write(10, "a");
    // A crash while writing leaves only a temporary folder: `latest` still names `first`.
    let result = checkpoints.write(20, 2, |_| anyhow::bail!("disk full"));
    assert!(result.is_err());
    assert_eq!(checkpoints.latest().unwrap().as_ref(), Some(&first));
    // A second checkpoint at the same step does not replace the first in place.
    let again = write(10, "b");
    assert_ne!(again, first);
    assert_eq!(checkpoints.latest().unwrap().as_ref(), Some(&again));
    assert_eq!(
        std::fs::read_to_string(first.join("state.json")).unwrap(),
        "a"
    );
    // Only the newest two are kept.
    let last = write(30, "c");
    assert!(!first.exists() && again.exists() && last.exists());
    assert_eq!(checkpoints.latest().unwrap(), Some(last));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_finite_gradient_of_a_finite_loss_is_found_and_named_before_any_update() {
    use dicyc_trainer::train::finite::first_non_finite;
    let ok = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let w = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut adam = Adam::new(
        vec![
            ("ok".into(), ok.shallow_clone()),
            ("w".into(), w.shallow_clone()),
        ],
        0.01,
        0.5,
        0.999,
        1e-8,
    );
    adam.zero_grad();
    // sqrt at 0: the loss is 0 + 2, its gradient in `w` is +Inf.
    let loss = w.sqrt().sum(Kind::Float) + ok.sum(Kind::Float);
    assert_eq!(loss.double_value(&[]), 2.0);
    loss.backward();
    assert_eq!(adam.non_finite_gradient().as_deref(), Some("w"));
    // Finite gradients (and parameters without one) pass.
    adam.zero_grad();
    ok.sum(Kind::Float).backward();
    assert_eq!(adam.non_finite_gradient(), None);
    let nan = Tensor::from_slice(&[1.0f32, f32::NAN]);
    let inf = Tensor::from_slice(&[f32::NEG_INFINITY]);
    let fine = Tensor::from_slice(&[f32::MAX]);
    assert_eq!(
        first_non_finite([("fine", &fine), ("nan", &nan), ("inf", &inf)]).as_deref(),
        Some("nan")
    );
    assert_eq!(first_non_finite([("fine", &fine)]), None);
    assert_eq!(first_non_finite(std::iter::empty()), None);
}

#[test]
fn zero_fixed_epochs_start_in_the_decay_stage() {
    let config = schedule(0, 4, false);
    let mut s = Schedule::start(&config);
    assert_eq!(s.stage, Stage::Decay { start: 0 });
    let factors = lr_factors_with_falling_loss(&mut s, &config);
    // CycleGAN's rule with n_epochs = 0: no epoch at the full rate.
    let expected = [0.8, 0.6, 0.4, 0.2];
    assert_eq!(factors.len(), expected.len(), "{factors:?}");
    for (f, e) in factors.iter().zip(expected) {
        assert!((f - e).abs() < 1e-12, "{factors:?}");
    }
    // With fixed epochs the start is the fixed stage, and `begin_epoch` is a no-op in a run
    // whose configuration is unchanged.
    let config = schedule(3, 4, false);
    let mut s = Schedule::start(&config);
    assert_eq!(s.stage, Stage::Fixed);
    s.begin_epoch(2, &config);
    assert_eq!(s.stage, Stage::Fixed);
    // A resume with a lower --epochs moves on at once; a finished decay ends the run.
    s.begin_epoch(5, &schedule(3, 4, false));
    assert_eq!(s.stage, Stage::Decay { start: 5 });
    s.begin_epoch(7, &schedule(3, 2, false));
    assert_eq!(s.stage, Stage::Done);
    // No decay stage at all: nothing to train.
    assert_eq!(Schedule::start(&schedule(0, 0, false)).stage, Stage::Done);

    // The trainer's first step already runs at the decayed rate.
    let mut config = TrainConfig::small();
    config.schedule.epochs = 0;
    let trainer = dicyc_trainer::train::Trainer::new(config.clone(), Device::Cpu).unwrap();
    assert_eq!(trainer.state.schedule.stage, Stage::Decay { start: 0 });
    let expected = config.optim.lr * (1.0 - 1.0 / (config.schedule.epochs_decay as f64 + 1.0));
    assert!((trainer.current_lr() - expected).abs() < 1e-15);
}

#[test]
fn run_state_floats_survive_state_json_bit_for_bit() {
    use dicyc_trainer::train::checkpoint::RunState;
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..20_000 {
        // Arbitrary finite doubles: every exponent, every mantissa.
        let value = loop {
            let v = f64::from_bits(rng.gen::<u64>());
            if v.is_finite() {
                break v;
            }
        };
        let loss_like = rng.gen_range(0.0..50.0) * rng.gen_range(1.0..3.0);
        let state = RunState {
            epoch: i,
            step_in_epoch: 1,
            global_step: 2,
            epoch_loss_sum: value,
            schedule: Schedule {
                best: Some(loss_like),
                ..Schedule::default()
            },
            rng_word_pos: "12".into(),
        };
        let text = serde_json::to_string_pretty(&state).unwrap();
        let back: RunState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.epoch_loss_sum.to_bits(), value.to_bits(), "{text}");
        assert_eq!(
            back.schedule.best.map(f64::to_bits),
            Some(loss_like.to_bits())
        );
    }
}
