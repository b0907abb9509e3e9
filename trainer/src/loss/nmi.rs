//! Differentiable normalised mutual information (docs/DESIGN.md §2.5, alignment loss).
//!
//! `NMI(a, b) = 2·MI(a, b) / (H(a) + H(b))` (Vinh et al.'s `NMI_sum`), in `[0, 1]`, from a
//! soft joint histogram: every pixel value `v` votes for bin `k` with the Gaussian (Parzen)
//! weight `exp(−(v − c_k)² / 2σ²)`, normalised over the bins so each pixel carries mass 1.
//! Bins span the normalised intensity range (`[-1, 1]`, the generator's tanh range; values
//! outside are clamped); σ is given in bin widths. Multi-channel images are averaged over
//! their channels first, so `a` and `b` may have different channel counts.
//!
//! A soft histogram smears mass into neighbouring bins, which puts `H(a, a)` above `H(a)`:
//! with the default σ = 0.5 bin width (docs/DESIGN.md §2.5), `NMI(x, x)` is ≈ 0.65–0.70, not
//! 1 (measured in `trainer/tests/nmi.rs`: 0.69 for a smooth 48×48 image, 0.70 for uniform
//! noise). It is still the maximum — the loss only needs a maximum at alignment — and a
//! sharper window brings it to ≈ 0.97 (σ = 0.1 bin). The
//! [`NmiNormalisation::SelfInformation`] option divides the soft MI by the geometric mean of
//! each image's soft MI with itself, which is exactly 1 for identical images (which
//! normalisation trains better is [ours]).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How soft MI is normalised into `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NmiNormalisation {
    /// `2·MI / (H(a) + H(b))` (docs/DESIGN.md §2.5, Vinh et al.).
    #[default]
    Sum,
    /// `MI(a, b) / sqrt(MI(a, a) · MI(b, b))`: exactly 1 for identical images.
    SelfInformation,
}

/// Parzen-window NMI settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NmiConfig {
    /// Number of histogram bins.
    pub bins: i64,
    /// Gaussian window σ in bin widths.
    pub sigma: f64,
    /// Lower end of the intensity range.
    pub min: f64,
    /// Upper end of the intensity range.
    pub max: f64,
    /// How MI is normalised.
    pub normalisation: NmiNormalisation,
}

impl Default for NmiConfig {
    fn default() -> Self {
        NmiConfig {
            bins: 32,
            sigma: 0.5,
            min: -1.0,
            max: 1.0,
            normalisation: NmiNormalisation::Sum,
        }
    }
}

impl NmiConfig {
    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.bins >= 2,
            "nmi.bins must be at least 2, got {}",
            self.bins
        );
        anyhow::ensure!(
            self.sigma > 0.0 && self.sigma.is_finite(),
            "nmi.sigma must be > 0, got {}",
            self.sigma
        );
        anyhow::ensure!(
            self.max > self.min && self.min.is_finite() && self.max.is_finite(),
            "nmi.min must be below nmi.max, got {} and {}",
            self.min,
            self.max
        );
        Ok(())
    }
}

/// Per-pixel soft bin memberships `[N, P, bins]` of `x` `[N, C, H, W]`.
fn memberships(x: &Tensor, config: &NmiConfig) -> Tensor {
    let n = x.size()[0];
    let width = (config.max - config.min) / config.bins as f64;
    let v = x
        .to_kind(Kind::Float)
        .mean_dim(Some([1i64].as_slice()), false, Kind::Float);
    let v = v.reshape([n, -1, 1]).clamp(config.min, config.max);
    let centres =
        Tensor::arange(config.bins, (Kind::Float, x.device())) * width + (config.min + 0.5 * width);
    let sigma = config.sigma * width;
    let logits = (v - centres.view([1, 1, -1])).square() * (-0.5 / (sigma * sigma));
    logits.softmax(-1, Kind::Float)
}

/// Joint distribution `[N, bins, bins]` from memberships.
fn joint(wa: &Tensor, wb: &Tensor) -> Tensor {
    let pixels = wa.size()[1] as f64;
    wa.transpose(1, 2).bmm(wb) / pixels
}

/// Shannon entropy (nats) over the last `dims` of `p`.
fn entropy(p: &Tensor, dims: &[i64]) -> Tensor {
    -(p * p.clamp_min(1e-12).log()).sum_dim_intlist(Some(dims), false, Kind::Float)
}

/// Soft `(MI, H(a), H(b))` per sample, each `[N]`.
fn mutual_information(wa: &Tensor, wb: &Tensor) -> (Tensor, Tensor, Tensor) {
    let p = joint(wa, wb);
    let ha = entropy(
        &p.sum_dim_intlist(Some([2i64].as_slice()), false, Kind::Float),
        &[1],
    );
    let hb = entropy(
        &p.sum_dim_intlist(Some([1i64].as_slice()), false, Kind::Float),
        &[1],
    );
    let hab = entropy(&p, &[1, 2]);
    (&ha + &hb - hab, ha, hb)
}

/// NMI of each sample pair: `a`, `b` `[N, C, H, W]` with the same N, H, W → `[N]`.
pub fn nmi_per_sample(a: &Tensor, b: &Tensor, config: &NmiConfig) -> Tensor {
    let wa = memberships(a, config);
    let wb = memberships(b, config);
    let (mi, ha, hb) = mutual_information(&wa, &wb);
    match config.normalisation {
        NmiNormalisation::Sum => mi * 2.0 / (ha + hb).clamp_min(1e-12),
        NmiNormalisation::SelfInformation => {
            let (mi_aa, _, _) = mutual_information(&wa, &wa);
            let (mi_bb, _, _) = mutual_information(&wb, &wb);
            mi / (mi_aa * mi_bb).clamp_min(1e-24).sqrt()
        }
    }
}

/// Mean NMI over the batch (a scalar tensor, differentiable in both inputs).
pub fn nmi(a: &Tensor, b: &Tensor, config: &NmiConfig) -> Tensor {
    nmi_per_sample(a, b, config).mean(Kind::Float)
}
