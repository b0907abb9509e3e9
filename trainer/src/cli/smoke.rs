//! `trainer smoke`: the smallest real use of libtorch the trainer depends on.
//!
//! An offset layer in miniature: a conv predicts per-pixel (dy, dx), `grid_sampler_2d`
//! resamples the image there, and one Adam step pulls the result towards a shifted copy of
//! the input. If this runs, libtorch is linked, autograd flows through the resampler and the
//! optimizer updates weights — on CUDA when available.

use std::fmt;

use anyhow::Context;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::device::DeviceChoice;

/// Options of `trainer smoke`.
#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Image side in pixels.
    #[arg(long, default_value_t = 32)]
    pub size: i64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

/// What one smoke step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeReport {
    /// Device the step ran on.
    pub device: String,
    /// Loss before the Adam step.
    pub loss_before: f64,
    /// Loss after it, on the same data.
    pub loss_after: f64,
    /// L2 norm of the offset conv's weight gradient.
    pub grad_norm: f64,
}

impl fmt::Display for SmokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "smoke: one Adam step through conv + grid_sampler_2d on {}: loss {:.6} -> {:.6} (offset-conv grad norm {:.3e})",
            self.device, self.loss_before, self.loss_after, self.grad_norm
        )
    }
}

/// Runs one Adam step of a tiny offset layer and reports the loss before and after.
pub fn run(args: &SmokeArgs) -> anyhow::Result<SmokeReport> {
    anyhow::ensure!(
        args.size >= 4,
        "--size must be at least 4, got {}",
        args.size
    );
    let device = args.device.resolve()?;
    tch::manual_seed(args.seed);
    let vs = nn::VarStore::new(device);
    let conv_cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let offsets = nn::conv2d(vs.root() / "offset", 1, 2, 3, conv_cfg);
    let mut adam = nn::Adam {
        beta1: 0.5,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(&vs, 1e-2)
    .context("building the Adam optimizer")?;

    let n = args.size;
    let image = Tensor::randn([1, 1, n, n], (Kind::Float, device));
    let target = image.roll([1], [3]);
    // Base sampling grid in normalised coordinates, align_corners = true: pixel i ↔ -1 + 2i/(n-1).
    let axis = Tensor::linspace(-1.0, 1.0, n, (Kind::Float, device));
    let grid_y = axis.view([n, 1]).expand([n, n], false);
    let grid_x = axis.view([1, n]).expand([n, n], false);
    let base = Tensor::stack(&[grid_x, grid_y], -1).unsqueeze(0);

    let loss_of = |out: &Tensor| (out - &target).square().mean(Kind::Float);
    let forward = || {
        let off = offsets.forward(&image); // [1, 2, n, n] in pixels: (dy, dx)
        let scale = 2.0 / (n - 1) as f64;
        let dxy = Tensor::stack(&[off.select(1, 1), off.select(1, 0)], -1) * scale;
        // interpolation 0 = bilinear, padding 1 = border, align_corners = true.
        image.grid_sampler_2d(&(&base + dxy), 0, 1, true)
    };

    let loss = loss_of(&forward());
    let loss_before = loss.double_value(&[]);
    adam.zero_grad();
    loss.backward();
    let grad_norm = offsets.ws.grad().norm().double_value(&[]);
    adam.step();
    let loss_after = tch::no_grad(|| loss_of(&forward())).double_value(&[]);
    anyhow::ensure!(
        loss_before.is_finite() && loss_after.is_finite(),
        "non-finite loss in the smoke step: {loss_before} -> {loss_after}"
    );
    Ok(SmokeReport {
        device: format!("{device:?}"),
        loss_before,
        loss_after,
        grad_norm,
    })
}
