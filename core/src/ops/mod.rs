//! The generator's operators: convolution as virtual im2col + packed GEMM (`conv`), the
//! stride-2 transposed convolution as four phase convolutions (here), instance norm
//! (`norm`), the offset layer (`resample`) and the `no_std` scalar math (`math`).
//!
//! Crate-internal: [`crate::synthesize`] runs them over the planned scratch layout, which
//! is free to change with them. The `internals` feature makes this module public, with
//! standalone wrappers of each operator (`standalone.rs`) for the core's tests and the
//! benchmark; it is not part of the supported API.

pub(crate) mod conv;
pub mod math;
pub mod norm;
pub(crate) mod resample;
#[cfg(feature = "internals")]
mod standalone;

pub use conv::Activation;
#[cfg(feature = "internals")]
pub use conv::Padding;
#[cfg(feature = "internals")]
pub use norm::{instance_norm, instance_norm_residual, EPS};
#[cfg(feature = "internals")]
pub use standalone::{
    conv2d, conv_transpose2d, conv_transpose2d_output_size, conv_transpose2d_scratch_bytes,
    offset_layer, offset_layer_scratch_bytes, resample, Conv2d, MAX_CHANNELS,
};

use conv::{conv_rows, pack_a, ConvGeom, Dst, MapSource};

use crate::error::Error;
use crate::scratch::checked_product;

/// `Ok` iff `len` is the product of `factors` (computed checked: a product that overflows
/// `usize` is no slice length, so `BadShape`).
pub(crate) fn check_len(len: usize, factors: &[usize]) -> Result<(), Error> {
    match checked_product(factors) {
        Some(expected) if expected == len => Ok(()),
        _ => Err(Error::BadShape),
    }
}

/// Work parts `[a, b, prow, c]` of the 3×3 stride-2 transposed conv over `cin × h × w`:
/// per part the largest of its four phases', since the phases run one after another in
/// the same buffers (the plan sizes `up.0` and `up.1` with this too).
pub(crate) fn up_work_parts(cin: usize, cout: usize, h: usize, w: usize) -> [usize; 4] {
    let mut m = [0; 4];
    for py in 0..2 {
        for px in 0..2 {
            let p = ConvGeom::up_phase(cin, cout, h, w, py, px).parts();
            for (a, b) in m.iter_mut().zip(p) {
                *a = (*a).max(b);
            }
        }
    }
    m
}

/// Runs the four phases of a 3×3 stride-2 padding-1 output-padding-1 transposed conv.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transpose_phases<T: conv::Elem, D: conv::StoreElem>(
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    src: &mut MapSource<'_, T>,
    weight: &[u8],
    bias: &[u8],
    act: Activation,
    work: [&mut [f32]; 4],
    out: &mut [D],
) -> Result<(), Error> {
    let [a, b, prow, c] = work;
    for py in 0..2 {
        for px in 0..2 {
            let g = ConvGeom::up_phase(cin, cout, h, w, py, px);
            pack_a(&g, weight, a)?;
            let mut dst = Dst {
                data: &mut *out,
                chan_stride: 4 * h * w,
                row_stride: 2 * w,
                row_origin: 0,
            };
            conv_rows(&g, src, a, bias, act, 0..h, b, prow, c, &mut dst)?;
        }
    }
    Ok(())
}
