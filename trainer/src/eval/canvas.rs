//! An RGB canvas for figures that explain themselves: grey-scale slice tiles, outlines drawn
//! over them, and text labels in a bitmap font that ships inside the `embedded-graphics`
//! crate (no system font, nothing fetched at run time).

use std::path::Path;

use anyhow::{Context, Result};
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use image::{EncodableLayout, ImageBuffer, PixelWithColorType, Rgb, RgbImage};
use ndarray::ArrayView2;

/// Text sizes.
#[derive(Clone, Copy, Debug)]
pub enum TextSize {
    /// 6×10 pixels per character.
    Small,
    /// 9×15 pixels per character.
    Large,
}

impl TextSize {
    /// Width and height of one character in pixels.
    pub fn cell(self) -> (u32, u32) {
        match self {
            TextSize::Small => (6, 10),
            TextSize::Large => (9, 15),
        }
    }

    /// Width of `text` in pixels (the font is monospaced).
    pub fn width(self, text: &str) -> u32 {
        text.chars().count() as u32 * self.cell().0
    }
}

/// A figure being drawn.
pub struct Canvas {
    image: RgbImage,
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0
                && p.y >= 0
                && (p.x as u32) < self.image.width()
                && (p.y as u32) < self.image.height()
            {
                self.image
                    .put_pixel(p.x as u32, p.y as u32, Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.image.width(), self.image.height())
    }
}

/// The 1st and 99th percentile of a slice's finite values (a display window).
pub fn percentile_window(v: &ArrayView2<'_, f32>) -> (f32, f32) {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (0.0, 1.0);
    }
    s.sort_by(f32::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.01), at(0.99));
    if hi > lo {
        (lo, hi)
    } else {
        (lo, lo + 1.0)
    }
}

impl Canvas {
    /// A `width × height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: [u8; 3]) -> Canvas {
        Canvas {
            image: RgbImage::from_pixel(width, height, Rgb(background)),
        }
    }

    /// Writes `text` with its top-left corner at `(x, y)`. Characters outside ASCII are drawn
    /// as `?` by the font: write "->", not an arrow.
    pub fn text(&mut self, x: u32, y: u32, text: &str, size: TextSize, colour: [u8; 3]) {
        let colour = Rgb888::new(colour[0], colour[1], colour[2]);
        let style = match size {
            TextSize::Small => MonoTextStyle::new(&FONT_6X10, colour),
            TextSize::Large => MonoTextStyle::new(&FONT_9X15, colour),
        };
        let _ = Text::with_baseline(text, Point::new(x as i32, y as i32), style, Baseline::Top)
            .draw(self);
    }

    /// Writes `text` horizontally centred on `cx`, its top at `y`.
    pub fn text_centred(&mut self, cx: u32, y: u32, text: &str, size: TextSize, colour: [u8; 3]) {
        let x = cx.saturating_sub(size.width(text) / 2);
        self.text(x, y, text, size, colour);
    }

    /// Draws a slice as a grey tile at `(x0, y0)`, `zoom` pixels per voxel, values windowed to
    /// `[lo, hi]`; the first voxel axis runs to the right, the second up (anterior up in RAS
    /// data).
    pub fn tile(
        &mut self,
        v: &ArrayView2<'_, f32>,
        (lo, hi): (f32, f32),
        x0: u32,
        y0: u32,
        zoom: u32,
    ) {
        let (nx, ny) = v.dim();
        for i in 0..nx {
            for j in 0..ny {
                let t = ((v[[i, j]] - lo) / (hi - lo)).clamp(0.0, 1.0);
                let g = (t * 255.0).round() as u8;
                self.block(x0, y0, zoom, i, ny - 1 - j, [g, g, g]);
            }
        }
    }

    /// Draws the boundary of `mask` (> 0.5 inside) over a tile placed like [`Canvas::tile`]:
    /// every inside voxel with an outside 4-neighbour.
    pub fn outline(
        &mut self,
        mask: &ArrayView2<'_, f32>,
        x0: u32,
        y0: u32,
        zoom: u32,
        colour: [u8; 3],
    ) {
        let (nx, ny) = mask.dim();
        let inside = |i: isize, j: isize| {
            i >= 0
                && j >= 0
                && (i as usize) < nx
                && (j as usize) < ny
                && mask[[i as usize, j as usize]] > 0.5
        };
        for i in 0..nx as isize {
            for j in 0..ny as isize {
                if inside(i, j)
                    && [(1, 0), (-1, 0), (0, 1), (0, -1)]
                        .iter()
                        .any(|(a, b)| !inside(i + a, j + b))
                {
                    self.block(x0, y0, zoom, i as usize, ny - 1 - j as usize, colour);
                }
            }
        }
    }

    fn block(&mut self, x0: u32, y0: u32, zoom: u32, i: usize, j: usize, colour: [u8; 3]) {
        for a in 0..zoom {
            for b in 0..zoom {
                let (px, py) = (x0 + i as u32 * zoom + a, y0 + j as u32 * zoom + b);
                if px < self.image.width() && py < self.image.height() {
                    self.image.put_pixel(px, py, Rgb(colour));
                }
            }
        }
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) {
        for x in x0..(x0 + w).min(self.image.width()) {
            for y in y0..(y0 + h).min(self.image.height()) {
                self.image.put_pixel(x, y, Rgb(colour));
            }
        }
    }

    /// Saves the canvas as PNG ([`save_png`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_png(&self.image, path)
    }
}

const MARGIN: u32 = 12;
const GAP: u32 = 6;
/// Extra space between row groups ([`Grid::breaks`]).
const GROUP_GAP: u32 = 12;
const LINE_GAP: u32 = 3;
/// Figure background, text and secondary-text colours of [`Grid`].
const GRID_BACKGROUND: [u8; 3] = [24, 24, 24];
const GRID_TEXT: [u8; 3] = [235, 235, 235];
const GRID_NOTE: [u8; 3] = [170, 170, 170];

/// A figure of tiles in rows and columns that names what it shows: a title, a header over
/// every column, a label left of every row and notes underneath, so that a reader needs no
/// documentation to read it. Every text is a list of lines separated by `\n`; the first
/// line of a row label is drawn large, the rest small.
#[derive(Clone, Debug, Default)]
pub struct Grid {
    /// One line above everything.
    pub title: String,
    /// One header per column.
    pub columns: Vec<String>,
    /// One label per row.
    pub rows: Vec<String>,
    /// The largest tile, in pixels (width, height).
    pub tile: (u32, u32),
    /// Small grey lines under the grid (how the tiles are windowed, orientation).
    pub notes: Vec<String>,
    /// Row indices that start a new group: a wider gap above them.
    pub breaks: Vec<usize>,
}

/// A [`Grid`] drawn: its canvas, labels in place, and where the tiles go.
pub struct PlacedGrid {
    /// The figure; draw the tiles onto it at [`PlacedGrid::origin`].
    pub canvas: Canvas,
    columns: Vec<u32>,
    rows: Vec<u32>,
    column_width: u32,
}

impl PlacedGrid {
    /// The top-left corner for a `width`-pixel-wide tile in row `row`, column `col`
    /// (centred in its column).
    pub fn origin(&self, row: usize, col: usize, width: u32) -> (u32, u32) {
        (
            self.columns[col] + self.column_width.saturating_sub(width) / 2,
            self.rows[row],
        )
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
}

fn line_height(size: TextSize) -> u32 {
    size.cell().1 + LINE_GAP
}

impl Grid {
    /// Lays the grid out and draws its texts on a new canvas; the tile cells stay background.
    pub fn draw(&self) -> PlacedGrid {
        let large = TextSize::Large;
        let small = TextSize::Small;
        let header_lines = self
            .columns
            .iter()
            .map(|c| lines(c).count())
            .max()
            .unwrap_or(0);
        let column_width = self
            .columns
            .iter()
            .flat_map(|c| lines(c))
            .map(|l| large.width(l) + 2 * GAP)
            .fold(self.tile.0, u32::max);
        let label_size = |i: usize| if i == 0 { large } else { small };
        let label_height = |label: &str| -> u32 {
            lines(label)
                .enumerate()
                .map(|(i, _)| line_height(label_size(i)))
                .sum()
        };
        let label_width = self
            .rows
            .iter()
            .flat_map(|r| lines(r).enumerate().map(|(i, l)| label_size(i).width(l)))
            .max()
            .map_or(0, |w| w + 2 * GAP);
        let row_height = self
            .rows
            .iter()
            .map(|r| label_height(r))
            .fold(self.tile.1, u32::max);
        let title_height = line_height(large) + 2 * GAP;
        let header_top = MARGIN + title_height;
        let grid_top = header_top + header_lines as u32 * line_height(large) + GAP;
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut y = grid_top;
        for r in 0..self.rows.len() {
            if r > 0 {
                y += GAP
                    + if self.breaks.contains(&r) {
                        GROUP_GAP
                    } else {
                        0
                    };
            }
            rows.push(y);
            y += row_height;
        }
        let notes_top = y + 2 * GAP;
        let height = notes_top + self.notes.len() as u32 * line_height(small) + MARGIN;
        let left = MARGIN + label_width;
        let columns: Vec<u32> = (0..self.columns.len() as u32)
            .map(|c| left + c * (column_width + GAP))
            .collect();
        let grid_right =
            left + (self.columns.len() as u32 * (column_width + GAP)).saturating_sub(GAP);
        let width = std::iter::once(large.width(&self.title))
            .chain(self.notes.iter().map(|n| small.width(n)))
            .map(|w| MARGIN + w)
            .fold(grid_right, u32::max)
            + MARGIN;

        let mut canvas = Canvas::new(width, height, GRID_BACKGROUND);
        canvas.text(MARGIN, MARGIN, &self.title, large, GRID_TEXT);
        for (c, header) in self.columns.iter().enumerate() {
            let cx = columns[c] + column_width / 2;
            // Headers sit on the grid: a one-line header is on the line next to the tiles.
            let first = header_lines - lines(header).count();
            for (i, l) in lines(header).enumerate() {
                let y = header_top + (first + i) as u32 * line_height(large);
                canvas.text_centred(cx, y, l, large, GRID_TEXT);
            }
        }
        for (r, label) in self.rows.iter().enumerate() {
            let mut y = rows[r] + (row_height - label_height(label)) / 2;
            for (i, l) in lines(label).enumerate() {
                let colour = if i == 0 { GRID_TEXT } else { GRID_NOTE };
                canvas.text(MARGIN, y, l, label_size(i), colour);
                y += line_height(label_size(i));
            }
        }
        for (i, note) in self.notes.iter().enumerate() {
            let y = notes_top + i as u32 * line_height(small);
            canvas.text(MARGIN, y, note, small, GRID_NOTE);
        }
        PlacedGrid {
            canvas,
            columns,
            rows,
            column_width,
        }
    }
}

/// Encodes `image` as PNG and writes it whole or not at all
/// ([`dicyc_volume::atomic::write_atomic`]), creating its folder.
pub fn save_png<P, C>(image: &ImageBuffer<P, C>, path: &Path) -> Result<()>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .with_context(|| format!("encoding figure {}", path.display()))?;
    dicyc_volume::atomic::write_atomic(path, &png)
}

/// Pixel counts for tests of figures drawn on a [`Grid`].
#[cfg(test)]
pub(crate) mod testing {
    use super::GRID_BACKGROUND;
    use image::RgbImage;

    /// How many pixels of `img` in `[x0, x1) × [y0, y1)` are not the background.
    pub fn lit(img: &RgbImage, (x0, x1): (u32, u32), (y0, y1): (u32, u32)) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0 != GRID_BACKGROUND)
            .count()
    }

    /// The first scan line with more than `min` lit pixels: the top of the first tile row
    /// when `min` exceeds what a line of text lights.
    pub fn first_tile_row(img: &RgbImage, min: usize) -> u32 {
        (0..img.height())
            .find(|&y| lit(img, (0, img.width()), (y, y + 1)) > min)
            .expect("no tile row")
    }

    /// Asserts that a grid figure has text where its title, its column headers (the line
    /// right above the first tile row, found as in [`first_tile_row`] with `tile_row_min`)
    /// and its first row label (within `label_width` of the left edge, `row_height` high)
    /// go.
    pub fn assert_labelled(img: &RgbImage, tile_row_min: usize, label_width: u32, row_height: u32) {
        let (w, top) = (img.width(), first_tile_row(img, tile_row_min));
        assert!(lit(img, (0, w), (0, 20)) > 100, "title");
        assert!(lit(img, (0, w), (top - 18, top - 2)) > 100, "headers");
        let labels = lit(img, (0, label_width), (top, top + row_height));
        assert!(labels > 50, "row label: {labels} pixels");
    }
}
