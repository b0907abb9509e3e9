//! Linear interpolation on voxel grids (2D and 3D) and in-plane resampling.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

/// What a sample outside the grid reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outside {
    /// The nearest border voxel (replicate).
    Clamp,
    /// A constant.
    Value(f32),
}

/// Trilinear sample of `v` at continuous voxel coordinates `(x, y, z)`.
pub fn trilinear(v: &ArrayView3<'_, f32>, x: f64, y: f64, z: f64, outside: Outside) -> f32 {
    let (nx, ny, nz) = v.dim();
    let n = [nx as i64, ny as i64, nz as i64];
    let mut p = [x, y, z];
    match outside {
        Outside::Value(c) => {
            for a in 0..3 {
                if !(p[a] > -1.0 && p[a] < n[a] as f64) {
                    return c;
                }
            }
        }
        Outside::Clamp => {
            for a in 0..3 {
                p[a] = p[a].clamp(0.0, (n[a] - 1) as f64);
            }
        }
    }
    let fl = p.map(f64::floor);
    let f = [p[0] - fl[0], p[1] - fl[1], p[2] - fl[2]];
    let i = fl.map(|q| q as i64);
    let fetch = |a: i64, b: i64, c: i64| -> f64 {
        if a >= 0 && b >= 0 && c >= 0 && a < n[0] && b < n[1] && c < n[2] {
            f64::from(v[[a as usize, b as usize, c as usize]])
        } else {
            match outside {
                Outside::Value(c) => f64::from(c),
                Outside::Clamp => f64::from(
                    v[[
                        a.clamp(0, n[0] - 1) as usize,
                        b.clamp(0, n[1] - 1) as usize,
                        c.clamp(0, n[2] - 1) as usize,
                    ]],
                ),
            }
        }
    };
    let mut acc = 0.0;
    for (dz, wz) in [(0, 1.0 - f[2]), (1, f[2])] {
        if wz == 0.0 {
            continue;
        }
        for (dy, wy) in [(0, 1.0 - f[1]), (1, f[1])] {
            if wy == 0.0 {
                continue;
            }
            for (dx, wx) in [(0, 1.0 - f[0]), (1, f[0])] {
                if wx == 0.0 {
                    continue;
                }
                acc += wx * wy * wz * fetch(i[0] + dx, i[1] + dy, i[2] + dz);
            }
        }
    }
    acc as f32
}

/// Bilinear sample of `v` at continuous pixel coordinates `(x, y)`.
pub fn bilinear(v: &ArrayView2<'_, f32>, x: f64, y: f64, outside: Outside) -> f32 {
    let (nx, ny) = v.dim();
    if let Outside::Value(c) = outside {
        if !(x > -1.0 && x < nx as f64 && y > -1.0 && y < ny as f64) {
            return c;
        }
    }
    let fetch = |i: i64, j: i64| -> f64 {
        let inside = i >= 0 && j >= 0 && (i as usize) < nx && (j as usize) < ny;
        match (inside, outside) {
            (true, _) => f64::from(v[[i as usize, j as usize]]),
            (false, Outside::Value(c)) => f64::from(c),
            (false, Outside::Clamp) => f64::from(
                v[[
                    i.clamp(0, nx as i64 - 1) as usize,
                    j.clamp(0, ny as i64 - 1) as usize,
                ]],
            ),
        }
    };
    let (x, y) = match outside {
        Outside::Clamp => (x.clamp(0.0, (nx - 1) as f64), y.clamp(0.0, (ny - 1) as f64)),
        Outside::Value(_) => (x, y),
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (i, j) = (x0 as i64, y0 as i64);
    let v00 = fetch(i, j);
    let v10 = if fx > 0.0 { fetch(i + 1, j) } else { 0.0 };
    let v01 = if fy > 0.0 { fetch(i, j + 1) } else { 0.0 };
    let v11 = if fx > 0.0 && fy > 0.0 {
        fetch(i + 1, j + 1)
    } else {
        0.0
    };
    ((1.0 - fx) * (1.0 - fy) * v00 + fx * (1.0 - fy) * v10 + (1.0 - fx) * fy * v01 + fx * fy * v11)
        as f32
}

/// The shape [`resample_slice`] gives a `(nx, ny)` slice resampled from spacing `from` to
/// `to` (mm): the same extent, at least one pixel a side.
pub fn resampled_shape((nx, ny): (usize, usize), from: [f32; 2], to: [f32; 2]) -> (usize, usize) {
    let side = |n: usize, f: f32, t: f32| {
        let v = (n as f64 * f64::from(f) / f64::from(t)).round();
        // `as` saturates (and maps NaN to 0): a huge ratio gives usize::MAX, which the
        // caller's size check refuses.
        (v as usize).max(1)
    };
    (side(nx, from[0], to[0]), side(ny, from[1], to[1]))
}

/// Resamples a 2D slice with spacing `from` (mm) to spacing `to`, keeping the field of view's
/// centre: returns the new slice. Anti-aliased by a box pre-filter when downsampling.
pub fn resample_slice(s: &ArrayView2<'_, f32>, from: [f32; 2], to: [f32; 2]) -> Array2<f32> {
    let (nx, ny) = s.dim();
    let (ox, oy) = resampled_shape((nx, ny), from, to);
    let rx = f64::from(to[0]) / f64::from(from[0]); // input pixels per output pixel
    let ry = f64::from(to[1]) / f64::from(from[1]);
    // Box pre-filter when shrinking: average k×k input taps spread over one output pixel
    // (never more taps than the slice has pixels, however extreme the ratio).
    let kx = (rx.ceil().max(1.0) as usize).min(nx.max(1));
    let ky = (ry.ceil().max(1.0) as usize).min(ny.max(1));
    let cx = (nx as f64 - 1.0) / 2.0;
    let cy = (ny as f64 - 1.0) / 2.0;
    let ocx = (ox as f64 - 1.0) / 2.0;
    let ocy = (oy as f64 - 1.0) / 2.0;
    Array2::from_shape_fn((ox, oy), |(i, j)| {
        let x = cx + (i as f64 - ocx) * rx;
        let y = cy + (j as f64 - ocy) * ry;
        let mut acc = 0.0f64;
        for a in 0..kx {
            for b in 0..ky {
                let dx = if kx > 1 {
                    (a as f64 + 0.5) / kx as f64 - 0.5
                } else {
                    0.0
                } * rx;
                let dy = if ky > 1 {
                    (b as f64 + 0.5) / ky as f64 - 0.5
                } else {
                    0.0
                } * ry;
                acc += f64::from(bilinear(s, x + dx, y + dy, Outside::Clamp));
            }
        }
        (acc / (kx * ky) as f64) as f32
    })
}

/// Resamples a slice back onto a grid of `shape` with spacing `to` from spacing `from`
/// (the inverse mapping of [`resample_slice`], centres aligned).
pub fn resample_slice_to_shape(
    s: &ArrayView2<'_, f32>,
    from: [f32; 2],
    to: [f32; 2],
    shape: (usize, usize),
) -> Array2<f32> {
    let (nx, ny) = s.dim();
    let rx = f64::from(to[0]) / f64::from(from[0]);
    let ry = f64::from(to[1]) / f64::from(from[1]);
    let cx = (nx as f64 - 1.0) / 2.0;
    let cy = (ny as f64 - 1.0) / 2.0;
    let ocx = (shape.0 as f64 - 1.0) / 2.0;
    let ocy = (shape.1 as f64 - 1.0) / 2.0;
    Array2::from_shape_fn(shape, |(i, j)| {
        bilinear(
            s,
            cx + (i as f64 - ocx) * rx,
            cy + (j as f64 - ocy) * ry,
            Outside::Clamp,
        )
    })
}

/// Centre crop or pad (with `fill`) a slice to `shape`.
pub fn crop_or_pad(s: &ArrayView2<'_, f32>, shape: (usize, usize), fill: f32) -> Array2<f32> {
    let (nx, ny) = s.dim();
    let offx = nx as i64 / 2 - shape.0 as i64 / 2;
    let offy = ny as i64 / 2 - shape.1 as i64 / 2;
    Array2::from_shape_fn(shape, |(i, j)| {
        let (x, y) = (i as i64 + offx, j as i64 + offy);
        if x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny {
            s[[x as usize, y as usize]]
        } else {
            fill
        }
    })
}

/// Block-average downsampling of a volume by integer factors (partial-volume effect).
pub fn downsample_mean(v: &ArrayView3<'_, f32>, f: [usize; 3]) -> Array3<f32> {
    let (nx, ny, nz) = v.dim();
    let o = (nx / f[0], ny / f[1], nz / f[2]);
    let norm = (f[0] * f[1] * f[2]) as f32;
    Array3::from_shape_fn(o, |(i, j, k)| {
        let mut acc = 0.0f32;
        for a in 0..f[0] {
            for b in 0..f[1] {
                for c in 0..f[2] {
                    acc += v[[i * f[0] + a, j * f[1] + b, k * f[2] + c]];
                }
            }
        }
        acc / norm
    })
}
