//! Paper-style result tables: mean (sd) across volumes per direction, as Markdown and JSON.

use serde::{Deserialize, Serialize};

use super::metrics::{inf_as_string, mean_sd, VolumeMetrics};

/// Mean and sample sd of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    /// Mean across volumes.
    #[serde(with = "inf_as_string")]
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    #[serde(with = "inf_as_string")]
    pub sd: f64,
}

impl MeanSd {
    /// From values.
    pub fn of(v: &[f64]) -> Self {
        let (mean, sd) = mean_sd(v);
        Self { mean, sd }
    }
}

/// The results of one synthesis direction (e.g. "PD→T2").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectionResult {
    /// Direction label.
    pub direction: String,
    /// Volumes evaluated.
    pub n: usize,
    /// MSE.
    pub mse: MeanSd,
    /// PSNR (dB).
    pub psnr: MeanSd,
    /// Global SSIM (the paper's).
    pub ssim_global: MeanSd,
    /// Windowed SSIM (Gaussian 11, σ 1.5).
    pub ssim_window: MeanSd,
    /// Per-volume results (volume name, metrics).
    pub volumes: Vec<(String, VolumeMetrics)>,
}

impl DirectionResult {
    /// Summarises per-volume metrics.
    pub fn new(direction: &str, volumes: Vec<(String, VolumeMetrics)>) -> Self {
        let col = |f: fn(&VolumeMetrics) -> f64| -> Vec<f64> {
            volumes.iter().map(|(_, m)| f(m)).collect()
        };
        Self {
            direction: direction.to_string(),
            n: volumes.len(),
            mse: MeanSd::of(&col(|m| m.mse)),
            psnr: MeanSd::of(&col(|m| m.psnr)),
            ssim_global: MeanSd::of(&col(|m| m.ssim_global)),
            ssim_window: MeanSd::of(&col(|m| m.ssim_window)),
            volumes,
        }
    }
}

fn num(v: f64, digits: usize) -> String {
    let a = v.abs();
    if v.is_nan() {
        "–".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.to_string()
    } else if a >= 1e5 || (digits >= 4 && a < 1e-3 && v != 0.0) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.digits$}")
    }
}

fn cell(m: &MeanSd, digits: usize) -> String {
    format!("{} ({})", num(m.mean, digits), num(m.sd, digits))
}

/// The Markdown table: one row per direction, `mean (sd)` cells.
pub fn markdown(results: &[DirectionResult], title: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(t) = title {
        s.push_str(&format!("### {t}\n\n"));
    }
    s.push_str("| Direction | n | MSE | PSNR (dB) | SSIM (global) | SSIM (Gaussian 11/1.5) |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.direction,
            r.n,
            cell(&r.mse, 4),
            cell(&r.psnr, 2),
            cell(&r.ssim_global, 3),
            cell(&r.ssim_window, 3)
        ));
    }
    s.push_str("\nmean (sd) across volumes; PSNR peak = ground truth's dynamic range; SSIM (global) = the paper's whole-volume formula.\n");
    s
}
