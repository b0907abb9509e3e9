//! The operators as standalone functions (the `internals` feature): each takes f32 CHW
//! maps in and out, weights as little-endian bytes exactly as the weight file stores them
//! (conv OIHW fp16, transposed conv IOHW fp16, bias f32; no alignment needed), and a caller
//! scratch buffer sized by its `*_scratch_bytes` function.
//!
//! They exist so that the core's tests can check every operator against a reference on
//! its own, and run the same kernels [`crate::synthesize`] runs; the generator itself
//! goes through the scratch plan instead. Every shape is checked before any size is
//! computed, so hostile arguments are errors, never overflows.

use super::conv::{conv_rows, pack_a, Activation, ConvGeom, Dst, MapSource, Padding};
use super::resample::{self, offs_len, offset_geom, offset_layer_full, OffsetWork};
use super::{check_len, conv_transpose_phases, up_work_parts};
use crate::config::OffsetForm;
use crate::error::Error;
use crate::scratch::{f32_region_bytes, Bump, ALIGN, MAX_SIZE};

/// A plain 2-D convolution's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel side (1..=7).
    pub kernel: usize,
    /// Stride (1..=8).
    pub stride: usize,
    /// Padding on every side (0..=7; reflect needs `padding < height, width`).
    pub padding: usize,
    /// Padding mode.
    pub pad_mode: Padding,
}

/// Largest channel count the building-block wrappers accept (the generator's widest layer
/// has `2 · 4 · MAX_NGF` offset channels).
pub const MAX_CHANNELS: usize = 8192;

/// Rejects shapes whose buffer sizes could overflow `usize`: checked first, before any
/// size is computed in `usize`, so that the wrappers' own arithmetic cannot overflow.
fn check_dims(channels: &[usize], h: usize, w: usize) -> Result<(), Error> {
    let ok_ch = channels.iter().all(|&c| (1..=MAX_CHANNELS).contains(&c));
    if !ok_ch || h == 0 || w == 0 || h > MAX_SIZE || w > MAX_SIZE {
        return Err(Error::BadShape);
    }
    // Largest products any buffer of these ops takes, in u64 (all factors are bounded
    // above, so these cannot overflow): a map of up to `MAX_CHANNELS · 49` f32 rows, and
    // the packed weights (`cout` rounded up to the micro-kernel height, times `cin · 49`).
    let cmax = channels.iter().copied().max().unwrap_or(0) as u64;
    let maps = MAX_CHANNELS as u64 * 49 * h as u64 * w as u64 * 16;
    let weights = (cmax + 16) * (cmax + 16) * 49 * 16;
    usize::try_from(maps.max(weights))
        .map(|_| ())
        .map_err(|_| Error::BadShape)
}

impl Conv2d {
    fn geom(&self) -> Result<ConvGeom, Error> {
        check_dims(
            &[self.in_channels, self.out_channels],
            self.height,
            self.width,
        )?;
        if self.padding > 7 || self.stride > 8 {
            return Err(Error::BadShape);
        }
        ConvGeom::conv(
            self.in_channels,
            self.out_channels,
            self.height,
            self.width,
            self.kernel,
            self.stride,
            self.padding,
            self.pad_mode,
        )
        .ok_or(Error::BadShape)
    }

    /// Output `(height, width)`: `(size + 2·padding − kernel) / stride + 1`.
    pub fn output_size(&self) -> Result<(usize, usize), Error> {
        let g = self.geom()?;
        Ok((g.out_h, g.out_w))
    }

    /// Scratch bytes [`conv2d`] needs for this shape.
    pub fn scratch_bytes(&self) -> Result<usize, Error> {
        scratch_bytes_of(&self.geom()?.parts())
    }
}

/// Bytes of the f32 work regions `parts` plus the `ALIGN − 1` bytes that let a scratch
/// start at any address; `BadShape` if that overflows `usize`.
fn scratch_bytes_of(parts: &[usize]) -> Result<usize, Error> {
    parts
        .iter()
        .try_fold(ALIGN - 1, |sum: usize, &n| {
            sum.checked_add(f32_region_bytes(n)?)
        })
        .ok_or(Error::BadShape)
}

/// `output = act(conv(input) + bias)`; `input` is `C_in × H × W`, `output` `C_out × H' × W'`.
pub fn conv2d(
    shape: &Conv2d,
    input: &[f32],
    weight: &[u8],
    bias: &[u8],
    act: Activation,
    scratch: &mut [u8],
    output: &mut [f32],
) -> Result<(), Error> {
    let g = shape.geom()?;
    check_len(input.len(), &[g.cin, g.in_h, g.in_w])?;
    check_len(output.len(), &[g.cout, g.out_h, g.out_w])?;
    check_len(weight.len(), &[2, g.cout, g.cin, g.ksize, g.ksize])?;
    check_len(bias.len(), &[4, g.cout])?;
    let needed = shape.scratch_bytes()?;
    if scratch.len() < needed {
        return Err(Error::ScratchTooSmall {
            needed,
            got: scratch.len(),
        });
    }
    let mut bump = Bump::new(scratch)?;
    let [a, b, prow, c] = bump.conv_work(g.parts())?;
    pack_a(&g, weight, a)?;
    let mut src = MapSource {
        data: input,
        h: g.in_h,
        w: g.in_w,
    };
    let mut dst = Dst {
        data: output,
        chan_stride: g.out_h * g.out_w,
        row_stride: g.out_w,
        row_origin: 0,
    };
    conv_rows(&g, &mut src, a, bias, act, 0..g.out_h, b, prow, c, &mut dst)
}

/// PyTorch's `ConvTranspose2d` output size (dilation 1):
/// `(size − 1)·stride − 2·padding + kernel + output_padding`.
///
/// `BadShape` wherever PyTorch refuses the layer or the size: `size`, `kernel` or
/// `stride` zero, `output_padding ≥ stride` (PyTorch: "output padding must be smaller
/// than either stride or dilation"), a result below 1, or arithmetic that overflows
/// `usize`.
pub fn conv_transpose2d_output_size(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<usize, Error> {
    if size == 0 || kernel == 0 || stride == 0 || output_padding >= stride {
        return Err(Error::BadShape);
    }
    let grown = (size - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(kernel))
        .and_then(|v| v.checked_add(output_padding))
        .ok_or(Error::BadShape)?;
    match padding.checked_mul(2).and_then(|p| grown.checked_sub(p)) {
        Some(out) if out >= 1 => Ok(out),
        _ => Err(Error::BadShape),
    }
}

/// Scratch bytes [`conv_transpose2d`] needs.
pub fn conv_transpose2d_scratch_bytes(
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
) -> Result<usize, Error> {
    check_dims(&[cin, cout], h, w)?;
    scratch_bytes_of(&up_work_parts(cin, cout, h, w))
}

/// `ConvTranspose2d(cin, cout, 3, stride 2, padding 1, output_padding 1)`: `input`
/// `cin × h × w`, `weight` IOHW fp16 LE, `output` `cout × 2h × 2w`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    input: &[f32],
    weight: &[u8],
    bias: &[u8],
    act: Activation,
    scratch: &mut [u8],
    output: &mut [f32],
) -> Result<(), Error> {
    let needed = conv_transpose2d_scratch_bytes(cin, cout, h, w)?;
    check_len(input.len(), &[cin, h, w])?;
    check_len(output.len(), &[cout, 4, h, w])?;
    check_len(weight.len(), &[2, cin, cout, 9])?;
    check_len(bias.len(), &[4, cout])?;
    if scratch.len() < needed {
        return Err(Error::ScratchTooSmall {
            needed,
            got: scratch.len(),
        });
    }
    let mut bump = Bump::new(scratch)?;
    let work = bump.conv_work(up_work_parts(cin, cout, h, w))?;
    let mut src = MapSource { data: input, h, w };
    conv_transpose_phases(cin, cout, h, w, &mut src, weight, bias, act, work, output)
}

/// The number of fields an offset layer of `form` over `c` channels predicts (the caller
/// has checked `c ≤ MAX_CHANNELS`, so `c` fits a `u32`).
fn fields_of(form: OffsetForm, c: usize) -> usize {
    form.fields(c as u32) as usize
}

/// The offset conv's geometry and work parts; checks the shape before computing any size.
fn offset_parts(
    c: usize,
    form: OffsetForm,
    h: usize,
    w: usize,
) -> Result<(ConvGeom, [usize; 5]), Error> {
    // The offset conv has at most `2c` output channels (`c ≤ MAX_CHANNELS` keeps `2c` exact).
    check_dims(&[c, 2 * c.min(MAX_CHANNELS)], h, w)?;
    let g = offset_geom(c, fields_of(form, c), h, w).ok_or(Error::BadShape)?;
    let [a, b, r, acc] = g.parts();
    Ok((g, [a, b, r, acc, offs_len(&g)]))
}

/// Scratch bytes [`offset_layer`] needs.
pub fn offset_layer_scratch_bytes(
    c: usize,
    form: OffsetForm,
    h: usize,
    w: usize,
) -> Result<usize, Error> {
    scratch_bytes_of(&offset_parts(c, form, h, w)?.1)
}

/// The offset layer over `c × h × w` with fields of `form` (`F` = `c` or 1): offsets from a
/// 3×3 'same' zero-padded conv (`weight` `[2F, c, 3, 3]` fp16 LE, `bias` `[2F]` f32 LE),
/// then border-clamped bilinear resampling of each channel at its field. `output` has the
/// input's shape. Offsets that come out NaN or infinite are [`Error::NonFiniteActivation`].
#[allow(clippy::too_many_arguments)]
pub fn offset_layer(
    c: usize,
    form: OffsetForm,
    h: usize,
    w: usize,
    input: &[f32],
    weight: &[u8],
    bias: &[u8],
    scratch: &mut [u8],
    output: &mut [f32],
) -> Result<(), Error> {
    let (g, parts) = offset_parts(c, form, h, w)?;
    let fields = fields_of(form, c);
    check_len(input.len(), &[c, h, w])?;
    check_len(output.len(), &[c, h, w])?;
    check_len(weight.len(), &[2, 2, fields, c, 9])?;
    check_len(bias.len(), &[4, 2, fields])?;
    let needed = scratch_bytes_of(&parts)?;
    if scratch.len() < needed {
        return Err(Error::ScratchTooSmall {
            needed,
            got: scratch.len(),
        });
    }
    let [na, nb, nr, nc, no] = parts;
    let mut bump = Bump::new(scratch)?;
    let [a, b, prow, acc] = bump.conv_work([na, nb, nr, nc])?;
    let offs = bump.f32s(no)?;
    pack_a(&g, weight, a)?;
    let x = MapSource { data: input, h, w };
    let mut work = OffsetWork {
        a,
        bias,
        prow,
        offs,
    };
    offset_layer_full(&g, &x, &mut work, b, acc, output)
}

/// Bilinear resampling with border clamping and explicit offsets of `form`: `offsets` is
/// `2F × h × w` (channel `2f` = dy, `2f + 1` = dx of field `f`, in pixels; `F` = `c` or 1).
/// A NaN or infinite offset is [`Error::NonFiniteActivation`] (clamping would silently
/// turn it into a border sample).
pub fn resample(
    c: usize,
    form: OffsetForm,
    h: usize,
    w: usize,
    input: &[f32],
    offsets: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    check_dims(&[c, 2 * c.min(MAX_CHANNELS)], h, w)?;
    let fields = fields_of(form, c);
    check_len(input.len(), &[c, h, w])?;
    check_len(offsets.len(), &[2, fields, h, w])?;
    check_len(output.len(), &[c, h, w])?;
    let x = MapSource { data: input, h, w };
    resample::resample_rows(&x, c, fields, offsets, h, 0, h, output, h * w, |y| y)
}
