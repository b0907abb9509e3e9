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
