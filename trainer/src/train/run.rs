//! The training loop: one generator step (both directions, discriminators frozen), then
//! one discriminator step on pooled, detached fakes — CycleGAN's order — with DicycleGAN's
//! losses (docs/DESIGN.md §2.5), the paper's schedule (§2.6), checkpoints and logs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::adam::Adam;
use super::checkpoint::{Checkpoints, RunState, CHECKPOINT_CONFIG};
use super::config::TrainConfig;
use super::finite::first_non_finite;
use super::models::{params_of, Models};
use super::plots;
use super::pool::ImagePool;
use super::run_dir::{RunDir, StepLosses};
use super::run_page;
use super::schedule::{Schedule, Stage};
use crate::loss::lsgan_discriminator;
use crate::model::Pass;
use crate::source::UnpairedSlices;
use dicyc_volume::atomic::write_atomic;

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The schedule is complete (or early stop ended it).
    Finished,
    /// `max_steps` was reached.
    MaxSteps,
}

/// What a call of [`Trainer::run`] did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Why it stopped.
    pub reason: StopReason,
    /// Steps taken in total (including before a resume).
    pub global_step: u64,
    /// Steps taken by this call.
    pub steps_this_call: u64,
    /// Wall time of this call's steps, seconds (excluding checkpoints and plots).
    pub train_seconds: f64,
    /// The last step's losses.
    pub last: Option<StepLosses>,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
}

impl RunSummary {
    /// Optimisation steps per second of this call.
    pub fn steps_per_second(&self) -> f64 {
        if self.train_seconds > 0.0 {
            self.steps_this_call as f64 / self.train_seconds
        } else {
            0.0
        }
    }
}

/// A run in memory: networks, optimizers, pools, host RNG and progress.
#[derive(Debug)]
pub struct Trainer {
    /// The resolved configuration.
    pub config: TrainConfig,
    /// Where it computes.
    pub device: Device,
    /// The networks.
    pub models: Models,
    adam_g: Adam,
    adam_d: Adam,
    pool_a: ImagePool,
    pool_b: ImagePool,
    rng: ChaCha8Rng,
    /// Epoch, step, schedule.
    pub state: RunState,
}

impl Trainer {
    /// A fresh run: validated configuration, initialised networks, zeroed optimizers.
    pub fn new(config: TrainConfig, device: Device) -> anyhow::Result<Trainer> {
        config.validate()?;
        let models = Models::new(&config, device)?;
        let o = &config.optim;
        let mut g_params = params_of(&models.vs_g_ab, "g_ab");
        g_params.extend(params_of(&models.vs_g_ba, "g_ba"));
        let mut d_params = params_of(&models.vs_d_a, "d_a");
        d_params.extend(params_of(&models.vs_d_b, "d_b"));
        let adam_g = Adam::new(g_params, o.lr, o.beta1, o.beta2, o.eps);
        let adam_d = Adam::new(d_params, o.lr, o.beta1, o.beta2, o.eps);
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let state = RunState {
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            epoch_loss_sum: 0.0,
            schedule: Schedule::start(&config.schedule),
            rng_word_pos: "0".into(),
        };
        Ok(Trainer {
            pool_a: ImagePool::new(config.pool_size),
            pool_b: ImagePool::new(config.pool_size),
            config,
            device,
            models,
            adam_g,
            adam_d,
            rng,
            state,
        })
    }

    /// Checks that `source` fits the configuration: channels, slice size, PatchGAN depth.
    pub fn check_source(&self, source: &dyn UnpairedSlices) -> anyhow::Result<()> {
        let (ca, cb) = source.channels();
        let g = &self.config.generator;
        anyhow::ensure!(
            ca == g.in_channels && cb == g.out_channels,
            "the data has {ca} channel(s) in domain A and {cb} in domain B, but the generator is configured \
             for {} → {} (set generator.in_channels / out_channels)",
            g.in_channels,
            g.out_channels
        );
        let (h, w) = source.slice_size();
        anyhow::ensure!(
            h % 4 == 0 && w % 4 == 0 && h >= 8 && w >= 8,
            "training slices are {h}×{w}: both sides must be multiples of 4 and at least 8 (two stride-2 \
             down-samplings must invert exactly)"
        );
        self.config.discriminator.output_side(h.min(w))?;
        anyhow::ensure!(
            source.slices_per_epoch() > 0,
            "the data source has no slices"
        );
        Ok(())
    }

    /// Checks that the image pools (restored from a checkpoint) hold images of the shape
    /// `source` gives, so that a checkpoint trained on other slices is refused with a message
    /// rather than failing inside libtorch at the first discriminator step.
    pub fn check_pools(&self, source: &dyn UnpairedSlices) -> anyhow::Result<()> {
        let (h, w) = source.slice_size();
        let g = &self.config.generator;
        for (name, pool, c) in [
            ("A", &self.pool_a, g.in_channels),
            ("B", &self.pool_b, g.out_channels),
        ] {
            if let Some(shape) = pool.image_shape() {
                anyhow::ensure!(
                    shape == [c, h, w],
                    "the checkpoint's domain {name} image pool holds images of shape {shape:?}, but this \
                     run's slices are [{c}, {h}, {w}]: the checkpoint was trained on other slices (the \
                     slice size or channels in config.toml changed since); put config.toml back as it \
                     was, or start a new run"
                );
            }
        }
        Ok(())
    }

    fn check_batch(
        &self,
        a: &Tensor,
        b: &Tensor,
        source: &dyn UnpairedSlices,
    ) -> anyhow::Result<()> {
        let (h, w) = source.slice_size();
        let batch = self.config.batch_size as i64;
        let g = &self.config.generator;
        for (name, t, c) in [("A", a, g.in_channels), ("B", b, g.out_channels)] {
            anyhow::ensure!(
                t.size() == [batch, c, h, w],
                "the data source returned a domain {name} batch of shape {:?}, expected [{batch}, {c}, {h}, {w}]",
                t.size()
            );
            anyhow::ensure!(
                t.isfinite().all().int64_value(&[]) == 1,
                "the data source returned non-finite values (NaN or Inf) in a domain {name} slice at step {}",
                self.state.global_step + 1
            );
        }
        Ok(())
    }

    fn steps_per_epoch(&self, source: &dyn UnpairedSlices) -> u64 {
        match self.config.schedule.steps_per_epoch {
            0 => (source.slices_per_epoch() as u64)
                .div_ceil(self.config.batch_size as u64)
                .max(1),
            n => n,
        }
    }

    /// The learning rate of the current epoch.
    pub fn current_lr(&self) -> f64 {
        self.config.optim.lr
            * self
                .state
                .schedule
                .lr_factor(self.state.epoch, &self.config.schedule)
    }

    /// One optimisation step on the batch `(a, b)`. A non-finite loss, or a non-finite
    /// gradient of a finite loss, is an error and leaves the parameters of that update
    /// untouched (the check costs one host sync per update).
    pub fn train_step(&mut self, a: &Tensor, b: &Tensor) -> anyhow::Result<StepLosses> {
        let a = a.to_device(self.device).to_kind(Kind::Float);
        let b = b.to_device(self.device).to_kind(Kind::Float);
        let lr = self.current_lr();
        self.adam_g.lr = lr;
        self.adam_d.lr = lr;
        let step = self.state.global_step + 1;

        // Generator step, discriminators frozen.
        self.models.vs_d_a.freeze();
        self.models.vs_d_b.freeze();
        let result = (|| {
            let (total, parts, fakes) = self.generator_losses(&a, &b);
            if !parts.all_finite() {
                anyhow::bail!(
                    "non-finite generator loss at step {step} (epoch {}): total {}, gan {}, cycle {}, dicycle {}, \
                     alignment {}, identity {} — stopping; lower optim.lr or check the data",
                    self.state.epoch,
                    parts.g_total,
                    parts.gan,
                    parts.cycle,
                    parts.dicycle,
                    parts.alignment,
                    parts.identity
                );
            }
            self.adam_g.zero_grad();
            total.backward();
            if let Some(name) = self.adam_g.non_finite_gradient() {
                anyhow::bail!(
                    "non-finite gradient of {name} at step {step} (epoch {}) from a finite generator loss {} — \
                     stopping before the update; lower optim.lr or check the data",
                    self.state.epoch,
                    parts.g_total
                );
            }
            self.adam_g.step();
            Ok((parts, fakes))
        })();
        self.models.vs_d_a.unfreeze();
        self.models.vs_d_b.unfreeze();
        let (mut parts, (fake_b, fake_a)) = result?;

        // Discriminator step on pooled, detached fakes: the deformed outputs of this step's
        // generator forward (before its update, as CycleGAN does).
        let fake_b = self.pool_b.query(&fake_b, &mut self.rng);
        let fake_a = self.pool_a.query(&fake_a, &mut self.rng);
        let d_b = lsgan_discriminator(
            &self.models.d_b.forward(&b),
            &self.models.d_b.forward(&fake_b),
        );
        let d_a = lsgan_discriminator(
            &self.models.d_a.forward(&a),
            &self.models.d_a.forward(&fake_a),
        );
        parts.d_a = d_a.double_value(&[]);
        parts.d_b = d_b.double_value(&[]);
        anyhow::ensure!(
            parts.d_a.is_finite() && parts.d_b.is_finite(),
            "non-finite discriminator loss at step {step} (epoch {}): d_a {}, d_b {} — stopping; lower optim.lr \
             or check the data",
            self.state.epoch,
            parts.d_a,
            parts.d_b
        );
        self.adam_d.zero_grad();
        (d_a + d_b).backward();
        if let Some(name) = self.adam_d.non_finite_gradient() {
            anyhow::bail!(
                "non-finite gradient of {name} at step {step} (epoch {}) from finite discriminator losses \
                 d_a {}, d_b {} — stopping before the update; lower optim.lr or check the data",
                self.state.epoch,
                parts.d_a,
                parts.d_b
            );
        }
        self.adam_d.step();

        parts.step = step;
        parts.epoch = self.state.epoch;
        parts.lr = lr;
        self.state.global_step = step;
        Ok(parts)
    }

    /// Writes a checkpoint of everything needed to continue exactly. Refuses (an error, nothing
    /// written, `latest` unchanged) when a parameter holds NaN or ±Inf, so that `latest` always
    /// names weights worth resuming from.
    pub fn save_checkpoint(&mut self, checkpoints: &Checkpoints) -> anyhow::Result<PathBuf> {
        let params = self.models.named_parameters();
        if let Some(name) = first_non_finite(params.iter().map(|(n, t)| (n.as_str(), t))) {
            anyhow::bail!(
                "refusing to write a checkpoint at step {}: parameter {name} holds NaN or Inf values \
                 (the weights diverged; lower optim.lr or check the data)",
                self.state.global_step
            );
        }
        self.state.rng_word_pos = self.rng.get_word_pos().to_string();
        let keep = self.config.output.keep_checkpoints;
        checkpoints.write(self.state.global_step, keep, |dir| {
            for (name, vs) in self.models.stores() {
                let path = dir.join(format!("{name}.safetensors"));
                save_varstore(vs, &path)?;
            }
            self.adam_g.save(&dir.join("adam_g.safetensors"))?;
            self.adam_d.save(&dir.join("adam_d.safetensors"))?;
            let mut pools = Vec::new();
            if let Some(t) = self.pool_a.to_tensor() {
                pools.push(("a".to_string(), t));
            }
            if let Some(t) = self.pool_b.to_tensor() {
                pools.push(("b".to_string(), t));
            }
            pools.push(("version".to_string(), Tensor::from_slice(&[1i64])));
            Tensor::write_safetensors(&pools, dir.join("pools.safetensors"))
                .context("writing the image pools")?;
            let state = serde_json::to_string_pretty(&self.state)?;
            write_atomic(&dir.join("state.json"), state.as_bytes())?;
            write_atomic(
                &dir.join(CHECKPOINT_CONFIG),
                self.config.to_toml()?.as_bytes(),
            )
        })
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] into this trainer (built
    /// from the same configuration).
    pub fn load_checkpoint(&mut self, dir: &Path) -> anyhow::Result<()> {
        let with = |name: &str| dir.join(name);
        for (name, vs) in [
            ("g_ab", &mut self.models.vs_g_ab),
            ("g_ba", &mut self.models.vs_g_ba),
            ("d_a", &mut self.models.vs_d_a),
            ("d_b", &mut self.models.vs_d_b),
        ] {
            let path = with(&format!("{name}.safetensors"));
            vs.load(&path).with_context(|| {
                format!(
                    "loading {} (does the checkpoint match config.toml's model shape?)",
                    path.display()
                )
            })?;
        }
        self.adam_g.load(&with("adam_g.safetensors"))?;
        self.adam_d.load(&with("adam_d.safetensors"))?;
        let pools: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(with("pools.safetensors"))
                .context("reading the image pools")?
                .into_iter()
                .collect();
        if let Some(t) = pools.get("a") {
            self.pool_a.restore(t, self.device)?;
        }
        if let Some(t) = pools.get("b") {
            self.pool_b.restore(t, self.device)?;
        }
        let text = std::fs::read_to_string(with("state.json")).context("reading state.json")?;
        self.state = serde_json::from_str(&text).context("parsing state.json")?;
        let pos: u128 = self
            .state
            .rng_word_pos
            .parse()
            .context("state.json: bad rng_word_pos")?;
        self.rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        self.rng.set_word_pos(pos);
        Ok(())
    }

    /// Trains until the schedule ends or `max_steps` is reached, logging into `run_dir` and
    /// checkpointing at each epoch's end (and every `output.checkpoint_every` steps).
    pub fn run(
        &mut self,
        source: &mut dyn UnpairedSlices,
        run_dir: &mut RunDir,
        show_progress: bool,
    ) -> anyhow::Result<RunSummary> {
        self.check_source(source)?;
        self.check_pools(source)?;
        let checkpoints = Checkpoints::new(run_dir.path())?;
        let steps_per_epoch = self.steps_per_epoch(source);
        let samples = self.sample_batch(source)?;
        let mut history = run_dir.history()?;
        let planned_epochs =
            (self.config.schedule.epochs + self.config.schedule.epochs_decay) as u64;
        let mut total_steps = planned_epochs * steps_per_epoch;
        if self.config.max_steps > 0 {
            total_steps = total_steps.min(self.config.max_steps);
        }
        let bar = progress_bar(total_steps, self.state.global_step, show_progress);
        let mut summary = RunSummary {
            reason: StopReason::Finished,
            global_step: self.state.global_step,
            steps_this_call: 0,
            train_seconds: 0.0,
            last: None,
            checkpoint: None,
        };
        // The run's page, rebuilt from the files at every checkpoint and at the end.
        run_page::write_or_warn(run_dir.path());
        let mut saved_at = None;
        let mut plotted_at = None;
        let plot_every = self.config.output.plot_every;
        loop {
            // Acts only at the start with `epochs = 0` or after a resume that shortened the
            // schedule; see `Schedule::begin_epoch`.
            self.state
                .schedule
                .begin_epoch(self.state.epoch, &self.config.schedule);
            if self.state.schedule.stage == Stage::Done {
                break;
            }
            while self.state.step_in_epoch < steps_per_epoch {
                if self.config.max_steps > 0 && self.state.global_step >= self.config.max_steps {
                    summary.reason = StopReason::MaxSteps;
                    break;
                }
                let (a, b) = source
                    .next_batch(self.config.batch_size, &mut self.rng)
                    .context("drawing a batch")?;
                self.check_batch(&a, &b, source)
                    .map_err(|e| stopped(e, &summary, &checkpoints))?;
                let started = Instant::now();
                let losses = self
                    .train_step(&a, &b)
                    .map_err(|e| stopped(e, &summary, &checkpoints))?;
                summary.train_seconds += started.elapsed().as_secs_f64();
                summary.steps_this_call += 1;
                self.state.step_in_epoch += 1;
                self.state.epoch_loss_sum += losses.g_total;
                run_dir.log_step(&losses)?;
                history.push(losses);
                summary.last = Some(losses);
                bar.set_message(format!(
                    "ep {} G {:.3} (gan {:.3} cyc {:.3} dicyc {:.3} align {:.3}) D {:.3}/{:.3}",
                    self.state.epoch,
                    losses.g_total,
                    losses.gan,
                    losses.cycle,
                    losses.dicycle,
                    losses.alignment,
                    losses.d_a,
                    losses.d_b
                ));
                bar.inc(1);
                let every = self.config.output.checkpoint_every;
                if every > 0 && self.state.global_step % every == 0 {
                    self.checkpoint(&checkpoints, &mut summary, run_dir.path())?;
                    saved_at = Some(self.state.global_step);
                }
            }
            if summary.reason == StopReason::MaxSteps {
                break;
            }
            // End of epoch: schedule, logs, plots, checkpoint.
            let epoch = self.state.epoch;
            let mean = self.state.epoch_loss_sum / steps_per_epoch as f64;
            let lr = self.current_lr();
            let go_on = self
                .state
                .schedule
                .end_epoch(epoch, mean, &self.config.schedule);
            let stage = match self.state.schedule.stage {
                Stage::Fixed => "fixed".to_string(),
                Stage::Decay { start } => format!("decay(from {start})"),
                Stage::Done => "done".to_string(),
            };
            run_dir.log_epoch(epoch, self.state.global_step, mean, lr, &stage)?;
            bar.println(format!(
                "epoch {epoch}: mean generator loss {mean:.4}, lr {lr:.2e}, next: {stage}"
            ));
            self.state.epoch += 1;
            self.state.step_in_epoch = 0;
            self.state.epoch_loss_sum = 0.0;
            if plot_every > 0 && ((epoch + 1) % plot_every == 0 || !go_on) {
                let name = format!("epoch-{:04}", epoch + 1);
                self.write_plots(run_dir.path(), &name, &samples, &history)?;
                plotted_at = Some(self.state.global_step);
            }
            self.checkpoint(&checkpoints, &mut summary, run_dir.path())?;
            saved_at = Some(self.state.global_step);
        }
        // A stop at `max_steps` (mid-epoch, or at an epoch end not due for plots) still
        // shows where the run got to.
        let unplotted = summary.steps_this_call > 0 && plotted_at != Some(self.state.global_step);
        if summary.reason == StopReason::MaxSteps && plot_every > 0 && unplotted {
            let name = format!("step-{:09}", self.state.global_step);
            self.write_plots(run_dir.path(), &name, &samples, &history)?;
        }
        // A call that took no step (a resume of a finished run) has nothing new to save: its
        // checkpoint is the one it resumed from.
        if summary.steps_this_call == 0 {
            if let Some(latest) = checkpoints.latest()? {
                summary.checkpoint = Some(latest);
                saved_at = Some(self.state.global_step);
            }
        }
        if saved_at != Some(self.state.global_step) {
            self.checkpoint(&checkpoints, &mut summary, run_dir.path())?;
        }
        bar.finish_and_clear();
        run_page::write_or_warn(run_dir.path());
        summary.global_step = self.state.global_step;
        Ok(summary)
    }

    /// [`Trainer::save_checkpoint`] inside [`Trainer::run`]: records the checkpoint in the
    /// summary and rebuilds the page of the run in `run` (its plots are written before), or
    /// stops with the error pointing at the last good checkpoint.
    fn checkpoint(
        &mut self,
        checkpoints: &Checkpoints,
        summary: &mut RunSummary,
        run: &Path,
    ) -> anyhow::Result<()> {
        let path = self
            .save_checkpoint(checkpoints)
            .map_err(|e| stopped(e, summary, checkpoints))?;
        summary.checkpoint = Some(path);
        run_page::write_or_warn(run);
        Ok(())
    }

    /// A fixed batch for the sample grids, drawn with its own RNG (the training RNG is not
    /// touched, so plots never change a run).
    fn sample_batch(&self, source: &mut dyn UnpairedSlices) -> anyhow::Result<(Tensor, Tensor)> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(7);
        let (a, b) = source
            .next_batch(self.config.output.samples as usize, &mut rng)
            .context("drawing sample slices")?;
        Ok((a.to_device(self.device), b.to_device(self.device)))
    }

    /// Writes `samples/<name>.png` (rows: A slices then B slices; columns: source |
    /// deformed | undeformed | undeformed cycle) and `curves/*.png`.
    fn write_plots(
        &self,
        run_dir: &Path,
        name: &str,
        samples: &(Tensor, Tensor),
        history: &[StepLosses],
    ) -> anyhow::Result<()> {
        let m = &self.models;
        let rows = tch::no_grad(|| {
            let mut rows = Vec::new();
            for (x, g, back) in [
                (&samples.0, &m.g_ab, &m.g_ba),
                (&samples.1, &m.g_ba, &m.g_ab),
            ] {
                let deformed = g.forward(x, Pass::Deformed);
                let undeformed = g.forward(x, Pass::Undeformed);
                let cycle = back.forward(&undeformed, Pass::Undeformed);
                for i in 0..x.size()[0] {
                    rows.push([x.get(i), deformed.get(i), undeformed.get(i), cycle.get(i)]);
                }
            }
            rows
        });
        plots::sample_grid(&run_dir.join("samples").join(format!("{name}.png")), &rows)?;
        plots::loss_curves(&run_dir.join("curves"), history)
    }
}

/// `e` as the reason a run stopped, naming the last good checkpoint: the one this call wrote
/// last, else the one `latest` names (every checkpoint holds finite weights).
fn stopped(e: anyhow::Error, summary: &RunSummary, checkpoints: &Checkpoints) -> anyhow::Error {
    let last_good = match &summary.checkpoint {
        Some(p) => Ok(Some(p.clone())),
        None => checkpoints.latest(),
    };
    match last_good {
        Ok(Some(p)) => e.context(format!(
            "training stopped; the last good checkpoint is {}",
            p.display()
        )),
        Ok(None) => e.context("training stopped before any checkpoint was written"),
        Err(pointer) => e.context(format!(
            "training stopped; the last checkpoint could not be found: {pointer:#}"
        )),
    }
}

fn save_varstore(vs: &VarStore, path: &Path) -> anyhow::Result<()> {
    if vs.device() == Device::Cpu {
        vs.save(path)
            .with_context(|| format!("writing {}", path.display()))
    } else {
        let named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.to_device(Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn progress_bar(total: u64, done: u64, show: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}, {per_sec}] {msg}")
    {
        bar.set_style(style);
    }
    bar.set_position(done);
    bar.reset_eta();
    bar
}
