//! The generator's configuration and the canonical list of its tensors.
//!
//! This module is the single source of truth for *which* tensors a generator has, their
//! shapes, dtypes, order and names. The weight-file writer and reader, the inference plan
//! and the trainer's parameter names (`TensorId`'s `Display`) are all derived from it, so a
//! checkpoint maps one-to-one onto a weight file.
//!
//! Architecture (CycleGAN `ResnetGenerator` + DicycleGAN offset layers, docs/DESIGN.md §2.1):
//! ```text
//! [offset.input] ReflPad3 Conv7(in→ngf) IN ReLU          = stem
//! [offset.down1] Conv3 s2 p1 (ngf→2ngf) IN ReLU           = down.0
//! [offset.down2] Conv3 s2 p1 (2ngf→4ngf) IN ReLU          = down.1
//! [offset.block0] n × ResBlock(4ngf): ReflPad1 Conv3 IN ReLU ReflPad1 Conv3 IN, + skip
//!                                                          = blocks.i.conv0 / conv1
//! ConvT3 s2 p1 op1 (4ngf→2ngf) IN ReLU                     = up.0
//! ConvT3 s2 p1 op1 (2ngf→ngf) IN ReLU                      = up.1
//! ReflPad3 Conv7(ngf→out) Tanh                             = head
//! ```
//! An offset layer over `C` channels is a 3×3 'same' (zero-padded) convolution `C → 2F`
//! predicting `F` displacement fields ([`OffsetForm`]: `F = C` per-channel, `F = 1`
//! shared): output channel `2f` is the row offset `dy` and `2f + 1` the column offset `dx`
//! (in feature-map pixels) of field `f`; channel `c` is then resampled bilinearly at
//! `(y + dy, x + dx)` of its field (field `c`, or the single shared one) with border
//! clamping.

use core::fmt;

/// Largest supported number of input or output image channels.
pub const MAX_IMAGE_CHANNELS: u16 = 64;
/// Largest supported base width `ngf` (the widest layer has `4 · ngf` channels).
pub const MAX_NGF: u16 = 1024;
/// Largest supported number of residual blocks.
pub const MAX_BLOCKS: u16 = 256;

/// Where an offset layer may sit: in front of the input conv block, of each of the two
/// down-sampling blocks, and of the first residual block (docs/DESIGN.md §2.2, [paper]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetSite {
    /// In front of the 7×7 input conv block (over the image channels).
    Input = 0,
    /// In front of the first stride-2 conv block (over `ngf` channels).
    Down1 = 1,
    /// In front of the second stride-2 conv block (over `2·ngf` channels).
    Down2 = 2,
    /// In front of the first residual block (over `4·ngf` channels).
    FirstBlock = 3,
}

impl OffsetSite {
    /// All sites in forward order.
    pub const ALL: [OffsetSite; 4] = [
        OffsetSite::Input,
        OffsetSite::Down1,
        OffsetSite::Down2,
        OffsetSite::FirstBlock,
    ];

    /// The site's bit in [`OffsetLayers`].
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Short stable name used in tensor names (`offset.<name>.weight`).
    pub const fn name(self) -> &'static str {
        match self {
            OffsetSite::Input => "input",
            OffsetSite::Down1 => "down1",
            OffsetSite::Down2 => "down2",
            OffsetSite::FirstBlock => "block0",
        }
    }

    /// The site called `name` ([`Self::name`]), if any.
    pub fn from_name(name: &str) -> Option<OffsetSite> {
        Self::ALL.into_iter().find(|site| site.name() == name)
    }

    /// Number of feature channels the offset layer at this site resamples.
    pub const fn channels(self, config: &ModelConfig) -> u32 {
        let ngf = config.ngf as u32;
        match self {
            OffsetSite::Input => config.in_channels as u32,
            OffsetSite::Down1 => ngf,
            OffsetSite::Down2 => 2 * ngf,
            OffsetSite::FirstBlock => 4 * ngf,
        }
    }

    const fn from_index(index: u32) -> Option<OffsetSite> {
        match index {
            0 => Some(OffsetSite::Input),
            1 => Some(OffsetSite::Down1),
            2 => Some(OffsetSite::Down2),
            3 => Some(OffsetSite::FirstBlock),
            _ => None,
        }
    }
}

/// What an offset layer predicts at each pixel: the field's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OffsetForm {
    /// One `(dy, dx)` per input channel (the "ConvOffset2D" form): the offset conv maps
    /// `C → 2C`. Each channel may move on its own, so the layer can also act as a
    /// per-channel sub-pixel filter, i.e. change appearance as well as geometry.
    #[default]
    PerChannel = 0,
    /// One `(dy, dx)` shared by all channels (Dai et al.'s deformable conv with one
    /// deformable group): the offset conv maps `C → 2`. The layer can only move features,
    /// never re-colour them.
    Shared = 1,
}

impl OffsetForm {
    /// Both forms, in the order of their stored values.
    pub const ALL: [OffsetForm; 2] = [OffsetForm::PerChannel, OffsetForm::Shared];

    /// Displacement fields predicted for an offset layer over `channels` channels.
    pub const fn fields(self, channels: u32) -> u32 {
        match self {
            OffsetForm::PerChannel => channels,
            OffsetForm::Shared => 1,
        }
    }

    /// Short stable name (`per-channel`, `shared`), as in the trainer's configuration files.
    pub const fn name(self) -> &'static str {
        match self {
            OffsetForm::PerChannel => "per-channel",
            OffsetForm::Shared => "shared",
        }
    }

    /// The form called `name` ([`Self::name`]), if any.
    pub fn from_name(name: &str) -> Option<OffsetForm> {
        Self::ALL.into_iter().find(|form| form.name() == name)
    }

    /// The form stored as `raw` in a weight file's header, if any.
    pub const fn from_u8(raw: u8) -> Option<OffsetForm> {
        match raw {
            0 => Some(OffsetForm::PerChannel),
            1 => Some(OffsetForm::Shared),
            _ => None,
        }
    }
}

/// Which of the four offset layers a generator has (a bit set over [`OffsetSite`]) and the
/// form of their fields (one form for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OffsetLayers {
    sites: u8,
    form: OffsetForm,
}

impl OffsetLayers {
    /// No offset layers: the plain CycleGAN generator.
    pub const NONE: OffsetLayers = OffsetLayers {
        sites: 0,
        form: OffsetForm::PerChannel,
    };
    /// All four offset layers, per-channel: the paper's DicycleGAN generator.
    pub const ALL: OffsetLayers = OffsetLayers {
        sites: 0b1111,
        form: OffsetForm::PerChannel,
    };

    /// Per-channel layers at the sites in `bits`; `None` if a bit outside the four sites is
    /// set.
    pub const fn from_bits(bits: u8) -> Option<OffsetLayers> {
        if bits & !Self::ALL.sites == 0 {
            Some(OffsetLayers {
                sites: bits,
                form: OffsetForm::PerChannel,
            })
        } else {
            None
        }
    }

    /// The sites' bits (bit `i` = [`OffsetSite`] with discriminant `i`).
    pub const fn bits(self) -> u8 {
        self.sites
    }

    /// The form of every layer's field.
    pub const fn form(self) -> OffsetForm {
        self.form
    }

    /// The same sites with fields of `form`. (A form on an empty set fails
    /// [`ModelConfig::validate`]: one configuration, one description.)
    pub const fn with_form(self, form: OffsetForm) -> OffsetLayers {
        OffsetLayers {
            sites: self.sites,
            form,
        }
    }

    /// Whether the layer at `site` is present.
    pub const fn contains(self, site: OffsetSite) -> bool {
        self.sites & site.bit() != 0
    }

    /// This set with `site` added.
    pub const fn with(self, site: OffsetSite) -> OffsetLayers {
        OffsetLayers {
            sites: self.sites | site.bit(),
            form: self.form,
        }
    }

    /// Number of offset layers present.
    pub const fn count(self) -> u32 {
        self.sites.count_ones()
    }

    /// Displacement fields the layer at `site` predicts in `config` (0 if it is absent).
    pub const fn fields(self, site: OffsetSite, config: &ModelConfig) -> u32 {
        if self.contains(site) {
            self.form.fields(site.channels(config))
        } else {
            0
        }
    }
}

/// A configuration that cannot describe a generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `in_channels` or `out_channels` is 0 or above [`MAX_IMAGE_CHANNELS`].
    ImageChannels,
    /// `ngf` is 0 or above [`MAX_NGF`].
    Ngf,
    /// `n_blocks` is above [`MAX_BLOCKS`].
    Blocks,
    /// The first-block offset layer is requested but there are no residual blocks.
    OffsetWithoutBlock,
    /// A shared offset form is given but there are no offset layers.
    FormWithoutOffsetLayers,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ConfigError::ImageChannels => "image channels must be in 1..=64",
            ConfigError::Ngf => "ngf must be in 1..=1024",
            ConfigError::Blocks => "n_blocks must be at most 256",
            ConfigError::OffsetWithoutBlock => {
                "the first-block offset layer needs at least one residual block"
            }
            ConfigError::FormWithoutOffsetLayers => {
                "a shared offset form needs at least one offset layer"
            }
        };
        f.write_str(text)
    }
}

/// The generator's shape: everything needed to know its tensors and its memory needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// Image channels in (1 for MR).
    pub in_channels: u16,
    /// Image channels out (1 for CT or MR).
    pub out_channels: u16,
    /// Base number of filters; the residual trunk has `4 · ngf` channels.
    pub ngf: u16,
    /// Number of residual blocks.
    pub n_blocks: u16,
    /// Which offset layers are present ([`OffsetLayers::NONE`] = CycleGAN baseline).
    pub offset_layers: OffsetLayers,
}

impl ModelConfig {
    /// The paper's generator: 1 → 1 channels, ngf 64, 9 blocks, all four offset layers.
    pub const fn paper() -> ModelConfig {
        ModelConfig {
            in_channels: 1,
            out_channels: 1,
            ngf: 64,
            n_blocks: 9,
            offset_layers: OffsetLayers::ALL,
        }
    }

    /// Checks the limits every other part of the crate relies on (no overflow in sizes).
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.in_channels == 0
            || self.out_channels == 0
            || self.in_channels > MAX_IMAGE_CHANNELS
            || self.out_channels > MAX_IMAGE_CHANNELS
        {
            return Err(ConfigError::ImageChannels);
        }
        if self.ngf == 0 || self.ngf > MAX_NGF {
            return Err(ConfigError::Ngf);
        }
        if self.n_blocks > MAX_BLOCKS {
            return Err(ConfigError::Blocks);
        }
        if self.n_blocks == 0 && self.offset_layers.contains(OffsetSite::FirstBlock) {
            return Err(ConfigError::OffsetWithoutBlock);
        }
        if self.offset_layers.count() == 0
            && !matches!(self.offset_layers.form(), OffsetForm::PerChannel)
        {
            return Err(ConfigError::FormWithoutOffsetLayers);
        }
        Ok(())
    }

    /// The tensors of this generator in canonical (file and forward) order.
    ///
    /// Assumes a [valid](Self::validate) configuration.
    pub fn tensors(&self) -> Tensors {
        Tensors {
            config: *self,
            slot: 0,
            param: Param::Weight,
        }
    }

    /// Number of tensors ([`Self::tensors`]`.count()`), computed directly.
    pub const fn tensor_count(&self) -> u32 {
        2 * (self.offset_layers.count() + 1 + 2 + 2 * self.n_blocks as u32 + 2 + 1)
    }

    /// Total number of parameters (weights and biases).
    pub fn parameter_count(&self) -> u64 {
        self.tensors().map(|t| t.element_count()).sum()
    }

    /// A 64-bit FNV-1a hash of the configuration and of every tensor's id, dtype and shape.
    ///
    /// Stored in the weight-file header so that a file never loads into a generator of
    /// another shape, even if a header field was edited consistently (after Stockfish NNUE).
    pub fn architecture_hash(&self) -> u64 {
        let mut hash = Fnv1a::new();
        hash.write(b"dicyc-generator-v1");
        hash.write(&self.in_channels.to_le_bytes());
        hash.write(&self.out_channels.to_le_bytes());
        hash.write(&self.ngf.to_le_bytes());
        hash.write(&self.n_blocks.to_le_bytes());
        hash.write(&[self.offset_layers.bits()]);
        // Per-channel adds nothing, so files written before the form existed keep their hash.
        if let OffsetForm::Shared = self.offset_layers.form() {
            hash.write(&[OffsetForm::Shared as u8]);
        }
        for spec in self.tensors() {
            hash.write(&spec.id.to_u32().to_le_bytes());
            hash.write(&[spec.dtype as u8, spec.ndim]);
            for dim in spec.dims() {
                hash.write(&dim.to_le_bytes());
            }
        }
        hash.finish()
    }

    /// The spec of tensor `id` in this configuration, if it has one.
    pub fn spec(&self, id: TensorId) -> Option<TensorSpec> {
        self.tensors().find(|spec| spec.id == id)
    }
}

/// 64-bit FNV-1a: tiny, `const`-free of tables, good enough to tell architectures apart.
struct Fnv1a(u64);

impl Fnv1a {
    const fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    const fn finish(&self) -> u64 {
        self.0
    }
}

/// Weight or bias of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// The convolution kernel.
    Weight = 0,
    /// The per-output-channel bias.
    Bias = 1,
}

impl Param {
    const fn name(self) -> &'static str {
        match self {
            Param::Weight => "weight",
            Param::Bias => "bias",
        }
    }
}

/// Identifies one tensor of the generator. Stable across versions: it is stored in the
/// weight file as [`TensorId::to_u32`], and its `Display` form (e.g. `blocks.3.conv1.bias`)
/// is the parameter's name in the trainer's checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorId {
    /// Offset-predicting conv of an offset layer.
    Offset(OffsetSite, Param),
    /// The 7×7 input conv.
    Stem(Param),
    /// Stride-2 down-sampling conv `index` (0 or 1).
    Down(u8, Param),
    /// Conv `conv` (0 or 1) of residual block `block`.
    Block {
        /// Residual block index.
        block: u16,
        /// First (0) or second (1) conv of the block.
        conv: u8,
        /// Weight or bias.
        param: Param,
    },
    /// Transposed up-sampling conv `index` (0 or 1).
    Up(u8, Param),
    /// The 7×7 output conv (followed by tanh).
    Head(Param),
}

const KIND_OFFSET: u32 = 1;
const KIND_STEM: u32 = 2;
const KIND_DOWN: u32 = 3;
const KIND_BLOCK: u32 = 4;
const KIND_UP: u32 = 5;
const KIND_HEAD: u32 = 6;

impl TensorId {
    /// Encoding used in the weight file: `kind << 24 | index << 8 | sub`, where `sub` bit 0
    /// is the param (0 weight, 1 bias) and bit 1 the conv of a residual block.
    pub const fn to_u32(self) -> u32 {
        let (kind, index, sub, param) = match self {
            TensorId::Offset(site, p) => (KIND_OFFSET, site as u32, 0, p),
            TensorId::Stem(p) => (KIND_STEM, 0, 0, p),
            TensorId::Down(i, p) => (KIND_DOWN, i as u32, 0, p),
            TensorId::Block { block, conv, param } => {
                (KIND_BLOCK, block as u32, conv as u32, param)
            }
            TensorId::Up(i, p) => (KIND_UP, i as u32, 0, p),
            TensorId::Head(p) => (KIND_HEAD, 0, 0, p),
        };
        kind << 24 | index << 8 | sub << 1 | param as u32
    }

    /// Inverse of [`Self::to_u32`]; `None` for any value it never produces.
    pub const fn from_u32(raw: u32) -> Option<TensorId> {
        let kind = raw >> 24;
        let index = (raw >> 8) & 0xffff;
        let sub = raw & 0xff;
        let param = if sub & 1 == 0 {
            Param::Weight
        } else {
            Param::Bias
        };
        let conv = sub >> 1;
        let one_conv = conv == 0;
        match kind {
            KIND_OFFSET if one_conv => match OffsetSite::from_index(index) {
                Some(site) => Some(TensorId::Offset(site, param)),
                None => None,
            },
            KIND_STEM if one_conv && index == 0 => Some(TensorId::Stem(param)),
            KIND_DOWN if one_conv && index < 2 => Some(TensorId::Down(index as u8, param)),
            KIND_BLOCK if conv < 2 => Some(TensorId::Block {
                block: index as u16,
                conv: conv as u8,
                param,
            }),
            KIND_UP if one_conv && index < 2 => Some(TensorId::Up(index as u8, param)),
            KIND_HEAD if one_conv && index == 0 => Some(TensorId::Head(param)),
            _ => None,
        }
    }

    /// Weight or bias.
    pub const fn param(self) -> Param {
        match self {
            TensorId::Offset(_, p)
            | TensorId::Stem(p)
            | TensorId::Down(_, p)
            | TensorId::Up(_, p)
            | TensorId::Head(p) => p,
            TensorId::Block { param, .. } => param,
        }
    }
}

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TensorId::Offset(site, p) => write!(f, "offset.{}.{}", site.name(), p.name()),
            TensorId::Stem(p) => write!(f, "stem.{}", p.name()),
            TensorId::Down(i, p) => write!(f, "down.{i}.{}", p.name()),
            TensorId::Block { block, conv, param } => {
                write!(f, "blocks.{block}.conv{conv}.{}", param.name())
            }
            TensorId::Up(i, p) => write!(f, "up.{i}.{}", p.name()),
            TensorId::Head(p) => write!(f, "head.{}", p.name()),
        }
    }
}

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE 754 binary16: all convolution weights.
    F16 = 1,
    /// IEEE 754 binary32: biases (tiny, and kept exact).
    F32 = 2,
}

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    /// From the stored byte; `None` for unknown dtypes.
    pub const fn from_u8(raw: u8) -> Option<Dtype> {
        match raw {
            1 => Some(Dtype::F16),
            2 => Some(Dtype::F32),
            _ => None,
        }
    }
}

/// One tensor's identity, dtype and shape.
///
/// Layouts are PyTorch's: conv weights `[out, in, kh, kw]` (OIHW), transposed-conv weights
/// `[in, out, kh, kw]` (as `ConvTranspose2d` stores them), biases `[out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Which tensor.
    pub id: TensorId,
    /// Stored element type.
    pub dtype: Dtype,
    /// Number of used entries of `dims_raw` (1 or 4).
    pub ndim: u8,
    /// Dimensions, unused entries 1.
    pub dims_raw: [u32; 4],
}

impl TensorSpec {
    fn conv(id: TensorId, out: u32, inp: u32, k: u32) -> TensorSpec {
        match id.param() {
            Param::Weight => TensorSpec {
                id,
                dtype: Dtype::F16,
                ndim: 4,
                dims_raw: [out, inp, k, k],
            },
            Param::Bias => TensorSpec {
                id,
                dtype: Dtype::F32,
                ndim: 1,
                dims_raw: [out, 1, 1, 1],
            },
        }
    }

    fn conv_transpose(id: TensorId, inp: u32, out: u32, k: u32) -> TensorSpec {
        let mut spec = TensorSpec::conv(id, inp, out, k);
        if id.param() == Param::Bias {
            spec.dims_raw[0] = out;
        }
        spec
    }

    /// The used dimensions.
    pub fn dims(&self) -> &[u32] {
        &self.dims_raw[..self.ndim as usize]
    }

    /// Number of elements (cannot overflow for a valid configuration).
    pub fn element_count(&self) -> u64 {
        self.dims().iter().map(|&d| d as u64).product()
    }

    /// Number of bytes of the stored data.
    pub fn byte_len(&self) -> u64 {
        self.element_count() * self.dtype.size() as u64
    }
}

/// Iterator over a configuration's [`TensorSpec`]s in canonical order.
#[derive(Clone, Debug)]
pub struct Tensors {
    config: ModelConfig,
    slot: u32,
    param: Param,
}

impl Tensors {
    /// The layer at `slot` in forward order, or `None` past the end. Offset slots whose
    /// layer is absent yield `Some(None)`.
    fn layer(&self, slot: u32, param: Param) -> Option<Option<TensorSpec>> {
        let c = &self.config;
        let ngf = c.ngf as u32;
        let blocks = c.n_blocks as u32;
        let offset = |site: OffsetSite| {
            if c.offset_layers.contains(site) {
                Some(TensorSpec::conv(
                    TensorId::Offset(site, param),
                    2 * c.offset_layers.fields(site, c),
                    site.channels(c),
                    3,
                ))
            } else {
                None
            }
        };
        let spec = match slot {
            0 => offset(OffsetSite::Input),
            1 => Some(TensorSpec::conv(
                TensorId::Stem(param),
                ngf,
                c.in_channels as u32,
                7,
            )),
            2 => offset(OffsetSite::Down1),
            3 => Some(TensorSpec::conv(TensorId::Down(0, param), 2 * ngf, ngf, 3)),
            4 => offset(OffsetSite::Down2),
            5 => Some(TensorSpec::conv(
                TensorId::Down(1, param),
                4 * ngf,
                2 * ngf,
                3,
            )),
            6 => offset(OffsetSite::FirstBlock),
            s if s < 7 + 2 * blocks => {
                let i = s - 7;
                let id = TensorId::Block {
                    block: (i / 2) as u16,
                    conv: (i % 2) as u8,
                    param,
                };
                Some(TensorSpec::conv(id, 4 * ngf, 4 * ngf, 3))
            }
            s if s == 7 + 2 * blocks => Some(TensorSpec::conv_transpose(
                TensorId::Up(0, param),
                4 * ngf,
                2 * ngf,
                3,
            )),
            s if s == 8 + 2 * blocks => Some(TensorSpec::conv_transpose(
                TensorId::Up(1, param),
                2 * ngf,
                ngf,
                3,
            )),
            s if s == 9 + 2 * blocks => Some(TensorSpec::conv(
                TensorId::Head(param),
                c.out_channels as u32,
                ngf,
                7,
            )),
            _ => return None,
        };
        Some(spec)
    }
}

impl Iterator for Tensors {
    type Item = TensorSpec;

    fn next(&mut self) -> Option<TensorSpec> {
        loop {
            let found = self.layer(self.slot, self.param)?;
            match self.param {
                Param::Weight => self.param = Param::Bias,
                Param::Bias => {
                    self.param = Param::Weight;
                    self.slot += 1;
                }
            }
            if let Some(spec) = found {
                return Some(spec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ModelConfig::paper().architecture_hash()` as the version 1.0 code computed it.
    const PAPER_HASH_V1_0: u64 = 0xb975_3051_1f2d_949f;

    #[test]
    fn paper_size_parameter_count_matches_cyclegan() {
        // 11,365,633 is PyTorch's count for CycleGAN's ResnetGenerator(1, 1, 64, 9 blocks).
        let cyclegan = ModelConfig {
            offset_layers: OffsetLayers::NONE,
            ..ModelConfig::paper()
        };
        assert_eq!(cyclegan.parameter_count(), 11_365_633);
        // Each offset layer adds a 3×3 conv C → 2C with bias: 18C² + 2C.
        let extra: u64 = [1u64, 64, 128, 256]
            .iter()
            .map(|c| 18 * c * c + 2 * c)
            .sum();
        assert_eq!(ModelConfig::paper().parameter_count(), 11_365_633 + extra);
    }

    #[test]
    fn tensor_ids_round_trip_and_are_unique() {
        let config = ModelConfig::paper();
        let mut count = 0;
        for (i, a) in config.tensors().enumerate() {
            assert_eq!(TensorId::from_u32(a.id.to_u32()), Some(a.id));
            for b in config.tensors().skip(i + 1) {
                assert_ne!(a.id, b.id);
            }
            count += 1;
        }
        assert_eq!(count, config.tensor_count());
    }

    #[test]
    fn names_are_the_checkpoint_names() {
        use core::fmt::Write;
        let mut name = heapless::String::<32>::new();
        let id = TensorId::Block {
            block: 3,
            conv: 1,
            param: Param::Bias,
        };
        write!(name, "{id}").unwrap();
        assert_eq!(name.as_str(), "blocks.3.conv1.bias");
    }

    #[test]
    fn architecture_hash_tells_shapes_apart() {
        let paper = ModelConfig::paper();
        let fewer = ModelConfig {
            n_blocks: 8,
            ..paper
        };
        let no_offsets = ModelConfig {
            offset_layers: OffsetLayers::NONE,
            ..paper
        };
        let shared = ModelConfig {
            offset_layers: OffsetLayers::ALL.with_form(OffsetForm::Shared),
            ..paper
        };
        assert_ne!(paper.architecture_hash(), fewer.architecture_hash());
        assert_ne!(paper.architecture_hash(), shared.architecture_hash());
        // Version 1.0 files store this value: per-channel layers must keep hashing to it.
        assert_eq!(paper.architecture_hash(), PAPER_HASH_V1_0);
        assert_ne!(paper.architecture_hash(), no_offsets.architecture_hash());
        assert_eq!(
            paper.architecture_hash(),
            ModelConfig::paper().architecture_hash()
        );
    }

    #[test]
    fn validation_rejects_impossible_shapes() {
        let ok = ModelConfig::paper();
        assert_eq!(ok.validate(), Ok(()));
        let bad = ModelConfig { ngf: 0, ..ok };
        assert_eq!(bad.validate(), Err(ConfigError::Ngf));
        let bad = ModelConfig { n_blocks: 0, ..ok };
        assert_eq!(bad.validate(), Err(ConfigError::OffsetWithoutBlock));
        let bad = ModelConfig {
            in_channels: 0,
            ..ok
        };
        assert_eq!(bad.validate(), Err(ConfigError::ImageChannels));
    }
}
