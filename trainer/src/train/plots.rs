//! PNG outputs: loss curves (one file per series, `curves/<name>.png`: raw per-step values
//! in light blue, a moving average in dark blue; no text, so no font is needed — the name
//! is in the file name and the numbers are in `losses.csv`) and sample grids.

use std::path::Path;

use anyhow::Context;
use image::{GrayImage, Luma};
use plotters::prelude::*;
use tch::{Kind, Tensor};

use super::run_dir::StepLosses;

/// Writes `dir/<series>.png` for every series of `history` that is not all zero.
pub fn loss_curves(dir: &Path, history: &[StepLosses]) -> anyhow::Result<()> {
    if history.len() < 2 {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, name) in StepLosses::SERIES.iter().enumerate() {
        let points: Vec<(f64, f64)> = history
            .iter()
            .map(|l| (l.step as f64, l.values()[i]))
            .collect();
        if points.iter().all(|p| p.1 == 0.0) {
            continue;
        }
        curve(&dir.join(format!("{name}.png")), &points)
            .with_context(|| format!("plotting the {name} curve"))?;
    }
    Ok(())
}

fn curve(path: &Path, points: &[(f64, f64)]) -> anyhow::Result<()> {
    // At most ~2000 raw points; the moving average spans ~1 % of the run.
    let stride = points.len().div_ceil(2000).max(1);
    let raw: Vec<(f64, f64)> = points
        .iter()
        .step_by(stride)
        .copied()
        .filter(|p| p.1.is_finite())
        .collect();
    let window = (points.len() / 100).max(1);
    let mut smooth = Vec::with_capacity(points.len() / stride + 1);
    let mut sum = 0.0;
    for (i, p) in points.iter().enumerate() {
        sum += p.1;
        if i >= window {
            sum -= points[i - window].1;
        }
        if i % stride == 0 && i + 1 >= window {
            smooth.push((p.0, sum / window as f64));
        }
    }
    let (x0, x1) = (
        points[0].0,
        points[points.len() - 1].0.max(points[0].0 + 1.0),
    );
    let lo = raw.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = raw.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let root = BitMapBackend::new(path, (800, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Faint horizontal guides at quarters of the range.
    for q in 0..=4 {
        let y = lo - pad + (hi - lo + 2.0 * pad) * q as f64 / 4.0;
        chart
            .draw_series(LineSeries::new([(x0, y), (x1, y)], RGBColor(225, 225, 225)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .draw_series(LineSeries::new(raw, RGBColor(150, 190, 240)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(
            smooth,
            RGBColor(20, 60, 160).stroke_width(2),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// Writes a grid: one row per slice, columns `source | deformed | undeformed | cycle`, each
/// tile `[C, H, W]` in (−1, 1) (channel-averaged), 2-pixel gaps; small tiles are enlarged
/// (nearest neighbour) to at least 128 pixels so that they can be inspected.
pub fn sample_grid(path: &Path, rows: &[[Tensor; 4]]) -> anyhow::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let size = first[0].size();
    let (th, tw) = (size[size.len() - 2] as u32, size[size.len() - 1] as u32);
    let zoom = (128 / th.min(tw).max(1)).max(1);
    let (h, w) = (th * zoom, tw * zoom);
    let gap = 2u32;
    let cols = 4u32;
    let mut img = GrayImage::from_pixel(
        cols * (w + gap) + gap,
        rows.len() as u32 * (h + gap) + gap,
        Luma([40]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let t = tile.to_device(tch::Device::Cpu).to_kind(Kind::Float);
            let t = if t.dim() == 3 {
                t.mean_dim(Some([0i64].as_slice()), false, Kind::Float)
            } else {
                t
            };
            let t = ((t.clamp(-1.0, 1.0) + 1.0) * 127.5)
                .round()
                .to_kind(Kind::Uint8)
                .contiguous();
            let mut pixels = vec![0u8; (th * tw) as usize];
            let len = pixels.len();
            t.copy_data(&mut pixels, len);
            let (ox, oy) = (gap + c as u32 * (w + gap), gap + r as u32 * (h + gap));
            for y in 0..h {
                for x in 0..w {
                    let source = (y / zoom) * tw + x / zoom;
                    img.put_pixel(ox + x, oy + y, Luma([pixels[source as usize]]));
                }
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}
