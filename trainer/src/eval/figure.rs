//! PNG figures of example slices, like the paper's Fig. 4: one row per example (labelled
//! with its direction, subject and slice), columns source | synthesized | ground truth |
//! |difference| under their headers, drawn on a [`Grid`].
//!
//! The source tile is windowed to its own 1st–99th percentile, the synthesized and truth tiles
//! to the truth's; the difference tile shows |synthesized − truth| on the truth's window width
//! (black = 0). Slices are drawn with the first voxel axis (x) to the right and the second
//! (y, anterior in RAS data) up. The figure's notes say so, so that it reads on its own.

use std::path::Path;

use anyhow::Result;
use ndarray::ArrayView2;

use super::canvas::{percentile_window, Grid};

/// One figure row: the same axial slice of source, synthesized and ground truth (all the
/// same size; the source may be `None` when unavailable: its tile stays background), and
/// what the row label names.
#[derive(Debug, Clone)]
pub struct FigureRow<'a> {
    /// Source slice.
    pub source: Option<ArrayView2<'a, f32>>,
    /// Synthesized slice.
    pub synth: ArrayView2<'a, f32>,
    /// Ground-truth slice.
    pub truth: ArrayView2<'a, f32>,
    /// The direction, e.g. `pd->t2` (ASCII: the label font draws other characters as `?`).
    pub direction: &'a str,
    /// The subject: the volume's file stem.
    pub subject: &'a str,
    /// The axial slice index (third voxel axis).
    pub slice: usize,
}

/// The column headers, left to right.
pub const COLUMNS: [&str; 4] = ["source", "synthesized", "ground truth", "|difference|"];

/// Writes the figure (rows × 4 tiles, at least 2× zoom, row and column labels) to `path`
/// atomically.
pub fn write_figure(path: &Path, rows: &[FigureRow<'_>]) -> Result<()> {
    let (nx, ny) = rows.iter().fold((0usize, 0usize), |(w, h), r| {
        (w.max(r.truth.dim().0), h.max(r.truth.dim().1))
    });
    // Small slices are enlarged until the smaller side spans at least 128 pixels.
    let zoom = (128 / nx.min(ny).max(1) as u32).max(2);
    let grid = Grid {
        title: "Example slices: synthesized against ground truth".to_string(),
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: rows
            .iter()
            .map(|r| format!("{}\n{}\nslice {}", r.direction, r.subject, r.slice))
            .collect(),
        tile: (nx as u32 * zoom, ny as u32 * zoom),
        notes: vec![
            "source: its own 1-99 % window; synthesized and ground truth: the truth's 1-99 % window".to_string(),
            "|difference|: |synthesized - ground truth| on the same window width, black = 0".to_string(),
            format!("axial slices, {zoom} pixels per voxel; x to the right, y (anterior) up"),
        ],
        breaks: (1..rows.len())
            .filter(|&r| rows[r].direction != rows[r - 1].direction)
            .collect(),
    };
    let mut placed = grid.draw();
    for (r, row) in rows.iter().enumerate() {
        let width = row.truth.dim().0 as u32 * zoom;
        let at: Vec<(u32, u32)> = (0..4).map(|c| placed.origin(r, c, width)).collect();
        let (lo, hi) = percentile_window(&row.truth);
        let diff = (&row.synth - &row.truth).mapv(f32::abs);
        if let Some(s) = &row.source {
            placed
                .canvas
                .tile(s, percentile_window(s), at[0].0, at[0].1, zoom);
        }
        // The synthesized image shares the truth's window: intensity errors stay visible.
        let tiles = [
            (row.synth.view(), (lo, hi)),
            (row.truth.view(), (lo, hi)),
            (diff.view(), (0.0, hi - lo)),
        ];
        for (c, (v, window)) in tiles.into_iter().enumerate() {
            placed
                .canvas
                .tile(&v, window, at[c + 1].0, at[c + 1].1, zoom);
        }
    }
    placed.canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::canvas::testing::assert_labelled;
    use ndarray::Array2;

    #[test]
    fn figure_has_headers_row_labels_and_tiles() {
        let dir = std::env::temp_dir().join(format!("dicyc-figure-{}", std::process::id()));
        let truth = Array2::from_shape_fn((40, 30), |(i, j)| (i + j) as f32);
        let synth = truth.mapv(|v| v + 1.0);
        let rows: Vec<FigureRow<'_>> = ["pd->t2", "t2->pd"]
            .iter()
            .map(|d| FigureRow {
                source: Some(truth.view()),
                synth: synth.view(),
                truth: truth.view(),
                direction: d,
                subject: "subject-07",
                slice: 12,
            })
            .collect();
        let path = dir.join("examples.png");
        write_figure(&path, &rows).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 30 voxels × zoom 4 = 120 pixels high per row, 40 × 4 = 160 wide per tile.
        assert!(img.width() > 4 * 160, "{}", img.width());
        assert!(img.height() > 2 * 120, "{}", img.height());
        // Four lit tiles (640 pixels) mark the first tile row; the row label column is 72
        // pixels wide after the 12-pixel margin.
        assert_labelled(&img, 500, 80, 120);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
