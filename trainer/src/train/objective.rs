//! The generators' objective (docs/DESIGN.md §2.5): adversarial terms on the deformed pass,
//! CycleGAN's cycle on the undeformed pass, DicycleGAN's deformed cycle and NMI alignment,
//! and the optional identity, undeformed-GAN and offset penalties, each with its weight.

use tch::{Kind, Tensor};

use super::config::ModelKind;
use super::run::Trainer;
use super::run_dir::StepLosses;
use crate::loss::{l1, lsgan, nmi};
use crate::model::Pass;

impl Trainer {
    /// Generator losses for `(a, b)`; returns `(total, parts, fakes)` with the parts filled
    /// in and the detached deformed fakes `(G_AB(a), G_BA(b))` for the discriminator step.
    pub(super) fn generator_losses(
        &self,
        a: &Tensor,
        b: &Tensor,
    ) -> (Tensor, StepLosses, (Tensor, Tensor)) {
        let m = &self.models;
        let l = &self.config.loss;
        let dicyc = self.config.model == ModelKind::Dicyclegan;
        let deforms = m.g_ab.has_offsets() || m.g_ba.has_offsets();
        let und_b = m.g_ab.forward(a, Pass::Undeformed);
        let und_a = m.g_ba.forward(b, Pass::Undeformed);
        let zero = || Tensor::zeros([], (Kind::Float, self.device));
        let penalised = dicyc && (l.offset_magnitude > 0.0 || l.offset_smoothness > 0.0);
        let (def_b, def_a, offset) = if deforms && penalised {
            let (def_b, mut offsets) = m.g_ab.forward_deformed_with_offsets(a);
            let (def_a, more) = m.g_ba.forward_deformed_with_offsets(b);
            offsets.extend(more);
            let penalty = offset_penalty(&offsets, l.offset_magnitude, l.offset_smoothness)
                .unwrap_or_else(zero);
            (def_b, def_a, penalty)
        } else if deforms {
            (
                m.g_ab.forward(a, Pass::Deformed),
                m.g_ba.forward(b, Pass::Deformed),
                zero(),
            )
        } else {
            (und_b.shallow_clone(), und_a.shallow_clone(), zero())
        };
        let gan = lsgan(&m.d_b.forward(&def_b), true) + lsgan(&m.d_a.forward(&def_a), true);
        let gan_undeformed = if dicyc && deforms && l.gan_undeformed > 0.0 {
            lsgan(&m.d_b.forward(&und_b), true) + lsgan(&m.d_a.forward(&und_a), true)
        } else {
            zero()
        };
        let cycle = l1(&m.g_ba.forward(&und_b, Pass::Undeformed), a)
            + l1(&m.g_ab.forward(&und_a, Pass::Undeformed), b);
        let dicycle = if dicyc && l.dicycle > 0.0 {
            l1(&m.g_ba.forward(&def_b, Pass::Deformed), a)
                + l1(&m.g_ab.forward(&def_a, Pass::Deformed), b)
        } else {
            zero()
        };
        let alignment = if dicyc && l.alignment > 0.0 {
            2.0 - nmi(a, &und_b, &l.nmi) - nmi(b, &und_a, &l.nmi)
        } else {
            zero()
        };
        let identity = if l.identity > 0.0 {
            l1(&m.g_ab.forward(b, Pass::Undeformed), b)
                + l1(&m.g_ba.forward(a, Pass::Undeformed), a)
        } else {
            zero()
        };
        let dicycle_w = if dicyc { l.dicycle } else { 0.0 };
        let alignment_w = if dicyc { l.alignment } else { 0.0 };
        let total = &gan * l.gan
            + &cycle * l.cycle
            + &dicycle * dicycle_w
            + &alignment * alignment_w
            + &identity * (l.identity * l.cycle)
            + &gan_undeformed * l.gan_undeformed
            + &offset;
        let v = |t: &Tensor| t.double_value(&[]);
        let parts = StepLosses {
            g_total: v(&total),
            gan: v(&gan),
            cycle: v(&cycle),
            dicycle: v(&dicycle),
            alignment: v(&alignment),
            identity: v(&identity),
            gan_undeformed: v(&gan_undeformed),
            offset: v(&offset),
            ..StepLosses::default()
        };
        (total, parts, (def_b.detach(), def_a.detach()))
    }

    /// The total generator loss on `(a, b)` without updating anything (for tests/diagnostics).
    pub fn generator_loss(&self, a: &Tensor, b: &Tensor) -> f64 {
        tch::no_grad(|| {
            self.generator_losses(&a.to_device(self.device), &b.to_device(self.device))
                .1
                .g_total
        })
    }
}

/// The weighted offset penalty over every offset layer's predicted offsets `[N, 2F, h, w]`:
/// `magnitude · mean_l mean(o²) + smoothness · mean_l (mean(Δ_y o²) + mean(Δ_x o²))`, each
/// layer weighing the same whatever its size; `None` without layers.
fn offset_penalty(offsets: &[Tensor], magnitude: f64, smoothness: f64) -> Option<Tensor> {
    let n = offsets.len();
    if n == 0 {
        return None;
    }
    let mut total: Option<Tensor> = None;
    for o in offsets {
        let mut term = o.square().mean(Kind::Float) * magnitude;
        if smoothness > 0.0 {
            let (h, w) = (o.size()[2], o.size()[3]);
            if h > 1 {
                let dy = o.narrow(2, 1, h - 1) - o.narrow(2, 0, h - 1);
                term += dy.square().mean(Kind::Float) * smoothness;
            }
            if w > 1 {
                let dx = o.narrow(3, 1, w - 1) - o.narrow(3, 0, w - 1);
                term += dx.square().mean(Kind::Float) * smoothness;
            }
        }
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
    }
    total.map(|t| t / n as f64)
}
