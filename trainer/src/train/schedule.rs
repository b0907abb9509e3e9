//! The paper's schedule: a fixed learning rate, then linear decay to 0, with its early-stop
//! rule (docs/DESIGN.md §2.6): in the fixed stage, once the epoch's total generator loss has not
//! improved for `patience` epochs the decay stage starts early; in the decay stage the run
//! stops after `patience_decay` epochs without improvement, or when the decay is complete.

use serde::{Deserialize, Serialize};

use super::config::ScheduleConfig;

/// Which stage the run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Fixed learning rate.
    Fixed,
    /// Linear decay, started at the given epoch.
    Decay {
        /// First epoch of the decay stage.
        start: u32,
    },
    /// Finished.
    Done,
}

/// The schedule's state (saved in every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Current stage.
    pub stage: Stage,
    /// Best epoch-mean total generator loss in the current stage.
    pub best: Option<f64>,
    /// Epochs since `best` improved.
    pub since_best: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            stage: Stage::Fixed,
            best: None,
            since_best: 0,
        }
    }
}

impl Schedule {
    /// The state a run starts in: the fixed stage, or straight into the decay stage (at its
    /// first, already decayed, rate) when `config.epochs` is 0 — CycleGAN's rule gives no
    /// full-rate epoch then either.
    pub fn start(config: &ScheduleConfig) -> Schedule {
        let mut schedule = Schedule::default();
        schedule.begin_epoch(0, config);
        schedule
    }

    /// Brings the stage up to date before `epoch` is trained. A no-op within a run whose
    /// configuration does not change ([`Schedule::end_epoch`] already advanced it); it acts
    /// at the start (`epochs = 0`) and on a resume with a lower `--epochs` or
    /// `--epochs-decay`: a fixed stage with no epochs left moves to the decay stage from
    /// `epoch`, a decay stage already complete ends.
    pub fn begin_epoch(&mut self, epoch: u32, config: &ScheduleConfig) {
        match self.stage {
            Stage::Fixed if epoch >= config.epochs => self.leave_fixed(epoch, config),
            Stage::Decay { start } if epoch >= start.saturating_add(config.epochs_decay) => {
                self.stage = Stage::Done;
            }
            _ => {}
        }
    }

    /// Ends the fixed stage: the decay stage starts at `epoch` with a fresh early-stop
    /// record, or the run is done when there is no decay stage.
    fn leave_fixed(&mut self, epoch: u32, config: &ScheduleConfig) {
        if config.epochs_decay == 0 {
            self.stage = Stage::Done;
        } else {
            self.stage = Stage::Decay { start: epoch };
            self.best = None;
            self.since_best = 0;
        }
    }

    /// Learning-rate factor (× the initial lr) for `epoch` (0-based).
    ///
    /// CycleGAN's rule `1 − max(0, e + 1 − n_fixed) / (n_decay + 1)`, with the decay counted
    /// from the epoch the decay stage actually started.
    pub fn lr_factor(&self, epoch: u32, config: &ScheduleConfig) -> f64 {
        match self.stage {
            Stage::Fixed => 1.0,
            Stage::Decay { start } => {
                let into = (epoch + 1).saturating_sub(start) as f64;
                (1.0 - into / (config.epochs_decay as f64 + 1.0)).max(0.0)
            }
            Stage::Done => 0.0,
        }
    }

    /// Records the finished `epoch`'s mean total generator loss and advances the stage.
    /// Returns whether training should go on.
    pub fn end_epoch(&mut self, epoch: u32, loss: f64, config: &ScheduleConfig) -> bool {
        let improved = self.best.is_none_or(|best| loss < best);
        if improved {
            self.best = Some(loss);
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        let next = epoch + 1;
        match self.stage {
            Stage::Fixed => {
                let patience_hit = config.early_stop && self.since_best >= config.patience;
                if next >= config.epochs || patience_hit {
                    self.leave_fixed(next, config);
                }
            }
            Stage::Decay { start } => {
                let patience_hit = config.early_stop && self.since_best >= config.patience_decay;
                if next >= start + config.epochs_decay || patience_hit {
                    self.stage = Stage::Done;
                }
            }
            Stage::Done => {}
        }
        self.stage != Stage::Done
    }
}
