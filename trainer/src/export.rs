//! From trained tch parameters to the core's weight file, through the core's own writer.
//!
//! The generator's parameter names are exactly the core's `TensorId` names (under a
//! prefix such as `g_ab.`), so export is a walk over the core's canonical tensor list:
//! every tensor the core needs must be in the checkpoint with the right shape, and each
//! is quantized to fp16 (biases stay f32) with its error measured.

use std::collections::HashMap;

use anyhow::{bail, Context};
use dicyc_core::format::{file_size, write_weight_file, Normalization, WriteError};
use dicyc_core::{Dtype, ModelConfig};
use half::f16;
use serde::Serialize;
use tch::{Kind, Tensor};

/// How much one tensor lost in quantization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorQuantization {
    /// Checkpoint name without the prefix (the core's tensor name).
    pub name: String,
    /// `f16` or `f32` as stored.
    pub dtype: &'static str,
    /// Number of values.
    pub elements: usize,
    /// Largest `|v|`.
    pub max_abs_value: f32,
    /// Largest `|v − stored(v)|`.
    pub max_abs_error: f32,
    /// `‖v − stored(v)‖₂ / ‖v‖₂` (0 for an all-zero tensor).
    pub rel_l2_error: f64,
}

/// A weight file and the per-tensor quantization report.
#[derive(Debug, Clone)]
pub struct ExportedGenerator {
    /// The complete weight file (docs/FORMAT.md).
    pub bytes: Vec<u8>,
    /// One entry per tensor, in file order.
    pub quantization: Vec<TensorQuantization>,
}

/// The f32 values of a tensor (any device, any float kind), flattened.
pub fn tensor_values(tensor: &Tensor) -> anyhow::Result<Vec<f32>> {
    let flat = tensor
        .detach()
        .to_kind(Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous()
        .view([-1]);
    Vec::<f32>::try_from(&flat).context("reading tensor values")
}

fn quantization_of(name: String, dtype: Dtype, values: &[f32]) -> TensorQuantization {
    let (mut max_abs_value, mut max_abs_error, mut err_sq, mut val_sq) = (0f32, 0f32, 0f64, 0f64);
    for &v in values {
        let stored = match dtype {
            Dtype::F16 => f16::from_f32(v).to_f32(),
            Dtype::F32 => v,
        };
        let e = (v - stored).abs();
        max_abs_value = max_abs_value.max(v.abs());
        max_abs_error = max_abs_error.max(e);
        err_sq += f64::from(e) * f64::from(e);
        val_sq += f64::from(v) * f64::from(v);
    }
    TensorQuantization {
        name,
        dtype: match dtype {
            Dtype::F16 => "f16",
            Dtype::F32 => "f32",
        },
        elements: values.len(),
        max_abs_value,
        max_abs_error,
        rel_l2_error: if val_sq > 0.0 {
            (err_sq / val_sq).sqrt()
        } else {
            0.0
        },
    }
}

/// Writes the generator whose parameters are `variables[prefix + name]` as a weight file.
///
/// Errors name the tensor: a missing parameter, a shape that differs from the core's, a
/// non-finite value, or a value outside fp16's range (never silently clamped).
pub fn export_generator(
    variables: &HashMap<String, Tensor>,
    prefix: &str,
    config: &ModelConfig,
    normalization: &Normalization,
) -> anyhow::Result<ExportedGenerator> {
    config
        .validate()
        .map_err(|err| anyhow::anyhow!("generator configuration cannot be exported: {err}"))?;
    let mut values = Vec::new();
    let mut quantization = Vec::new();
    for spec in config.tensors() {
        let name = format!("{prefix}{}", spec.id);
        let tensor = variables.get(&name).with_context(|| {
            format!("the checkpoint has no tensor {name:?}, which a {config:?} generator needs")
        })?;
        let expected: Vec<i64> = spec.dims().iter().map(|&d| i64::from(d)).collect();
        if tensor.size() != expected {
            bail!(
                "tensor {name:?} has shape {:?}, the core expects {expected:?}",
                tensor.size()
            );
        }
        let v = tensor_values(tensor).with_context(|| format!("tensor {name:?}"))?;
        quantization.push(quantization_of(spec.id.to_string(), spec.dtype, &v));
        values.push(v);
    }
    let mut bytes = vec![0u8; file_size(config).map_err(|err| anyhow::anyhow!("{err}"))?];
    let mut next = values.iter();
    write_weight_file(&mut bytes, config, normalization, |spec, sink| {
        let v = next.next().ok_or(WriteError::Aborted { id: spec.id })?;
        sink.push_slice(v)
    })
    .map_err(|err| anyhow::anyhow!("writing the weight file (prefix {prefix:?}): {err}"))?;
    Ok(ExportedGenerator {
        bytes,
        quantization,
    })
}

/// The core's configuration of a trainer generator (the two describe the same network).
pub fn core_config(
    config: &crate::model::generator::GeneratorConfig,
) -> anyhow::Result<ModelConfig> {
    let narrow = |v: i64, what: &str| {
        u16::try_from(v).with_context(|| format!("{what} = {v} does not fit the weight format"))
    };
    let mut offsets = dicyc_core::OffsetLayers::NONE;
    for site in &config.offset_layers {
        offsets = dicyc_core::OffsetLayers::from_bits(offsets.bits() | site.bit())
            .context("offset layer bit")?;
    }
    let core = ModelConfig {
        in_channels: narrow(config.in_channels, "in_channels")?,
        out_channels: narrow(config.out_channels, "out_channels")?,
        ngf: narrow(config.ngf, "ngf")?,
        n_blocks: narrow(config.n_blocks, "n_blocks")?,
        offset_layers: offsets,
    };
    core.validate()
        .map_err(|err| anyhow::anyhow!("generator configuration: {err}"))?;
    Ok(core)
}
