//! Output grids: a grid centred on the anatomy, one matching another resolution's field of
//! view, and the voxel ↔ world maps of a header.

use super::Anatomy;
use ndarray::Axis;

/// The output grid of the default benchmark on an anatomy: `xy` in-plane (centred on the
/// grid) and `slices` axial slices centred on the brain.
pub fn centred_grid(anatomy: &Anatomy, xy: [usize; 2], slices: usize) -> ([usize; 3], [f64; 3]) {
    let d = anatomy.dims();
    let brain = anatomy.brain();
    let zs: Vec<usize> = (0..d[2])
        .filter(|&k| brain.index_axis(Axis(2), k).iter().any(|&v| v > 0.5))
        .collect();
    let zc = match (zs.first(), zs.last()) {
        (Some(a), Some(b)) => (a + b) as f64 / 2.0,
        _ => (d[2] as f64 - 1.0) / 2.0,
    };
    let off = [
        (d[0] as f64 - xy[0] as f64) / 2.0,
        (d[1] as f64 - xy[1] as f64) / 2.0,
        (zc - (slices as f64 - 1.0) / 2.0).round(),
    ];
    (
        [xy[0], xy[1], slices],
        [off[0].round(), off[1].round(), off[2]],
    )
}

/// The grid on `target` that covers the same field of view as `reference`'s
/// [`centred_grid`] (`xy`, `slices` in voxels of `target`): its centre is at the reference
/// grid's centre in world mm, so a 1 mm benchmark depicts exactly the slab of the 2 mm one
/// (whose placement depends on the brain's extent on the 2 mm grid). The reference grid has
/// `xy`, `slices` scaled by the voxel ratio (rounded, at least 1).
pub fn matching_grid(
    reference: &Anatomy,
    target: &Anatomy,
    xy: [usize; 2],
    slices: usize,
) -> ([usize; 3], [f64; 3]) {
    let ratio = target.voxel_mm() / reference.voxel_mm();
    let scaled = |n: usize| ((n as f64 * ratio).round() as usize).max(1);
    let (rd, ro) = centred_grid(reference, [scaled(xy[0]), scaled(xy[1])], scaled(slices));
    let centre = [0, 1, 2].map(|a| ro[a] + (rd[a] as f64 - 1.0) / 2.0);
    let world = voxel_to_world(&reference.header, centre);
    let c = world_to_voxel(&target.header, world);
    let dims = [xy[0], xy[1], slices];
    let off = [0, 1, 2].map(|a| (c[a] - (dims[a] as f64 - 1.0) / 2.0).round());
    (dims, off)
}

fn sform(h: &nifti::NiftiHeader) -> ([[f64; 3]; 3], [f64; 3]) {
    let rows = [h.srow_x, h.srow_y, h.srow_z];
    (
        rows.map(|r| [f64::from(r[0]), f64::from(r[1]), f64::from(r[2])]),
        rows.map(|r| f64::from(r[3])),
    )
}

fn voxel_to_world(h: &nifti::NiftiHeader, p: [f64; 3]) -> [f64; 3] {
    let (m, t) = sform(h);
    [0, 1, 2].map(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + t[r])
}

fn world_to_voxel(h: &nifti::NiftiHeader, w: [f64; 3]) -> [f64; 3] {
    let (m, t) = sform(h);
    let d = [w[0] - t[0], w[1] - t[1], w[2] - t[2]];
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    // Cramer's rule: column `a` of the matrix replaced by `d`.
    [0, 1, 2].map(|a| {
        let c = |r: usize, k: usize| if k == a { d[r] } else { m[r][k] };
        (c(0, 0) * (c(1, 1) * c(2, 2) - c(1, 2) * c(2, 1))
            - c(0, 1) * (c(1, 0) * c(2, 2) - c(1, 2) * c(2, 0))
            + c(0, 2) * (c(1, 0) * c(2, 1) - c(1, 1) * c(2, 0)))
            / det
    })
}
