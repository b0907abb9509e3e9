//! LSGAN (CycleGAN's `GANLoss('lsgan')`): mean squared error of the patch scores to 1 (real)
//! or 0 (fake); the discriminator's loss is halved.

use tch::{Kind, Tensor};

/// Mean of `(pred − target)²`, target 1 for `real` and 0 otherwise.
pub fn lsgan(pred: &Tensor, real: bool) -> Tensor {
    let target = if real { 1.0 } else { 0.0 };
    (pred - target).square().mean(Kind::Float)
}

/// The discriminator's LSGAN loss: `0.5 · (lsgan(real, 1) + lsgan(fake, 0))`.
pub fn lsgan_discriminator(pred_real: &Tensor, pred_fake: &Tensor) -> Tensor {
    (lsgan(pred_real, true) + lsgan(pred_fake, false)) * 0.5
}
