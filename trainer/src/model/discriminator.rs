//! The 70×70 PatchGAN discriminator (CycleGAN's `NLayerDiscriminator`, n_layers 3):
//! Conv4 s2 (→ndf) LReLU0.2; Conv4 s2 (→2ndf) IN LReLU; Conv4 s2 (→4ndf) IN LReLU;
//! Conv4 s1 (→8ndf) IN LReLU; Conv4 s1 (→1); every conv padding 1 with bias. Used with the
//! LSGAN objective (no sigmoid). Parameters are named `conv.<i>.weight` / `conv.<i>.bias`.

use serde::{Deserialize, Serialize};
use tch::nn::Path;
use tch::Tensor;

use super::init::{conv_params, Conv, InitConfig};
use super::{conv2d, instance_norm};

/// The discriminator's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscriminatorConfig {
    /// Width of the first layer (64 in CycleGAN).
    pub ndf: i64,
    /// Number of stride-2 layers (3 = the 70×70 PatchGAN).
    pub n_layers: i64,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        DiscriminatorConfig {
            ndf: 64,
            n_layers: 3,
        }
    }
}

impl DiscriminatorConfig {
    /// The side of the patch map for an input side `side`, or an error when the input is too
    /// small for this many layers.
    pub fn output_side(&self, side: i64) -> anyhow::Result<i64> {
        anyhow::ensure!(
            self.ndf >= 1,
            "discriminator ndf must be at least 1, got {}",
            self.ndf
        );
        anyhow::ensure!(
            self.n_layers >= 1,
            "discriminator n_layers must be at least 1, got {}",
            self.n_layers
        );
        let mut s = side;
        for _ in 0..self.n_layers {
            s = (s + 2 - 4) / 2 + 1;
        }
        // Two stride-1 convs: the first is instance-normalised and needs > 1 pixel.
        let before_last = s - 1;
        let out = before_last - 1;
        anyhow::ensure!(
            s >= 2 && before_last >= 2 && out >= 1,
            "images of side {side} are too small for a PatchGAN with {} stride-2 layers \
             (use larger slices or fewer discriminator.n_layers)",
            self.n_layers
        );
        Ok(out)
    }
}

/// PatchGAN weights and forward pass.
#[derive(Debug)]
pub struct Discriminator {
    convs: Vec<Conv>,
}

impl Discriminator {
    /// Creates the discriminator over `channels`-channel images under `root`.
    pub fn new(
        root: &Path,
        channels: i64,
        config: &DiscriminatorConfig,
        init: &InitConfig,
    ) -> Discriminator {
        let mut convs = Vec::new();
        let mut inp = channels;
        let mut out = config.ndf;
        for i in 0..config.n_layers {
            convs.push(conv_params(
                &(root / "conv" / i),
                [out, inp, 4, 4],
                out,
                init.std,
            ));
            inp = out;
            out = config.ndf * (1 << (i + 1).min(3));
        }
        let i = config.n_layers;
        convs.push(conv_params(
            &(root / "conv" / i),
            [out, inp, 4, 4],
            out,
            init.std,
        ));
        convs.push(conv_params(
            &(root / "conv" / (i + 1)),
            [1, out, 4, 4],
            1,
            init.std,
        ));
        Discriminator { convs }
    }

    /// Patch scores `[N, 1, h, w]` for images `[N, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.convs.len() - 1;
        let mut x = x.shallow_clone();
        for (i, conv) in self.convs.iter().enumerate() {
            let stride = if i + 2 > last { 1 } else { 2 };
            x = conv2d(&x, &conv.weight, &conv.bias, stride, 1);
            if i == last {
                break;
            }
            if i > 0 {
                x = instance_norm(&x);
            }
            x = x.maximum(&(&x * 0.2)); // LeakyReLU(0.2)
        }
        x
    }
}
