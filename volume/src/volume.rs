//! A 3D volume in memory: voxel data in `[x, y, z]` order (NIfTI's i, j, k) plus the NIfTI
//! header that carries its geometry (affine, voxel size, orientation) and descriptive fields.

use ndarray::{Array2, Array3, ArrayView2, Axis};
use nifti::NiftiHeader;

/// A volume: `data[[i, j, k]]` is voxel (i, j, k) of the NIfTI grid; axial slices are the
/// `k` planes (the third voxel axis), the convention of axially acquired scans like IXI.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxel values in physical (scaled) units, `[nx, ny, nz]`.
    pub data: Array3<f32>,
    /// The header the volume came with (or a synthetic one): geometry and descriptive fields.
    pub header: NiftiHeader,
}

impl Volume {
    /// A volume with the given data and a header whose geometry is `spacing` (mm) with the
    /// world origin at `origin` (mm) and axes aligned with RAS: sform and qform both set.
    pub fn new(data: Array3<f32>, spacing: [f32; 3], origin: [f32; 3]) -> Self {
        let header = header_for(data.dim(), spacing, origin);
        Self { data, header }
    }

    /// `(nx, ny, nz)`.
    pub fn dim(&self) -> (usize, usize, usize) {
        self.data.dim()
    }

    /// Voxel size in mm along i, j, k (from `pixdim`; zero or non-finite entries read as 1,
    /// negative ones as their magnitude).
    pub fn spacing(&self) -> [f32; 3] {
        spacing_of(&self.header)
    }

    /// Axial slice `k` as a `[nx, ny]` view.
    pub fn slice(&self, k: usize) -> ArrayView2<'_, f32> {
        self.data.index_axis(Axis(2), k)
    }

    /// Builds a volume from axial slices (all `[nx, ny]`), keeping `header` (whose `dim` is
    /// rewritten on save).
    pub fn from_slices(slices: &[Array2<f32>], header: NiftiHeader) -> Self {
        let (nx, ny) = slices.first().map_or((0, 0), |s| s.dim());
        let mut data = Array3::<f32>::zeros((nx, ny, slices.len()));
        for (k, s) in slices.iter().enumerate() {
            data.index_axis_mut(Axis(2), k).assign(s);
        }
        Self { data, header }
    }
}

/// Voxel size in mm along i, j, k of a header.
pub fn spacing_of(header: &NiftiHeader) -> [f32; 3] {
    let f = |v: f32| {
        if v.is_finite() && v.abs() > 0.0 {
            v.abs()
        } else {
            1.0
        }
    };
    [
        f(header.pixdim[1]),
        f(header.pixdim[2]),
        f(header.pixdim[3]),
    ]
}

/// A fresh NIfTI-1 header for a RAS-aligned grid: float32, millimetres, sform and qform
/// (code 2, "aligned") both describing `world = origin + spacing · ijk`.
pub fn header_for(dim: (usize, usize, usize), spacing: [f32; 3], origin: [f32; 3]) -> NiftiHeader {
    let mut h = NiftiHeader {
        scl_slope: 1.0,
        scl_inter: 0.0,
        xyzt_units: 2, // millimetres
        qform_code: 2,
        sform_code: 2,
        ..NiftiHeader::default()
    };
    h.dim = [3, dim.0 as u16, dim.1 as u16, dim.2 as u16, 1, 1, 1, 1];
    h.pixdim = [1.0, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0];
    h.quatern_b = 0.0;
    h.quatern_c = 0.0;
    h.quatern_d = 0.0;
    h.quatern_x = origin[0];
    h.quatern_y = origin[1];
    h.quatern_z = origin[2];
    h.srow_x = [spacing[0], 0.0, 0.0, origin[0]];
    h.srow_y = [0.0, spacing[1], 0.0, origin[1]];
    h.srow_z = [0.0, 0.0, spacing[2], origin[2]];
    h
}

/// The header of a grid derived from `header`'s grid, where new voxel `n` sits at old voxel
/// coordinates `scale · n + offset` (per axis): voxel size, sform and qform are updated so that
/// the new volume overlays the old one in any viewer. Everything else is kept.
pub fn reslice_header(header: &NiftiHeader, scale: [f64; 3], offset: [f64; 3]) -> NiftiHeader {
    let mut h = header.clone();
    for (a, s) in scale.iter().enumerate() {
        h.pixdim[a + 1] = (f64::from(header.pixdim[a + 1]) * s) as f32;
    }
    // sform: world = S · [ijk; 1].
    for row in [&mut h.srow_x, &mut h.srow_y, &mut h.srow_z] {
        let old = *row;
        let mut t = f64::from(old[3]);
        for a in 0..3 {
            t += f64::from(old[a]) * offset[a];
            row[a] = (f64::from(old[a]) * scale[a]) as f32;
        }
        row[3] = t as f32;
    }
    // qform: world = R · diag(pixdim₁, pixdim₂, qfac·pixdim₃) · ijk + qoffset; the rotation is
    // unchanged, the voxel size scales (above) and the offset moves to the old grid's `offset`.
    let r = quaternion_rotation(header);
    let qfac = if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let d = [
        f64::from(header.pixdim[1]) * offset[0],
        f64::from(header.pixdim[2]) * offset[1],
        f64::from(header.pixdim[3]) * offset[2] * qfac,
    ];
    let q = [&mut h.quatern_x, &mut h.quatern_y, &mut h.quatern_z];
    for (row, qo) in r.iter().zip(q) {
        *qo = (f64::from(*qo) + row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) as f32;
    }
    h
}

/// The qform rotation matrix of a header (NIfTI-1 quaternion b, c, d; a = √(1−b²−c²−d²)).
pub fn quaternion_rotation(header: &NiftiHeader) -> [[f64; 3]; 3] {
    let (b, c, d) = (
        f64::from(header.quatern_b),
        f64::from(header.quatern_c),
        f64::from(header.quatern_d),
    );
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ]
}

/// The voxel-to-world affine the header's sform describes (rows x, y, z), or, when the sform
/// code is 0, the one its qform describes (or the voxel size alone when both codes are 0).
pub fn affine_of(header: &NiftiHeader) -> [[f64; 4]; 3] {
    let row = |r: [f32; 4]| r.map(f64::from);
    if header.sform_code > 0 {
        return [row(header.srow_x), row(header.srow_y), row(header.srow_z)];
    }
    let s = spacing_of(header).map(f64::from);
    if header.qform_code > 0 {
        let r = quaternion_rotation(header);
        let qfac = if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let q = [header.quatern_x, header.quatern_y, header.quatern_z].map(f64::from);
        let mut m = [[0.0; 4]; 3];
        for i in 0..3 {
            m[i] = [r[i][0] * s[0], r[i][1] * s[1], r[i][2] * s[2] * qfac, q[i]];
        }
        return m;
    }
    [
        [s[0], 0.0, 0.0, 0.0],
        [0.0, s[1], 0.0, 0.0],
        [0.0, 0.0, s[2], 0.0],
    ]
}
