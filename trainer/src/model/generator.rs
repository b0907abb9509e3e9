//! The generator: CycleGAN's `ResnetGenerator` with up to four offset layers, run in two
//! passes over the same weights — [`Pass::Deformed`] (through the offset layers, `G`) and
//! [`Pass::Undeformed`] (bypassing them, identical to zero offsets, `G~`).
//!
//! ```text
//! [offset.input] ReflPad3 Conv7(in→ngf) IN ReLU          = stem
//! [offset.down1] Conv3 s2 p1 (ngf→2ngf) IN ReLU           = down.0
//! [offset.down2] Conv3 s2 p1 (2ngf→4ngf) IN ReLU          = down.1
//! [offset.block0] n × ResBlock(4ngf)                      = blocks.i.conv0 / conv1
//! ConvT3 s2 p1 op1 (4ngf→2ngf) IN ReLU                     = up.0
//! ConvT3 s2 p1 op1 (2ngf→ngf) IN ReLU                      = up.1
//! ReflPad3 Conv7(ngf→out) Tanh                             = head
//! ```
//! Parameter names and shapes are the core's `TensorId` names and `TensorSpec` shapes
//! (`core/src/config.rs`); [`Generator::tensor_names`] lists them in the core's canonical order.

use serde::{Deserialize, Serialize};
use tch::nn::Path;
use tch::Tensor;

use super::init::{conv_params, Conv, InitConfig};
use super::offset::OffsetLayer;
use super::{conv2d, instance_norm};

use dicyc_core::config::{MAX_BLOCKS, MAX_IMAGE_CHANNELS, MAX_NGF};
use dicyc_core::{ConfigError, ModelConfig, OffsetForm, OffsetLayers};
pub use dicyc_core::{OffsetSite, Pass};

/// `offset_layers` in configuration files: the sites' names (`["input", "block0"]`).
mod site_names {
    use dicyc_core::OffsetSite;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sites: &[OffsetSite], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(sites.iter().map(|site| site.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OffsetSite>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|name| super::parse_site(name).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// `offset_form` in configuration files: the form's name (`"per-channel"`, `"shared"`).
mod form_name {
    use dicyc_core::OffsetForm;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(form: &OffsetForm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(form.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetForm, D::Error> {
        super::parse_form(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Parses an offset form's name, with a message listing the valid ones.
pub fn parse_form(name: &str) -> anyhow::Result<OffsetForm> {
    OffsetForm::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("unknown offset form {name:?}: expected per-channel or shared")
    })
}

/// Parses an offset site's name, with a message listing the valid ones.
pub fn parse_site(name: &str) -> anyhow::Result<OffsetSite> {
    OffsetSite::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("unknown offset site {name:?}: expected one of input, down1, down2, block0")
    })
}

/// Where `--model dicyclegan` and every preset put offset layers unless told otherwise: all
/// four sites (the paper's), with fields of [`DEFAULT_OFFSET_FORM`].
pub const DEFAULT_OFFSET_SITES: [OffsetSite; 4] = OffsetSite::ALL;

/// The offset layers' default form: one field per site shared by all channels, the variant
/// `trainer study` found best (docs/RESULTS.md, rule in docs/STUDY.md "Choosing the
/// default"). On the calibrated deformed benchmark (16 mm field) it is the only variant that
/// meets both targets against CycleGAN (windowed SSIM + 0.1 in every seed, z-unit MSE ≤ 0.5×);
/// a shared field can only move features, so the layers cannot take over part of the
/// contrast mapping as per-channel ones do. Per-channel fields (`offset_form =
/// "per-channel"`) and the input site alone remain options.
pub const DEFAULT_OFFSET_FORM: OffsetForm = OffsetForm::Shared;

/// The generator's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Image channels in.
    pub in_channels: i64,
    /// Image channels out.
    pub out_channels: i64,
    /// Base width; the residual trunk has `4·ngf` channels.
    pub ngf: i64,
    /// Number of residual blocks.
    pub n_blocks: i64,
    /// Which offset layers exist (empty = the CycleGAN generator).
    #[serde(with = "site_names")]
    pub offset_layers: Vec<OffsetSite>,
    /// Per-channel displacement fields or one field per site shared by all channels.
    #[serde(with = "form_name")]
    pub offset_form: OffsetForm,
}

impl Default for GeneratorConfig {
    /// The paper's generator (1 → 1, ngf 64, 9 blocks) with offset layers at
    /// [`DEFAULT_OFFSET_SITES`] of [`DEFAULT_OFFSET_FORM`], the variant `trainer study` found
    /// best (docs/RESULTS.md).
    fn default() -> Self {
        GeneratorConfig {
            in_channels: 1,
            out_channels: 1,
            ngf: 64,
            n_blocks: 9,
            offset_layers: DEFAULT_OFFSET_SITES.to_vec(),
            offset_form: DEFAULT_OFFSET_FORM,
        }
    }
}

impl GeneratorConfig {
    /// Whether the offset layer at `site` exists.
    pub fn has_offset(&self, site: OffsetSite) -> bool {
        self.offset_layers.contains(&site)
    }

    /// The core's `OffsetLayers` bits.
    pub fn offset_bits(&self) -> u8 {
        self.offset_layers
            .iter()
            .fold(0, |bits, site| bits | site.bit())
    }

    /// The core's description of this network's shape: sizes, offset sites and their form,
    /// with every limit checked by the core's own [`ModelConfig::validate`] (docs/DESIGN.md
    /// §2.1), so the two can never disagree; errors name the configuration field and its
    /// value. Without offset layers the form means nothing and is not passed on.
    pub fn core_shape(&self) -> anyhow::Result<ModelConfig> {
        let narrow = |v: i64, name: &str| {
            u16::try_from(v).map_err(|_| anyhow::anyhow!("generator {name} = {v} is out of range"))
        };
        for (i, site) in self.offset_layers.iter().enumerate() {
            anyhow::ensure!(
                !self.offset_layers[..i].contains(site),
                "offset layer {} listed twice in offset_layers",
                site.name()
            );
        }
        let shape = ModelConfig {
            in_channels: narrow(self.in_channels, "in_channels")?,
            out_channels: narrow(self.out_channels, "out_channels")?,
            ngf: narrow(self.ngf, "ngf")?,
            n_blocks: narrow(self.n_blocks, "n_blocks")?,
            offset_layers: OffsetLayers::from_bits(self.offset_bits())
                .ok_or_else(|| anyhow::anyhow!("offset layer bits"))?
                .with_form(if self.offset_layers.is_empty() {
                    OffsetForm::PerChannel
                } else {
                    self.offset_form
                }),
        };
        shape.validate().map_err(|err| {
            let detail = match err {
                ConfigError::ImageChannels => format!(
                    "generator in_channels/out_channels must be in 1..={MAX_IMAGE_CHANNELS}, got {}/{}",
                    self.in_channels, self.out_channels
                ),
                ConfigError::Ngf => {
                    format!("generator ngf must be in 1..={MAX_NGF}, got {}", self.ngf)
                }
                ConfigError::Blocks => format!(
                    "generator n_blocks must be in 0..={MAX_BLOCKS}, got {}",
                    self.n_blocks
                ),
                ConfigError::OffsetWithoutBlock => "the block0 offset layer needs at least one \
                     residual block (n_blocks is 0)"
                    .to_string(),
                // Not reachable: the form is only passed on with offset layers.
                ConfigError::FormWithoutOffsetLayers => err.to_string(),
            };
            anyhow::anyhow!(detail)
        })?;
        Ok(shape)
    }

    /// Checks the limits the core accepts ([`Self::core_shape`]).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.core_shape().map(|_| ())
    }
}

/// One residual block's two convs.
#[derive(Debug)]
struct ResBlock {
    conv0: Conv,
    conv1: Conv,
}

/// The generator's weights and its two forward passes.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    offsets: [Option<OffsetLayer>; 4],
    stem: Conv,
    down: [Conv; 2],
    blocks: Vec<ResBlock>,
    up: [Conv; 2],
    head: Conv,
}

impl Generator {
    /// Creates the generator's parameters under `root` (use a VarStore's root so that the
    /// names are exactly the core's) and initialises them (tch's RNG: seed it first).
    pub fn new(
        root: &Path,
        config: &GeneratorConfig,
        init: &InitConfig,
    ) -> anyhow::Result<Generator> {
        config.validate()?;
        let ngf = config.ngf;
        let std = init.std;
        let mut offsets: [Option<OffsetLayer>; 4] = Default::default();
        let shape = config.core_shape()?;
        let mut offset = |site: OffsetSite| {
            if config.has_offset(site) {
                let path = root / "offset" / site.name();
                offsets[site as usize] = Some(OffsetLayer::new(
                    &path,
                    i64::from(site.channels(&shape)),
                    config.offset_form,
                    init.offset_std,
                ));
            }
        };
        // Created in the core's canonical order (offset before the block it feeds).
        offset(OffsetSite::Input);
        let stem = conv_params(&(root / "stem"), [ngf, config.in_channels, 7, 7], ngf, std);
        offset(OffsetSite::Down1);
        let down0 = conv_params(&(root / "down" / 0), [2 * ngf, ngf, 3, 3], 2 * ngf, std);
        offset(OffsetSite::Down2);
        let down1 = conv_params(&(root / "down" / 1), [4 * ngf, 2 * ngf, 3, 3], 4 * ngf, std);
        offset(OffsetSite::FirstBlock);
        let blocks = (0..config.n_blocks)
            .map(|i| {
                let block = root / "blocks" / i;
                let c = 4 * ngf;
                ResBlock {
                    conv0: conv_params(&(&block / "conv0"), [c, c, 3, 3], c, std),
                    conv1: conv_params(&(&block / "conv1"), [c, c, 3, 3], c, std),
                }
            })
            .collect();
        // Transposed convs store IOHW: [in, out, kh, kw].
        let up0 = conv_params(&(root / "up" / 0), [4 * ngf, 2 * ngf, 3, 3], 2 * ngf, std);
        let up1 = conv_params(&(root / "up" / 1), [2 * ngf, ngf, 3, 3], ngf, std);
        let head = conv_params(
            &(root / "head"),
            [config.out_channels, ngf, 7, 7],
            config.out_channels,
            std,
        );
        Ok(Generator {
            config: config.clone(),
            offsets,
            stem,
            down: [down0, down1],
            blocks,
            up: [up0, up1],
            head,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Whether the deformed pass differs from the undeformed one (any offset layer present).
    pub fn has_offsets(&self) -> bool {
        self.offsets.iter().any(Option::is_some)
    }

    /// The offset layer at `site`, if present.
    pub fn offset_layer(&self, site: OffsetSite) -> Option<&OffsetLayer> {
        self.offsets[site as usize].as_ref()
    }

    /// The parameter names in the core's canonical order (e.g. `offset.input.weight`,
    /// `stem.weight`, `stem.bias`, …, `head.bias`) with their shapes.
    pub fn tensor_names(&self) -> Vec<(String, Vec<i64>)> {
        let mut out = Vec::new();
        let mut push = |name: String, conv: &Conv| {
            out.push((format!("{name}.weight"), conv.weight.size()));
            out.push((format!("{name}.bias"), conv.bias.size()));
        };
        let offset = |site: OffsetSite, push: &mut dyn FnMut(String, &Conv)| {
            if let Some(layer) = &self.offsets[site as usize] {
                push(format!("offset.{}", site.name()), &layer.conv);
            }
        };
        offset(OffsetSite::Input, &mut push);
        push("stem".into(), &self.stem);
        offset(OffsetSite::Down1, &mut push);
        push("down.0".into(), &self.down[0]);
        offset(OffsetSite::Down2, &mut push);
        push("down.1".into(), &self.down[1]);
        offset(OffsetSite::FirstBlock, &mut push);
        for (i, block) in self.blocks.iter().enumerate() {
            push(format!("blocks.{i}.conv0"), &block.conv0);
            push(format!("blocks.{i}.conv1"), &block.conv1);
        }
        push("up.0".into(), &self.up[0]);
        push("up.1".into(), &self.up[1]);
        push("head".into(), &self.head);
        out
    }

    fn maybe_offset(
        &self,
        site: OffsetSite,
        x: Tensor,
        pass: Pass,
        collect: &mut Option<Vec<Tensor>>,
    ) -> Tensor {
        match (&self.offsets[site as usize], pass) {
            (Some(layer), Pass::Deformed) => {
                let offsets = layer.offsets(&x);
                let y = super::offset::resample(&x, &offsets);
                if let Some(all) = collect {
                    all.push(offsets);
                }
                y
            }
            _ => x,
        }
    }

    /// Runs the generator on `x` `[N, in, H, W]` (H, W multiples of 4); output
    /// `[N, out, H, W]` in (−1, 1).
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        self.run(x, pass, &mut None)
    }

    /// The deformed pass, also returning each offset layer's predicted offsets `[N, 2F, h, w]`
    /// (in feature-map pixels, input site first): for penalties on the offsets.
    pub fn forward_deformed_with_offsets(&self, x: &Tensor) -> (Tensor, Vec<Tensor>) {
        let mut offsets = Some(Vec::new());
        let y = self.run(x, Pass::Deformed, &mut offsets);
        (y, offsets.unwrap_or_default())
    }

    fn run(&self, x: &Tensor, pass: Pass, collect: &mut Option<Vec<Tensor>>) -> Tensor {
        let x = self.maybe_offset(OffsetSite::Input, x.shallow_clone(), pass, collect);
        let x = conv2d(
            &x.reflection_pad2d([3, 3, 3, 3]),
            &self.stem.weight,
            &self.stem.bias,
            1,
            0,
        );
        let x = instance_norm(&x).relu();
        let x = self.maybe_offset(OffsetSite::Down1, x, pass, collect);
        let x = instance_norm(&conv2d(&x, &self.down[0].weight, &self.down[0].bias, 2, 1)).relu();
        let x = self.maybe_offset(OffsetSite::Down2, x, pass, collect);
        let x = instance_norm(&conv2d(&x, &self.down[1].weight, &self.down[1].bias, 2, 1)).relu();
        let mut x = self.maybe_offset(OffsetSite::FirstBlock, x, pass, collect);
        for block in &self.blocks {
            let y = conv2d(
                &x.reflection_pad2d([1, 1, 1, 1]),
                &block.conv0.weight,
                &block.conv0.bias,
                1,
                0,
            );
            let y = instance_norm(&y).relu();
            let y = conv2d(
                &y.reflection_pad2d([1, 1, 1, 1]),
                &block.conv1.weight,
                &block.conv1.bias,
                1,
                0,
            );
            x = &x + instance_norm(&y); // not `+=`: in place would break autograd
        }
        let mut x = x;
        for up in &self.up {
            let y = x.conv_transpose2d(
                &up.weight,
                Some(&up.bias),
                [2, 2],
                [1, 1],
                [1, 1],
                1,
                [1, 1],
            );
            x = instance_norm(&y).relu();
        }
        conv2d(
            &x.reflection_pad2d([3, 3, 3, 3]),
            &self.head.weight,
            &self.head.bias,
            1,
            0,
        )
        .tanh()
    }
}
