//! The study's figures: the paper's Fig. 4 (source | CycleGAN | DicycleGAN | aligned ground
//! truth | deformed target, the source's outline drawn over each) and windowed SSIM per seed
//! and variant. Labels are drawn with the bitmap font of [`crate::eval::canvas`].

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array2, Axis};
use tch::Device;

use super::cell::{cell_dir, load_eval};
use super::evaluate::{test_folders, DIRECTIONS};
use super::plan::{data_dir, Cell, Setting, StudyPlan};
use crate::data::nifti_io::{list_volumes, read_volume, stem};
use crate::data::sampling::DataStats;
use crate::eval::canvas::{percentile_window, Canvas, TextSize};
use crate::inference::load_generator;
use crate::model::Pass;

const ZOOM: u32 = 2;
const GAP: u32 = 6;
const OUTLINE: [u8; 3] = [255, 200, 0];
const TEXT: [u8; 3] = [235, 235, 235];
const BACKGROUND: [u8; 3] = [24, 24, 24];

/// The checkpoint of `cell` at `step`, if its run still holds one.
fn checkpoint_at(study: &Path, cell: &Cell, step: u64) -> Option<std::path::PathBuf> {
    let ckpts = cell_dir(study, cell).join("run").join("checkpoints");
    let exact = ckpts.join(format!("step-{step:09}"));
    if exact.is_dir() {
        return Some(exact);
    }
    let latest = std::fs::read_to_string(ckpts.join("latest")).ok()?;
    let p = ckpts.join(latest.trim());
    let state = std::fs::read_to_string(p.join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&state).ok()?;
    (v["global_step"].as_u64() == Some(step)).then_some(p)
}

/// Writes Fig. 4 for the deformed setting, seed `seed`: rows are `volumes` test volumes ×
/// both directions, columns source | CycleGAN | `variant` | aligned ground truth | the target
/// domain's geometry. Returns `false` (and writes nothing) when either run's checkpoint at
/// the last point is not on disk (e.g. on a fresh clone, where only the records are).
pub fn write_fig4(
    study: &Path,
    plan: &StudyPlan,
    variant: &str,
    seed: u64,
    volumes: usize,
    path: &Path,
) -> Result<bool> {
    let last = *plan.spec.points.last().context("no evaluation points")?;
    let cell = |v: &str| Cell {
        variant: v.to_string(),
        setting: Setting::Deformed,
        seed,
    };
    let runs = [cell("cyclegan"), cell(variant)];
    let mut ckpts = Vec::new();
    for c in &runs {
        match checkpoint_at(study, c, last) {
            Some(p) => ckpts.push((cell_dir(study, c).join("run"), p)),
            None => return Ok(false),
        }
    }
    let data = data_dir(study, Setting::Deformed);
    let test = data.join("test");
    let names: Vec<String> = list_volumes(&test.join("pd"))?
        .iter()
        .map(|p| stem(p))
        .take(volumes)
        .collect();
    let columns = [
        "source".to_string(),
        "CycleGAN".to_string(),
        variant.to_string(),
        "aligned truth".to_string(),
        "deformed target".to_string(),
    ];
    struct Row {
        label: String,
        tiles: Vec<Array2<f32>>,
        outline: Array2<f32>,
    }
    let mut rows = Vec::new();
    for (d, (direction, [source_dir, truth_dir, mask_dir])) in
        test_folders(&data, Setting::Deformed)
            .into_iter()
            .enumerate()
    {
        // The "deformed target": the target domain's own geometry.
        let target_dir = if d == 0 {
            test.join("t2")
        } else {
            test.join("pd")
        };
        let gens = ckpts
            .iter()
            .map(|(run, ck)| {
                let stats = DataStats::load(&run.join("data-stats.json"))?;
                Ok((load_generator(run, ck, direction, Device::Cpu)?, stats))
            })
            .collect::<Result<Vec<_>>>()?;
        for name in &names {
            let at = |dir: &Path| dir.join(format!("{name}.nii.gz"));
            if !at(&truth_dir).exists() {
                continue;
            }
            let source = read_volume(&at(&source_dir))?;
            let mask = read_volume(&at(&mask_dir))?;
            let k = (0..mask.data.len_of(Axis(2)))
                .max_by_key(|&k| {
                    mask.data
                        .index_axis(Axis(2), k)
                        .iter()
                        .filter(|&&m| m > 0.5)
                        .count()
                })
                .unwrap_or(0);
            let slice = |v: &ndarray::Array3<f32>| v.index_axis(Axis(2), k).to_owned();
            let mut tiles = vec![slice(&source.data)];
            for (g, stats) in &gens {
                let target = if d == 0 { stats.b } else { stats.a };
                let y = g.synthesize_volume(
                    &source,
                    &stats.preprocess,
                    Some(target),
                    Pass::Undeformed,
                    8,
                    |_| {},
                )?;
                tiles.push(slice(&y));
            }
            tiles.push(slice(&read_volume(&at(&truth_dir))?.data));
            tiles.push(slice(&read_volume(&at(&target_dir))?.data));
            rows.push(Row {
                label: format!("{} {name} z={k}", DIRECTIONS[d].replace('→', "->")),
                tiles,
                outline: slice(&mask.data),
            });
        }
    }
    if rows.is_empty() {
        return Ok(false);
    }
    let (nx, ny) = rows[0].tiles[0].dim();
    let (tw, th) = (nx as u32 * ZOOM, ny as u32 * ZOOM);
    let (cw, ch) = TextSize::Small.cell();
    let header = 2 * ch + 3 * GAP + TextSize::Large.cell().1;
    let width = GAP + columns.len() as u32 * (tw + GAP);
    let height = header + rows.len() as u32 * (th + ch + 2 * GAP) + ch + GAP;
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    canvas.text(
        GAP,
        GAP,
        &format!("Deformed setting, seed {seed}, step {last}: undeformed pass; yellow = the source's brain outline"),
        TextSize::Large,
        TEXT,
    );
    for (c, title) in columns.iter().enumerate() {
        let x = GAP + c as u32 * (tw + GAP);
        let title: String = title.chars().take((tw / cw) as usize).collect();
        canvas.text(x, header - ch - GAP, &title, TextSize::Small, TEXT);
    }
    for (r, row) in rows.iter().enumerate() {
        let y = header + r as u32 * (th + ch + 2 * GAP);
        canvas.text(GAP, y, &row.label, TextSize::Small, TEXT);
        let y = y + ch + GAP;
        let truth_window = percentile_window(&row.tiles[3].view());
        for (c, tile) in row.tiles.iter().enumerate() {
            let x = GAP + c as u32 * (tw + GAP);
            let window = if c == 0 {
                percentile_window(&tile.view())
            } else {
                truth_window
            };
            canvas.tile(&tile.view(), window, x, y, ZOOM);
            canvas.outline(&row.outline.view(), x, y, ZOOM, OUTLINE);
        }
    }
    canvas.text(
        GAP,
        height - ch - GAP / 2,
        "source: own 1-99% window; others: the aligned truth's. Generated by trainer study.",
        TextSize::Small,
        TEXT,
    );
    canvas.save(path)?;
    Ok(true)
}

/// One panel of the SSIM plot: its title and, per variant, the seeds' volume means.
type Panel = (String, Vec<(String, Vec<f64>)>);

/// Windowed SSIM at the last point, one dot per seed, per variant, direction and setting.
pub fn write_ssim_plot(
    study: &Path,
    plan: &StudyPlan,
    variants: &[&str],
    path: &Path,
) -> Result<bool> {
    let last = *plan.spec.points.last().context("no evaluation points")?;
    // (setting, direction) panels; per variant the seeds' volume means.
    let mut panels: Vec<Panel> = Vec::new();
    let mut any = false;
    for setting in Setting::ALL {
        for (d, dir) in DIRECTIONS.iter().enumerate() {
            let mut per_variant = Vec::new();
            for v in variants {
                let mut values = Vec::new();
                for c in plan
                    .cells
                    .iter()
                    .filter(|c| c.variant == *v && c.setting == setting)
                {
                    if let Some(r) = load_eval(&cell_dir(study, c), last)? {
                        let s: Vec<f64> = r.directions[d]
                            .volumes
                            .iter()
                            .map(|x| x.metrics.ssim_window)
                            .filter(|x| x.is_finite())
                            .collect();
                        if !s.is_empty() {
                            values.push(s.iter().sum::<f64>() / s.len() as f64);
                            any = true;
                        }
                    }
                }
                per_variant.push((v.to_string(), values));
            }
            panels.push((
                format!("{} {}", setting.name(), dir.replace('→', "->")),
                per_variant,
            ));
        }
    }
    if !any {
        return Ok(false);
    }
    let (cw, ch) = TextSize::Small.cell();
    let label_w = variants.iter().map(|v| v.len()).max().unwrap_or(8) as u32 * cw + 2 * GAP;
    let plot_w = 300u32;
    let row_h = ch + 6;
    let panel_h = variants.len() as u32 * row_h + 2 * ch + 3 * GAP;
    let width = label_w + plot_w + 3 * GAP;
    let title_h = TextSize::Large.cell().1 + 2 * GAP;
    let height = title_h + panels.len() as u32 * panel_h + ch + 2 * GAP;
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    canvas.text(
        GAP,
        GAP,
        &format!("Windowed SSIM per seed, step {last}"),
        TextSize::Large,
        TEXT,
    );
    // A common axis over every value, padded, so panels compare.
    let all: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.1.iter().flat_map(|v| v.1.iter().copied()))
        .collect();
    let lo = (all.iter().copied().fold(f64::INFINITY, f64::min) * 20.0).floor() / 20.0;
    let hi = (all.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 20.0).ceil() / 20.0;
    let hi = if hi > lo { hi } else { lo + 0.05 };
    let x_of = |v: f64| label_w + GAP + ((v - lo) / (hi - lo) * plot_w as f64).round() as u32;
    let colours = [
        [120, 200, 255],
        [255, 140, 90],
        [140, 230, 120],
        [230, 120, 230],
        [230, 230, 120],
    ];
    for (p, (title, per_variant)) in panels.iter().enumerate() {
        let y0 = title_h + p as u32 * panel_h;
        canvas.text(GAP, y0, title, TextSize::Small, TEXT);
        for (i, (v, values)) in per_variant.iter().enumerate() {
            let y = y0 + ch + GAP + i as u32 * row_h;
            canvas.text(GAP, y, v, TextSize::Small, TEXT);
            canvas.rect(label_w + GAP, y + ch / 2, plot_w, 1, [70, 70, 70]);
            for s in values {
                canvas.rect(
                    x_of(*s).saturating_sub(2),
                    y + ch / 2 - 2,
                    5,
                    5,
                    colours[i % colours.len()],
                );
            }
        }
        let axis_y = y0 + ch + GAP + per_variant.len() as u32 * row_h;
        canvas.rect(label_w + GAP, axis_y, plot_w, 1, TEXT);
        for t in 0..=4 {
            let v = lo + (hi - lo) * t as f64 / 4.0;
            let x = x_of(v);
            canvas.rect(x, axis_y, 1, 4, TEXT);
            canvas.text(
                x.saturating_sub(2 * cw),
                axis_y + 5,
                &format!("{v:.2}"),
                TextSize::Small,
                TEXT,
            );
        }
    }
    canvas.save(path)?;
    Ok(true)
}
