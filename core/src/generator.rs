//! The generator's forward pass (docs/DESIGN.md §2.1) over the scratch plan and the ops.

use half::f16;

use crate::config::Param::{self, Bias, Weight};
use crate::config::{ModelConfig, OffsetSite, TensorId};
use crate::error::Error;
use crate::ops::conv::{conv_rows, pack_a, Activation, ConvGeom, Dst, Elem, MapSource, StoreElem};
use crate::ops::conv_transpose_phases;
use crate::ops::norm::{instance_norm, instance_norm_residual};
use crate::ops::resample::{copy_map, offset_layer_full, OffsetSource, OffsetWork};
use crate::plan::{self, carve, step_parts, Geoms, Parts, Plan, A1, A2, A3, P, Q, R, U1, U2, WORK};
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
    check_buffers(&g, &plan, input.len(), output.len(), scratch.len())?;
    check_input_values(input)?;
    check_tensor_sizes(weights, &config)?;
    let net = Forward {
        weights,
        config,
        plan,
        g,
        pass,
    };
    let scratch = scratch::align(scratch)?;
    net.stem(scratch, input)?;
    net.down(scratch, 0)?;
    net.down(scratch, 1)?;
    net.first_block_offset(scratch)?;
    for block in 0..config.n_blocks {
        net.residual_block(scratch, block)?;
    }
    net.up(scratch, 0)?;
    net.up(scratch, 1)?;
    net.head(scratch, output)?;
    check_output_values(output)
}

/// The caller's buffers against the plan, before anything is read: input and output of
/// exactly the configuration's image size, and a scratch of at least the planned bytes
/// plus the slack that lets it start at any address.
fn check_buffers(
    g: &Geoms,
    plan: &Plan,
    input: usize,
    output: usize,
    scratch: usize,
) -> Result<(), Error> {
    let expected_in = g.cin * g.h * g.w;
    if input != expected_in {
        return Err(Error::InputSize {
            expected: expected_in,
            got: input,
        });
    }
    let expected_out = g.cout * g.h * g.w;
    if output != expected_out {
        return Err(Error::OutputSize {
            expected: expected_out,
            got: output,
        });
    }
    let needed = plan.total + ALIGN - 1;
    if scratch < needed {
        return Err(Error::ScratchTooSmall {
            needed,
            got: scratch,
        });
    }
    Ok(())
}

/// Every input value finite and within `±MAX_ABS_INPUT`: the generator was trained on
/// that range, so anything else is a caller error, not an image to run.
fn check_input_values(input: &[f32]) -> Result<(), Error> {
    // One pass: NaN fails `contains` too, then tells the two errors apart.
    match input
        .iter()
        .position(|v| !(-MAX_ABS_INPUT..=MAX_ABS_INPUT).contains(v))
    {
        Some(index) => Err(if input.get(index).is_some_and(|v| v.is_finite()) {
            Error::InputOutOfRange { index }
        } else {
            Error::NonFiniteInput { index }
        }),
        None => Ok(()),
    }
}

/// Every tensor of the configuration present and exactly as long as its spec, checked up
/// front so that a bad `Weights` fails before any layer runs, not half-way through.
fn check_tensor_sizes<W: Weights + ?Sized>(weights: &W, config: &ModelConfig) -> Result<(), Error> {
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
    Ok(())
}

/// Cheap (one pass over the output) and the guarantee callers rely on: `Ok` means every
/// value is finite.
fn check_output_values(output: &[f32]) -> Result<(), Error> {
    match output.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFiniteOutput { index }),
        None => Ok(()),
    }
}

/// The shape of the maps at one of the generator's three resolutions.
#[derive(Clone, Copy)]
struct Level {
    c: usize,
    h: usize,
    w: usize,
}

impl Level {
    /// Values of one map: `c · h · w`.
    fn len(self) -> usize {
        self.c * self.h * self.w
    }

    /// Values of one channel: `h · w`.
    fn plane(self) -> usize {
        self.h * self.w
    }

    /// `data` read as a map of this level's size (any channel count: the stem reads the
    /// caller's `in_channels` input at full resolution).
    fn map<T>(self, data: &[T]) -> MapSource<'_, T> {
        MapSource {
            data,
            h: self.h,
            w: self.w,
        }
    }
}

/// A layer's input map, output map and work buffer (see [`Forward::maps`]).
type LayerBuffers<'s> = (&'s mut [f16], &'s mut [f16], &'s mut [u8]);

/// One forward pass: the weights, the plan at this image size, and which pass runs. Its
/// methods are the generator's stages (docs/DESIGN.md §2.1), in the order `synthesize`
/// calls them; each carves its buffers out of the aligned scratch the plan laid out, so a
/// stage's reads and writes are exactly the plan's table.
struct Forward<'w, W: ?Sized> {
    weights: &'w W,
    config: ModelConfig,
    plan: Plan,
    g: Geoms,
    pass: Pass,
}

impl<W: Weights + ?Sized> Forward<'_, W> {
    /// Stem: [offset.input] ReflPad3 Conv7, IN, ReLU; the caller's input → `A1`.
    fn stem(&self, scratch: &mut [u8], input: &[f32]) -> Result<(), Error> {
        let full = self.level(0);
        let [a1, work] = carve(scratch, &self.plan, [A1, WORK])?;
        let a1 = as_f16(a1, full.len())?;
        self.conv(0, TensorId::Stem, full.map(input), work, &mut *a1)?;
        instance_norm(a1, full.c, full.plane(), true)
    }

    /// down.0 (`A1 → A2`), down.1 (`A2 → A3`): [offset] Conv3 s2, IN, ReLU.
    fn down(&self, scratch: &mut [u8], i: u8) -> Result<(), Error> {
        let (from, to) = (self.level(i), self.level(i + 1));
        let (src, dst) = if i == 0 { (A1, A2) } else { (A2, A3) };
        let step = usize::from(i) + 1;
        let (x, y, work) = self.maps(scratch, (src, from), (dst, to), step)?;
        self.conv(step, |p| TensorId::Down(i, p), from.map(&*x), work, &mut *y)?;
        instance_norm(y, to.c, to.plane(), true)
    }

    /// offset.block0 (`A3 → P`), materialised: its output is both the first block's input
    /// and its skip. The undeformed pass (or a configuration without it) copies the map.
    fn first_block_offset(&self, scratch: &mut [u8]) -> Result<(), Error> {
        let quarter = self.level(2);
        let (a3, p, work) = self.maps(scratch, (A3, quarter), (P, quarter), 3)?;
        let Some(o) = self.offset(OffsetSite::FirstBlock)? else {
            return copy_map(a3, p);
        };
        let parts = step_parts(&self.config, &self.g, 3);
        let mut bump = Bump::aligned(work);
        let [oa, ob, oprow, oc] = bump.conv_work(parts.conv())?;
        let offs = bump.f32s(parts.len[4])?;
        let mut work = o.work(oa, oprow, offs)?;
        offset_layer_full(&o.geom, &quarter.map(&*a3), &mut work, ob, oc, p)
    }

    /// Residual block `block`: `P ← P + IN(conv1(ReLU(IN(conv0(P)))))`, reflection
    /// padding 1, through `Q` and `R`.
    fn residual_block(&self, scratch: &mut [u8], block: u16) -> Result<(), Error> {
        let quarter = self.level(2);
        let [p, q, r, work] = carve(scratch, &self.plan, [P, Q, R, WORK + 4])?;
        let n = quarter.len();
        let (p, q, r) = (as_f16(p, n)?, as_f16(q, n)?, as_f16(r, n)?);
        let id = |conv| move |param| TensorId::Block { block, conv, param };
        self.conv(4, id(0), quarter.map(&*p), &mut *work, &mut *q)?;
        instance_norm(q, quarter.c, quarter.plane(), true)?;
        self.conv(4, id(1), quarter.map(&*q), work, &mut *r)?;
        instance_norm_residual(r, p, quarter.c, quarter.plane())
    }

    /// up.0 (`P → U1`), up.1 (`U1 → U2`): ConvT3 s2 p1 op1 as four phase convs, IN, ReLU.
    fn up(&self, scratch: &mut [u8], i: u8) -> Result<(), Error> {
        let (from, to) = (self.level(2 - i), self.level(1 - i));
        let (src, dst) = if i == 0 { (P, U1) } else { (U1, U2) };
        let step = usize::from(i) + 5;
        let (x, y, work) = self.maps(scratch, (src, from), (dst, to), step)?;
        let parts = step_parts(&self.config, &self.g, step);
        let mut x = from.map(&*x);
        let (wt, bs) = self.tensors(|p| TensorId::Up(i, p))?;
        let work = Bump::aligned(work).conv_work(parts.conv())?;
        let (c, h, w) = (from.c, from.h, from.w);
        conv_transpose_phases(
            c,
            to.c,
            h,
            w,
            &mut x,
            wt,
            bs,
            Activation::None,
            work,
            &mut *y,
        )?;
        instance_norm(y, to.c, to.plane(), true)
    }

    /// Head: ReflPad3 Conv7 Tanh, from `U2` straight into the caller's output.
    fn head(&self, scratch: &mut [u8], output: &mut [f32]) -> Result<(), Error> {
        let full = self.level(0);
        let [u2, work] = carve(scratch, &self.plan, [U2, WORK + 7])?;
        let u2 = as_f16(u2, full.len())?;
        self.conv(7, TensorId::Head, full.map(&*u2), work, output)
    }

    /// The maps at resolution `level` (0, 1, 2): `2^level · ngf` channels of
    /// `h / 2^level × w / 2^level`.
    fn level(&self, level: u8) -> Level {
        let k = 1usize << level;
        Level {
            c: k * self.g.ngf,
            h: self.g.h / k,
            w: self.g.w / k,
        }
    }

    /// A layer's two planned maps (`src` read at `from`, `dst` written at `to`) and the
    /// work buffer of step `step`, as disjoint views of the aligned scratch.
    fn maps<'s>(
        &self,
        scratch: &'s mut [u8],
        (src, from): (usize, Level),
        (dst, to): (usize, Level),
        step: usize,
    ) -> Result<LayerBuffers<'s>, Error> {
        let [x, y, work] = carve(scratch, &self.plan, [src, dst, WORK + step])?;
        Ok((as_f16(x, from.len())?, as_f16(y, to.len())?, work))
    }

    /// The weight and the bias `id` names. Their presence and sizes were checked before
    /// the first layer; a `Weights` that changes its mind is still an error, not a panic.
    fn tensors(&self, id: impl Fn(Param) -> TensorId) -> Result<(&[u8], &[u8]), Error> {
        let tensor = |id| {
            self.weights
                .tensor_bytes(id)
                .ok_or(Error::MissingTensor(id))
        };
        Ok((tensor(id(Weight))?, tensor(id(Bias))?))
    }

    /// The offset layer in front of the conv at `site`, where this pass runs one: the
    /// deformed pass, and only where the configuration has the layer.
    fn offset(&self, site: OffsetSite) -> Result<Option<OffsetArgs<'_>>, Error> {
        if self.pass != Pass::Deformed || !self.config.offset_layers.contains(site) {
            return Ok(None);
        }
        let (weight, bias) = self.tensors(|p| TensorId::Offset(site, p))?;
        Ok(Some(OffsetArgs {
            geom: self.g.off[site as usize],
            weight,
            bias,
        }))
    }

    /// The conv of step `step` (0, 1, 2: stem, down.0, down.1; 4: a block conv; 7: the
    /// head): its geometry, the offset site in front of it (the encoder's convs only) and
    /// its fused activation (tanh at the head alone).
    fn conv_of(&self, step: usize) -> (&ConvGeom, Option<OffsetSite>, Activation) {
        let g = &self.g;
        match step {
            0 => (&g.stem, Some(OffsetSite::Input), Activation::None),
            1 => (&g.down0, Some(OffsetSite::Down1), Activation::None),
            2 => (&g.down1, Some(OffsetSite::Down2), Activation::None),
            4 => (&g.block, None, Activation::None),
            _ => (&g.head, None, Activation::Tanh),
        }
    }

    /// The conv of step `step` ([`Self::conv_of`]) with the tensors `id` names, reading
    /// `x` (through the step's offset layer where this pass runs one) into `out`.
    fn conv<T: Elem, D: StoreElem>(
        &self,
        step: usize,
        id: impl Fn(Param) -> TensorId,
        x: MapSource<'_, T>,
        work: &mut [u8],
        out: &mut [D],
    ) -> Result<(), Error> {
        let (geom, site, act) = self.conv_of(step);
        let parts = step_parts(&self.config, &self.g, step);
        let (weight, bias) = self.tensors(id)?;
        let offset = match site {
            Some(site) => self.offset(site)?,
            None => None,
        };
        conv_step(&parts, geom, x, offset, weight, bias, act, work, out)
    }
}

/// An active offset layer in front of a conv.
struct OffsetArgs<'a> {
    geom: ConvGeom,
    weight: &'a [u8],
    bias: &'a [u8],
}

impl<'a> OffsetArgs<'a> {
    /// The offset conv's work: its weights packed into `a`, with its bias, padded-row and
    /// offset-strip buffers (both callers carve these from their own step's parts).
    fn work<'b>(
        &self,
        a: &'b mut [f32],
        prow: &'b mut [f32],
        offs: &'b mut [f32],
    ) -> Result<OffsetWork<'b>, Error>
    where
        'a: 'b,
    {
        pack_a(&self.geom, self.weight, a)?;
        Ok(OffsetWork {
            a,
            bias: self.bias,
            prow,
            offs,
        })
    }
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
            let work = o.work(oa, oprow, offs)?;
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
