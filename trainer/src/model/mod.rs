//! The networks: DicycleGAN's generator (CycleGAN ResNet generator + offset layers, run in a
//! deformed and an undeformed pass over the same weights) and the 70×70 PatchGAN
//! discriminator (docs/DESIGN.md §2.1–§2.4).
//!
//! Layers are plain tensors created through an [`nn::Path`](tch::nn::Path), so that a
//! generator built in its own [`VarStore`](tch::nn::VarStore) has exactly the core's tensor
//! names (`stem.weight`, `offset.down1.bias`, `blocks.3.conv1.weight`, …) and PyTorch's
//! layouts: a checkpoint maps one-to-one onto the core's weight file.

pub mod discriminator;
pub mod generator;
pub mod init;
pub mod offset;

pub use discriminator::{Discriminator, DiscriminatorConfig};
pub use generator::{
    Generator, GeneratorConfig, OffsetSite, Pass, DEFAULT_OFFSET_FORM, DEFAULT_OFFSET_SITES,
};
pub use init::InitConfig;
pub use offset::{OffsetForm, OffsetLayer};

use tch::Tensor;

/// Instance normalisation without affine parameters or running statistics (per-image
/// statistics, also at inference), eps 1e-5 — CycleGAN's `InstanceNorm2d` default.
pub fn instance_norm(x: &Tensor) -> Tensor {
    x.instance_norm(
        None::<Tensor>,
        None::<Tensor>,
        None::<Tensor>,
        None::<Tensor>,
        true,
        0.1,
        1e-5,
        true,
    )
}

/// A 2D convolution with bias, square stride and zero padding.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: &Tensor, stride: i64, padding: i64) -> Tensor {
    x.conv2d(
        weight,
        Some(bias),
        [stride, stride],
        [padding, padding],
        [1, 1],
        1,
    )
}
