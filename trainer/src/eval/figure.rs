//! PNG figures of example slices, like the paper's Fig. 4: one row per example,
//! columns source | synthesized | ground truth | |difference|.
//!
//! The source tile is windowed to its own 1st–99th percentile, the synthesized and truth tiles
//! to the truth's; the difference tile shows
//! |synthesized − truth| on the truth's window width (black = 0). Slices are drawn with the
//! first voxel axis (x) to the right and the second (y, anterior in RAS data) up. No text is
//! drawn (the bitmap backend has no fonts here): the column order is fixed and documented.

use std::path::Path;

use anyhow::Result;
use image::{GrayImage, Luma};
use ndarray::ArrayView2;

use super::canvas::{percentile_window, save_png};

fn draw(
    img: &mut GrayImage,
    v: &ArrayView2<'_, f32>,
    lo: f32,
    hi: f32,
    x0: u32,
    y0: u32,
    zoom: u32,
) {
    let (nx, ny) = v.dim();
    for i in 0..nx {
        for j in 0..ny {
            let t = ((v[[i, j]] - lo) / (hi - lo)).clamp(0.0, 1.0);
            let g = (t * 255.0).round() as u8;
            for a in 0..zoom {
                for b in 0..zoom {
                    let px = x0 + i as u32 * zoom + a;
                    let py = y0 + (ny - 1 - j) as u32 * zoom + b;
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, Luma([g]));
                    }
                }
            }
        }
    }
}

/// One figure row: the same axial slice of source, synthesized and ground truth (all the
/// same size; the source may be `None` when unavailable: its tile stays black).
#[derive(Debug, Clone)]
pub struct FigureRow<'a> {
    /// Source slice.
    pub source: Option<ArrayView2<'a, f32>>,
    /// Synthesized slice.
    pub synth: ArrayView2<'a, f32>,
    /// Ground-truth slice.
    pub truth: ArrayView2<'a, f32>,
}

/// Writes the figure (rows × 4 tiles, 2× zoom, 4-pixel gaps) to `path` atomically.
pub fn write_figure(path: &Path, rows: &[FigureRow<'_>]) -> Result<()> {
    let zoom = 2u32;
    let gap = 4u32;
    let (tw, th) = rows.iter().fold((0usize, 0usize), |(w, h), r| {
        (w.max(r.truth.dim().0), h.max(r.truth.dim().1))
    });
    let (tw, th) = (tw as u32 * zoom, th as u32 * zoom);
    let width = 4 * tw + 5 * gap;
    let height = rows.len().max(1) as u32 * (th + gap) + gap;
    let mut img = GrayImage::from_pixel(width, height, Luma([32]));
    for (r, row) in rows.iter().enumerate() {
        let y0 = gap + r as u32 * (th + gap);
        let (lo, hi) = percentile_window(&row.truth);
        let x = |c: u32| gap + c * (tw + gap);
        if let Some(s) = &row.source {
            let (slo, shi) = percentile_window(s);
            draw(&mut img, s, slo, shi, x(0), y0, zoom);
        }
        // The synthesized image shares the truth's window: intensity errors stay visible.
        draw(&mut img, &row.synth, lo, hi, x(1), y0, zoom);
        draw(&mut img, &row.truth, lo, hi, x(2), y0, zoom);
        let diff = (&row.synth - &row.truth).mapv(f32::abs);
        draw(&mut img, &diff.view(), 0.0, hi - lo, x(3), y0, zoom);
    }
    save_png(&img, path)
}
