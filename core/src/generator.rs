//! The generator's forward pass (docs/DESIGN.md §2.1) over the scratch plan and the ops.

use crate::config::Param::{Bias, Weight};
use crate::config::{ModelConfig, OffsetSite, TensorId};
use crate::error::Error;
use crate::ops::conv::{conv_rows, pack_a, Activation, ConvGeom, Dst, Elem, MapSource, StoreElem};
use crate::ops::conv_transpose_phases;
use crate::ops::norm::{instance_norm, instance_norm_residual};
use crate::ops::resample::{copy_map, offset_layer_full, OffsetSource, OffsetWork};
use crate::plan::{self, carve, step_parts, Parts, A1, A2, A3, P, Q, R, U1, U2, WORK};
use crate::scratch::{self, as_f16, Bump, ALIGN};

/// Read access to a generator's tensors: its configuration and each tensor's raw
/// little-endian bytes (fp16 weights in PyTorch layout, f32 biases; no alignment needed).
///
/// Implemented by the weight-file reader; tests implement it over in-memory arrays.
pub trait Weights {
    /// The generator's configuration.
    fn config(&self) -> ModelConfig;
    /// The bytes of tensor `id`, or `None` if absent.
    fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]>;
}

impl<W: Weights + ?Sized> Weights for &W {
    fn config(&self) -> ModelConfig {
        (**self).config()
    }
    fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]> {
        (**self).tensor_bytes(id)
    }
}

/// Which of the two passes over the same weights to run (docs/DESIGN.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `G`: offset layers active (the target domain's geometry).
    Deformed,
    /// `G~`: offset layers bypassed, identical to zero offsets (aligned with the source).
    Undeformed,
}

/// Largest input magnitude [`synthesize`] accepts: the generator's input is normalised
/// into the tanh range `[-1, 1]` (the preprocessing clamps to it, see
/// [`crate::Normalization::to_generator`]), so anything outside is a caller error.
pub const MAX_ABS_INPUT: f32 = 1.0;

/// Runs the generator on one `in_channels × height × width` image (CHW f32, normalised
/// into `[-1, 1]`) into `output` (`out_channels × height × width`, tanh range), using
/// only `scratch` (at least [`crate::required_scratch_bytes`] bytes, any alignment).
///
/// Every failure is an [`Error`]: bad sizes, a scratch one byte short, a NaN in the input
/// or a value outside `[-MAX_ABS_INPUT, MAX_ABS_INPUT]`, a missing or mis-sized tensor,
/// and activations or an output that became non-finite (possible only with non-finite
/// weights, i.e. ones that did not come through [`crate::WeightFile::new_checked`]: fp16
/// activations saturate at ±65504 rather than overflow): `Ok` always means a finite
/// output. Nothing is allocated; nothing panics.
pub fn synthesize<W: Weights + ?Sized>(
    weights: &W,
    input: &[f32],
    height: usize,
    width: usize,
    pass: Pass,
    scratch: &mut [u8],
    output: &mut [f32],
) -> Result<(), Error> {
    let config = weights.config();
    let (plan, g) = plan::plan(&config, height, width)?;
    let (h, w) = (height, width);
    let expected_in = g.cin * h * w;
    if input.len() != expected_in {
        return Err(Error::InputSize {
            expected: expected_in,
            got: input.len(),
        });
    }
    let expected_out = g.cout * h * w;
    if output.len() != expected_out {
        return Err(Error::OutputSize {
            expected: expected_out,
            got: output.len(),
        });
    }
    let needed = plan.total + ALIGN - 1;
    if scratch.len() < needed {
        return Err(Error::ScratchTooSmall {
            needed,
            got: scratch.len(),
        });
    }
    // One pass: NaN fails `contains` too, then tells the two errors apart.
    if let Some(index) = input
        .iter()
        .position(|v| !(-MAX_ABS_INPUT..=MAX_ABS_INPUT).contains(v))
    {
        return Err(if input.get(index).is_some_and(|v| v.is_finite()) {
            Error::InputOutOfRange { index }
        } else {
            Error::NonFiniteInput { index }
        });
    }
    for spec in config.tensors() {
        let bytes = weights
            .tensor_bytes(spec.id)
            .ok_or(Error::MissingTensor(spec.id))?;
        if bytes.len() as u64 != spec.byte_len() {
            return Err(Error::TensorSize {
                id: spec.id,
                expected: usize::try_from(spec.byte_len()).unwrap_or(usize::MAX),
                got: bytes.len(),
            });
        }
    }
    let t = |id: TensorId| weights.tensor_bytes(id).ok_or(Error::MissingTensor(id));
    let offset = |site: OffsetSite| -> Result<Option<OffsetArgs<'_>>, Error> {
        if pass == Pass::Deformed && config.offset_layers.contains(site) {
            Ok(Some(OffsetArgs {
                geom: g.off[site as usize],
                weight: t(TensorId::Offset(site, Weight))?,
                bias: t(TensorId::Offset(site, Bias))?,
            }))
        } else {
            Ok(None)
        }
    };
    let scratch = scratch::align(scratch)?;
    let (ngf, h2, w2, h4, w4) = (g.ngf, h / 2, w / 2, h / 4, w / 4);
    let n1 = ngf * h * w;
    let n2 = 2 * ngf * h2 * w2;
    let n4 = 4 * ngf * h4 * w4;

    // Stem: [offset.input] ReflPad3 Conv7 IN ReLU.
    {
        let [a1, work] = carve(&mut *scratch, &plan, [A1, WORK])?;
        let a1 = as_f16(a1, n1)?;
        let x = MapSource { data: input, h, w };
        let parts = step_parts(&config, &g, 0);
        let (wt, bs) = (t(TensorId::Stem(Weight))?, t(TensorId::Stem(Bias))?);
        conv_step(
            &parts,
            &g.stem,
            x,
            offset(OffsetSite::Input)?,
            wt,
            bs,
            Activation::None,
            work,
            a1,
        )?;
        instance_norm(a1, ngf, h * w, true)?;
    }
    // down.0 and down.1: [offset] Conv3 s2 IN ReLU.
    {
        let [a1, a2, work] = carve(&mut *scratch, &plan, [A1, A2, WORK + 1])?;
        let (a1, a2) = (as_f16(a1, n1)?, as_f16(a2, n2)?);
        let x = MapSource { data: &*a1, h, w };
        let parts = step_parts(&config, &g, 1);
        let (wt, bs) = (t(TensorId::Down(0, Weight))?, t(TensorId::Down(0, Bias))?);
        conv_step(
            &parts,
            &g.down0,
            x,
            offset(OffsetSite::Down1)?,
            wt,
            bs,
            Activation::None,
            work,
            a2,
        )?;
        instance_norm(a2, 2 * ngf, h2 * w2, true)?;
    }
    {
        let [a2, a3, work] = carve(&mut *scratch, &plan, [A2, A3, WORK + 2])?;
        let (a2, a3) = (as_f16(a2, n2)?, as_f16(a3, n4)?);
        let x = MapSource {
            data: &*a2,
            h: h2,
            w: w2,
        };
        let parts = step_parts(&config, &g, 2);
        let (wt, bs) = (t(TensorId::Down(1, Weight))?, t(TensorId::Down(1, Bias))?);
        conv_step(
            &parts,
            &g.down1,
            x,
            offset(OffsetSite::Down2)?,
            wt,
            bs,
            Activation::None,
            work,
            a3,
        )?;
        instance_norm(a3, 4 * ngf, h4 * w4, true)?;
    }
    // offset.block0, materialised: its output is both the first block's input and skip.
    {
        let [a3, p, work] = carve(&mut *scratch, &plan, [A3, P, WORK + 3])?;
        let (a3, p) = (as_f16(a3, n4)?, as_f16(p, n4)?);
        match offset(OffsetSite::FirstBlock)? {
            Some(o) => {
                let parts = step_parts(&config, &g, 3);
                let mut bump = Bump::aligned(work);
                let [oa, ob, oprow, oc] = bump.conv_work(parts.conv())?;
                let offs = bump.f32s(parts.len[4])?;
                pack_a(&o.geom, o.weight, oa)?;
                let mut work = OffsetWork {
                    a: oa,
                    bias: o.bias,
                    prow: oprow,
                    offs,
                };
                let x = MapSource {
                    data: &*a3,
                    h: h4,
                    w: w4,
                };
                offset_layer_full(&o.geom, &x, &mut work, ob, oc, p)?;
            }
            None => copy_map(a3, p)?,
        }
    }
    // Residual blocks: x ← x + IN(conv1(ReLU(IN(conv0(x))))), reflection padding 1.
    for block in 0..config.n_blocks {
        let [p, q, r, work] = carve(&mut *scratch, &plan, [P, Q, R, WORK + 4])?;
        let (p, q, r) = (as_f16(p, n4)?, as_f16(q, n4)?, as_f16(r, n4)?);
        let parts = step_parts(&config, &g, 4);
        let id = |conv, param| TensorId::Block { block, conv, param };
        let x = MapSource {
            data: &*p,
            h: h4,
            w: w4,
        };
        let (wt, bs) = (t(id(0, Weight))?, t(id(0, Bias))?);
        conv_step(
            &parts,
            &g.block,
            x,
            None,
            wt,
            bs,
            Activation::None,
            &mut *work,
            &mut *q,
        )?;
        instance_norm(q, 4 * ngf, h4 * w4, true)?;
        let x = MapSource {
            data: &*q,
            h: h4,
            w: w4,
        };
        let (wt, bs) = (t(id(1, Weight))?, t(id(1, Bias))?);
        conv_step(
            &parts,
            &g.block,
            x,
            None,
            wt,
            bs,
            Activation::None,
            work,
            &mut *r,
        )?;
        instance_norm_residual(r, p, 4 * ngf, h4 * w4)?;
    }
    // up.0, up.1: ConvT3 s2 p1 op1, IN, ReLU.
    {
        let [p, u1, work] = carve(&mut *scratch, &plan, [P, U1, WORK + 5])?;
        let (p, u1) = (as_f16(p, n4)?, as_f16(u1, n2)?);
        let parts = step_parts(&config, &g, 5);
        let mut x = MapSource {
            data: &*p,
            h: h4,
            w: w4,
        };
        let (wt, bs) = (t(TensorId::Up(0, Weight))?, t(TensorId::Up(0, Bias))?);
        let mut bump = Bump::aligned(work);
        let wk = bump.conv_work(parts.conv())?;
        conv_transpose_phases(
            4 * ngf,
            2 * ngf,
            h4,
            w4,
            &mut x,
            wt,
            bs,
            Activation::None,
            wk,
            &mut *u1,
        )?;
        instance_norm(u1, 2 * ngf, h2 * w2, true)?;
    }
    {
        let [u1, u2, work] = carve(&mut *scratch, &plan, [U1, U2, WORK + 6])?;
        let (u1, u2) = (as_f16(u1, n2)?, as_f16(u2, n1)?);
        let parts = step_parts(&config, &g, 6);
        let mut x = MapSource {
            data: &*u1,
            h: h2,
            w: w2,
        };
        let (wt, bs) = (t(TensorId::Up(1, Weight))?, t(TensorId::Up(1, Bias))?);
        let mut bump = Bump::aligned(work);
        let wk = bump.conv_work(parts.conv())?;
        conv_transpose_phases(
            2 * ngf,
            ngf,
            h2,
            w2,
            &mut x,
            wt,
            bs,
            Activation::None,
            wk,
            &mut *u2,
        )?;
        instance_norm(u2, ngf, h * w, true)?;
    }
    // Head: ReflPad3 Conv7 Tanh, straight into the caller's output.
    {
        let [u2, work] = carve(&mut *scratch, &plan, [U2, WORK + 7])?;
        let u2 = as_f16(u2, n1)?;
        let parts = step_parts(&config, &g, 7);
        let x = MapSource { data: &*u2, h, w };
        let (wt, bs) = (t(TensorId::Head(Weight))?, t(TensorId::Head(Bias))?);
        conv_step(
            &parts,
            &g.head,
            x,
            None,
            wt,
            bs,
            Activation::Tanh,
            work,
            &mut *output,
        )?;
    }
    // Cheap (one pass over the output) and the guarantee callers rely on: `Ok` means
    // every value is finite.
    match output.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFiniteOutput { index }),
        None => Ok(()),
    }
}

/// An active offset layer in front of a conv.
struct OffsetArgs<'a> {
    geom: ConvGeom,
    weight: &'a [u8],
    bias: &'a [u8],
}

/// One conv layer, reading `x` directly or through an offset layer's strip resampler.
#[allow(clippy::too_many_arguments)]
fn conv_step<T: Elem, D: StoreElem>(
    parts: &Parts,
    conv: &ConvGeom,
    x: MapSource<'_, T>,
    offset: Option<OffsetArgs<'_>>,
    weight: &[u8],
    bias: &[u8],
    act: Activation,
    work: &mut [u8],
    out: &mut [D],
) -> Result<(), Error> {
    let mut bump = Bump::aligned(work);
    let [a, b, prow, c] = bump.conv_work(parts.conv())?;
    pack_a(conv, weight, a)?;
    let mut dst = Dst {
        data: out,
        chan_stride: conv.out_h * conv.out_w,
        row_stride: conv.out_w,
        row_origin: 0,
    };
    match offset {
        Some(o) => {
            if parts.n < 8 {
                return Err(Error::Internal);
            }
            let oa = bump.f32s(parts.len[4])?;
            let oprow = bump.f32s(parts.len[5])?;
            let offs = bump.f32s(parts.len[6])?;
            let ring = bump.f32s(parts.len[7])?;
            pack_a(&o.geom, o.weight, oa)?;
            let work = OffsetWork {
                a: oa,
                bias: o.bias,
                prow: oprow,
                offs,
            };
            let mut src = OffsetSource::new(x, o.geom, work, ring, conv.tile_span());
            conv_rows(
                conv,
                &mut src,
                a,
                bias,
                act,
                0..conv.out_h,
                b,
                prow,
                c,
                &mut dst,
            )
        }
        None => {
            let mut src = x;
            conv_rows(
                conv,
                &mut src,
                a,
                bias,
                act,
                0..conv.out_h,
                b,
                prow,
                c,
                &mut dst,
            )
        }
    }
}

impl Weights for crate::format::WeightFile<'_> {
    fn config(&self) -> ModelConfig {
        crate::format::WeightFile::config(self)
    }
    fn tensor_bytes(&self, id: TensorId) -> Option<&[u8]> {
        self.tensor(id).map(|v| v.bytes)
    }
}
