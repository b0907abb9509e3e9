//! PNG outputs of a run, each readable without the docs.
//!
//! * Loss curves, `curves/<series>.png`: the series named in words in the title, "step" and
//!   "loss" axes with ticks, the raw per-step value light and its moving average dark, and a
//!   legend. `curves/overview.png` stacks the panels a GAN practitioner reads together: the
//!   generator's total, the adversarial terms of both players (is either side winning?),
//!   and the reconstruction terms.
//! * Sample grids, `samples/<name>.png`: the sample slices of both directions through both
//!   passes and back, with column headers, row labels and a title ([`Grid`]).
//!
//! Text on the curves is DejaVu Sans (matplotlib's default face), embedded in the `dejavu`
//! crate and handed to plotters as bytes: no system font is looked up and nothing is fetched
//! at run time.

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use anyhow::Context;
use image::RgbImage;
use ndarray::Array2;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};
use tch::{Kind, Tensor};

use super::run_dir::StepLosses;
use crate::eval::canvas::{save_png, Grid};

/// The series of [`StepLosses::SERIES`] in words (curve titles and legends).
fn describe(series: &str) -> &'static str {
    match series {
        "g_total" => "Generator total loss (weighted sum)",
        "gan" => "Generator adversarial loss (LSGAN, both generators, deformed pass)",
        "cycle" => "Cycle-consistency L1 (both directions, undeformed pass)",
        "dicycle" => "Deformation-invariant cycle L1",
        "alignment" => "Alignment loss (2 - NMI - NMI)",
        "identity" => "Identity L1",
        "gan_undeformed" => "Generator adversarial loss (LSGAN, both generators, undeformed pass)",
        "offset" => "Offset penalty (weighted)",
        "d_a" => "Discriminator A loss (LSGAN)",
        "d_b" => "Discriminator B loss (LSGAN)",
        _ => "Loss",
    }
}

/// The font family the curves use; registered with plotters on first use.
fn font() -> anyhow::Result<FontFamily<'static>> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // Plotters' own defaults (tick labels) ask for "sans-serif": both names map here.
            for family in ["sans-serif", "DejaVu Sans"] {
                for (style, bytes) in [
                    (FontStyle::Normal, dejavu::sans::regular()),
                    (FontStyle::Bold, dejavu::sans::bold()),
                ] {
                    plotters::style::register_font(family, style, bytes)
                        .map_err(|_| "the embedded DejaVu Sans did not parse".to_string())?;
                }
            }
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(FontFamily::Name("DejaVu Sans"))
}

/// The bitmap backend with text drawn by `ab_glyph` at every glyph's own side bearing, with
/// kerning and sub-pixel pen positions. (Plotters' own `ab_glyph` renderer places each glyph's
/// bounding box at the integer pen position, which spaces letters unevenly: "ste ps".) Text
/// is measured the way plotters measures it (the registered font), so layouts agree.
struct Typeset<'a> {
    inner: BitMapBackend<'a>,
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for Typeset<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        colour: BackendColor,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_pixel(point, colour)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_path(path, style)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.fill_polygon(vertices, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let ((x0, y0), (x1, y1)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (x1 - x0, y1 - y0);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let font = match style.style() {
            FontStyle::Bold => &self.bold,
            _ => &self.regular,
        };
        let scaled = font.as_scaled(PxScale::from(style.size() as f32));
        // The layout box is the ascent: the baseline sits at its bottom.
        let baseline = scaled.ascent();
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut pen = 0f32;
        let mut previous = None;
        let mut coverage = Vec::new();
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                pen += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), ab_glyph::point(pen, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|x, y, a| {
                    coverage.push((
                        bounds.min.x as i32 + x as i32,
                        bounds.min.y as i32 + y as i32,
                        a,
                    ))
                });
            }
            pen += scaled.h_advance(id);
            previous = Some(id);
        }
        for (x, y, a) in coverage {
            let (x, y) = transform.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                self.inner.draw_pixel((x, y), colour.mix(f64::from(a)))?;
            }
        }
        Ok(())
    }
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

/// Width of one curve panel in pixels; single curves are this by [`PANEL_HEIGHT`].
const PANEL_WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 420;
/// Light (raw) and dark (moving average) blue of the single curves.
const RAW: RGBColor = RGBColor(160, 196, 240);
const SMOOTH: RGBColor = RGBColor(20, 60, 160);
/// Series colours of the overview (matplotlib's first colours, colour-blind distinguishable).
const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// One line of a panel.
struct Line {
    label: String,
    points: Vec<(i64, f64)>,
    colour: RGBColor,
    width: u32,
}

/// A panel: a title over lines that share the axes.
struct Panel {
    title: String,
    lines: Vec<Line>,
}

/// The moving-average window for `n` steps: about 2 % of the run, at least 5 steps.
fn window(n: usize) -> usize {
    (n / 50).max(5).min(n.max(1))
}

/// Every `stride`-th point of the trailing mean over `window` points (the finite ones among
/// them; the first points average what there is so far, so the line spans the whole run).
fn moving_average(points: &[(i64, f64)], window: usize, stride: usize) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(points.len() / stride + 1);
    let (mut sum, mut count) = (0.0, 0usize);
    for (i, p) in points.iter().enumerate() {
        if p.1.is_finite() {
            sum += p.1;
            count += 1;
        }
        if i >= window {
            let old = points[i - window].1;
            if old.is_finite() {
                sum -= old;
                count -= 1;
            }
        }
        if (i % stride == 0 || i + 1 == points.len()) && count > 0 {
            out.push((p.0, sum / count as f64));
        }
    }
    out
}

/// At most ~2000 points per line: the stride that keeps them.
fn stride(n: usize) -> usize {
    n.div_ceil(2000).max(1)
}

/// The raw and smoothed lines of one series.
fn raw_and_smoothed(points: &[(i64, f64)]) -> Vec<Line> {
    let stride = stride(points.len());
    let w = window(points.len());
    let raw = points
        .iter()
        .step_by(stride)
        .copied()
        .filter(|p| p.1.is_finite())
        .collect();
    let raw_label = if stride == 1 {
        "raw (every step)".to_string()
    } else {
        format!("raw (every {stride}th step)")
    };
    vec![
        Line {
            label: raw_label,
            points: raw,
            colour: RAW,
            width: 1,
        },
        Line {
            label: format!("moving average ({w} steps)"),
            points: moving_average(points, w, stride),
            colour: SMOOTH,
            width: 2,
        },
    ]
}

/// The fewest decimals that print every tick of `ticks` exactly (up to 6).
fn decimals(ticks: &[f64]) -> usize {
    (0..6)
        .find(|&d| {
            let scale = 10f64.powi(d as i32);
            ticks.iter().all(|t| {
                let scaled = t * scale;
                (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
            })
        })
        .unwrap_or(6)
}

/// Where the legend of `panel` goes on axes `x` × `y`: the first corner of upper right, upper
/// left, lower right, lower left that no line passes through; when every corner is taken, the
/// y axis grows upwards by the legend's height and the legend goes upper right. Returns the
/// corner and the top of the y axis.
fn legend_corner(
    panel: &Panel,
    (x0, x1): (i64, i64),
    (y0, y1): (f64, f64),
) -> (SeriesLabelPosition, f64) {
    // The legend's share of the plot (about 880 × 300 pixels): 8 pixels a character plus the
    // sample line and margins wide, 22 pixels a line plus margins high.
    let chars = panel.lines.iter().map(|l| l.label.len()).max().unwrap_or(0);
    let wide = ((chars * 8 + 70) as f64 / 880.0).min(1.0);
    let high = ((panel.lines.len() * 22 + 30) as f64 / 300.0).min(0.9);
    let (xs, ys) = ((x1 - x0) as f64, y1 - y0);
    let inside = |right: bool, upper: bool| {
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter())
            .any(|&(x, y)| {
                let fx = (x - x0) as f64 / xs;
                let fy = (y - y0) / ys;
                (if right { fx >= 1.0 - wide } else { fx <= wide })
                    && (if upper { fy >= 1.0 - high } else { fy <= high })
            })
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    for (corner, right, upper) in corners {
        if !inside(right, upper) {
            return (corner, y1);
        }
    }
    // Room above the data: the band of height `high` at the top stays free.
    (SeriesLabelPosition::UpperRight, y0 + ys / (1.0 - high))
}

const X_TICKS: usize = 10;
const Y_TICKS: usize = 7;

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    family: FontFamily<'static>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let all = || panel.lines.iter().flat_map(|l| l.points.iter());
    let x0 = all().map(|p| p.0).min().unwrap_or(0);
    let x1 = all().map(|p| p.0).max().unwrap_or(1).max(x0 + 1);
    let finite = || all().map(|p| p.1).filter(|v| v.is_finite());
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-6 * hi.abs().max(1.0));
    let (y0, y1) = (lo - pad, hi + pad);
    let (position, y1) = legend_corner(panel, (x0, x1), (y0, y1));
    let y_ticks = RangedCoordf64::from(y0..y1).key_points(Y_TICKS);
    let y_decimals = decimals(&y_ticks);

    let mut chart = ChartBuilder::on(area)
        .caption(
            &panel.title,
            (family, 22).into_font().style(FontStyle::Bold),
        )
        .margin(14)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .x_labels(X_TICKS)
        .y_labels(Y_TICKS)
        .x_label_formatter(&|x| x.to_string())
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .label_style((family, 15))
        .axis_desc_style((family, 17))
        .bold_line_style(RGBColor(218, 218, 218))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(90, 90, 90))
        .draw()
        .map_err(plot_error)?;
    for line in &panel.lines {
        let style = ShapeStyle::from(line.colour).stroke_width(line.width);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))
            .map_err(plot_error)?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
    }
    chart
        .configure_series_labels()
        .position(position)
        .label_font((family, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Draws `panels` stacked into a `PANEL_WIDTH`-wide PNG and saves it atomically.
fn write_panels(path: &Path, panels: &[Panel]) -> anyhow::Result<()> {
    let family = font()?;
    let (w, h) = (PANEL_WIDTH, PANEL_HEIGHT * panels.len() as u32);
    let mut buffer = vec![0u8; (w * h * 3) as usize];
    {
        let parse =
            |bytes: &'static [u8]| FontRef::try_from_slice(bytes).context("parsing DejaVu Sans");
        let backend = Typeset {
            inner: BitMapBackend::with_buffer(&mut buffer, (w, h)),
            regular: parse(dejavu::sans::regular())?,
            bold: parse(dejavu::sans::bold())?,
        };
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
            draw_panel(area, panel, family)?;
        }
        root.present().map_err(plot_error)?;
    }
    let image = RgbImage::from_raw(w, h, buffer).context("plot buffer size")?;
    save_png(&image, path)
}

/// Writes `dir/<series>.png` for every series of `history` that is not all zero, and
/// `dir/overview.png`.
pub fn loss_curves(dir: &Path, history: &[StepLosses]) -> anyhow::Result<()> {
    if history.len() < 2 {
        return Ok(());
    }
    let series: Vec<(&str, Vec<(i64, f64)>)> = StepLosses::SERIES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let points = history
                .iter()
                .map(|l| (l.step as i64, l.values()[i]))
                .collect();
            (*name, points)
        })
        .filter(|(_, points): &(_, Vec<(i64, f64)>)| points.iter().any(|p| p.1 != 0.0))
        .collect();
    for (name, points) in &series {
        let panel = Panel {
            title: format!("{} [{name}]", describe(name)),
            lines: raw_and_smoothed(points),
        };
        write_panels(&dir.join(format!("{name}.png")), &[panel])
            .with_context(|| format!("plotting the {name} curve"))?;
    }
    write_panels(&dir.join("overview.png"), &overview(&series))
        .context("plotting the loss overview")
}

/// The overview's panels: the generator's total (raw and smoothed); the adversarial terms of
/// both players, smoothed, on one axis; the reconstruction and regularisation terms, smoothed.
fn overview(series: &[(&str, Vec<(i64, f64)>)]) -> Vec<Panel> {
    let n = series.first().map_or(0, |s| s.1.len());
    let (w, stride) = (window(n), stride(n));
    let smoothed = |names: &[(&str, &str)]| -> Vec<Line> {
        names
            .iter()
            .filter_map(|(name, label)| series.iter().find(|s| s.0 == *name).map(|s| (label, &s.1)))
            .enumerate()
            .map(|(i, (label, points))| Line {
                label: label.to_string(),
                points: moving_average(points, w, stride),
                colour: PALETTE[i % PALETTE.len()],
                width: 2,
            })
            .collect()
    };
    let mut panels = Vec::new();
    if let Some((name, points)) = series.iter().find(|s| s.0 == "g_total") {
        panels.push(Panel {
            title: format!("{} [{name}]", describe(name)),
            lines: raw_and_smoothed(points),
        });
    }
    let adversarial = smoothed(&[
        ("gan", "generators, deformed pass [gan]"),
        (
            "gan_undeformed",
            "generators, undeformed pass [gan_undeformed]",
        ),
        ("d_a", "discriminator A [d_a]"),
        ("d_b", "discriminator B [d_b]"),
    ]);
    if !adversarial.is_empty() {
        panels.push(Panel {
            title: format!("Adversarial losses (LSGAN), moving average ({w} steps)"),
            lines: adversarial,
        });
    }
    let reconstruction = smoothed(&[
        ("cycle", "cycle L1 [cycle]"),
        ("dicycle", "deformation-invariant cycle L1 [dicycle]"),
        ("alignment", "alignment, 2 - NMI - NMI [alignment]"),
        ("identity", "identity L1 [identity]"),
        ("offset", "offset penalty, weighted [offset]"),
    ]);
    if !reconstruction.is_empty() {
        panels.push(Panel {
            title: format!(
                "Generator reconstruction terms, unweighted, moving average ({w} steps)"
            ),
            lines: reconstruction,
        });
    }
    panels
}

/// The column headers of the sample grid, left to right.
pub const SAMPLE_COLUMNS: [&str; 4] = [
    "source",
    "deformed pass",
    "undeformed pass",
    "cycle\n(back to source)",
];

/// The sample grid's title for the file stem `name` (`epoch-0003`, `step-000000030`).
fn sample_title(name: &str) -> String {
    let number = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };
    if let Some(n) = number("epoch-") {
        format!("Fixed sample slices after epoch {n}")
    } else if let Some(n) = number("step-") {
        format!("Fixed sample slices at step {n}")
    } else {
        format!("Fixed sample slices: {name}")
    }
}

/// A `[C, H, W]` or `[H, W]` tensor as an `H × W` array (channel-averaged), on the CPU.
fn to_array(t: &Tensor) -> anyhow::Result<Array2<f32>> {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let t = if t.dim() == 3 {
        t.mean_dim(Some([0i64].as_slice()), false, Kind::Float)
    } else {
        t
    };
    let size = t.size();
    anyhow::ensure!(size.len() == 2, "a sample tile has shape {size:?}");
    let (h, w) = (size[0] as usize, size[1] as usize);
    let mut values = vec![0f32; h * w];
    t.contiguous().copy_data(&mut values, h * w);
    Ok(Array2::from_shape_vec((h, w), values)?)
}

/// Writes a grid to `path` (atomically): rows are the sample slices, the first half A → B,
/// the second B → A; columns [`SAMPLE_COLUMNS`], each tile `[C, H, W]` in (−1, 1)
/// (channel-averaged) shown black to white. The slice's first axis runs to the right and the
/// second up, as in the evaluation figures. Small tiles are enlarged (nearest neighbour) to
/// at least 128 pixels so that they can be inspected. The title comes from the file stem.
pub fn sample_grid(path: &Path, rows: &[[Tensor; 4]]) -> anyhow::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let size = first[0].size();
    let (nx, ny) = (size[size.len() - 2] as u32, size[size.len() - 1] as u32);
    let zoom = (128 / nx.min(ny).max(1)).max(1);
    let half = rows.len().div_ceil(2);
    let name = path
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    let grid = Grid {
        title: sample_title(&name),
        columns: SAMPLE_COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: (0..rows.len())
            .map(|r| {
                let (direction, i) = if r < half { ("A -> B", r) } else { ("B -> A", r - half) };
                format!("{direction}\nsample {}", i + 1)
            })
            .collect(),
        tile: (nx * zoom, ny * zoom),
        notes: vec![
            "deformed pass: the output in the target domain's geometry; undeformed pass: in the source's geometry"
                .to_string(),
            "cycle: the undeformed output through the other generator's undeformed pass".to_string(),
            format!("values -1 (black) to 1 (white), enlarged {zoom}x; slice x to the right, y up"),
        ],
        breaks: vec![half],
    };
    let mut placed = grid.draw();
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let v = to_array(tile)?;
            let (x, y) = placed.origin(r, c, v.dim().0 as u32 * zoom);
            placed.canvas.tile(&v.view(), (-1.0, 1.0), x, y, zoom);
        }
    }
    placed.canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::canvas::testing::assert_labelled;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("dicyc-plots-{name}-{}", std::process::id()))
    }

    fn history(n: u64) -> Vec<StepLosses> {
        (1..=n)
            .map(|step| {
                let s = step as f64;
                let noise = ((s * 12.9898).sin() * 43758.5453).fract() * 0.2;
                StepLosses {
                    step,
                    g_total: 3.0 / (1.0 + s / 40.0) + noise,
                    gan: 0.3 + noise / 4.0,
                    cycle: 0.4 / (1.0 + s / 80.0),
                    d_a: 0.25 - noise / 8.0,
                    d_b: 0.2 + noise / 8.0,
                    ..StepLosses::default()
                }
            })
            .collect()
    }

    fn dark(p: &image::Rgb<u8>) -> bool {
        p.0.iter().all(|&c| c < 110)
    }

    #[test]
    fn curves_have_text_left_of_and_under_the_plot() {
        let dir = temp("curves");
        loss_curves(&dir, &history(300)).unwrap();
        // All-zero series (dicycle, alignment, …) get no file.
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "cycle.png",
                "d_a.png",
                "d_b.png",
                "g_total.png",
                "gan.png",
                "overview.png"
            ]
        );
        let img = image::open(dir.join("g_total.png")).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (PANEL_WIDTH, PANEL_HEIGHT));
        let count = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| dark(img.get_pixel(x, y)))
                .count()
        };
        // Y tick labels and "loss": dark text in the 78-pixel band left of the plot (the
        // axis line itself is at its right edge, so stop short of it).
        assert!(count(0, 80, 60, 360) > 200, "{}", count(0, 80, 60, 360));
        // X tick labels and "step" under the plot.
        assert!(
            count(100, 900, 370, 420) > 200,
            "{}",
            count(100, 900, 370, 420)
        );
        // The title across the top.
        assert!(count(100, 900, 0, 40) > 200, "{}", count(100, 900, 0, 40));
        let overview = image::open(dir.join("overview.png")).unwrap().to_rgb8();
        assert_eq!(overview.dimensions(), (PANEL_WIDTH, 3 * PANEL_HEIGHT));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn moving_average_skips_non_finite_values_and_spans_the_run() {
        let points: Vec<(i64, f64)> = vec![(1, 1.0), (2, f64::NAN), (3, 3.0), (4, 5.0)];
        let m = moving_average(&points, 2, 1);
        assert_eq!(m, vec![(1, 1.0), (2, 1.0), (3, 3.0), (4, 4.0)]);
    }

    #[test]
    fn tick_decimals_are_the_fewest_that_print_every_tick() {
        assert_eq!(decimals(&[0.0, 1.0, 2.0]), 0);
        assert_eq!(decimals(&[0.1, 0.15, 0.2]), 2);
        assert_eq!(decimals(&[0.1 + 0.2, 0.5]), 1);
    }

    #[test]
    fn sample_grid_has_title_headers_and_row_labels() {
        let dir = temp("samples");
        let path = dir.join("epoch-0003.png");
        let tile = || {
            Tensor::linspace(-1.0, 1.0, 32 * 32, (Kind::Float, tch::Device::Cpu)).view([1, 32, 32])
        };
        let rows: Vec<[Tensor; 4]> = (0..4).map(|_| [tile(), tile(), tile(), tile()]).collect();
        sample_grid(&path, &rows).unwrap();
        assert_eq!(
            sample_title("epoch-0003"),
            "Fixed sample slices after epoch 3"
        );
        let img = image::open(&path).unwrap().to_rgb8();
        // 32 pixels × zoom 4: four 128-pixel columns (wider when a header is), four rows.
        assert!(img.width() >= 4 * 128 && img.height() >= 4 * 128);
        // Four lit 128-pixel tiles mark the first tile row; the row labels ("A -> B",
        // "sample 1") lie in the 60 pixels left of the tiles.
        assert_labelled(&img, 400, 60, 128);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
