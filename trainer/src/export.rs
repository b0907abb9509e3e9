//! From trained tch parameters to the core's weight file, through the core's own writer.
//!
//! The generator's parameter names are exactly the core's `TensorId` names (under a
//! prefix such as `g_ab.`), so export is a walk over the core's canonical tensor list:
//! every tensor the core needs must be in the checkpoint with the right shape, and each
//! is quantized to fp16 (biases stay f32) with its error measured. Measuring
//! ([`quantize_generator`]) and writing ([`QuantizedGenerator::write`]) are separate steps so
//! that `trainer export` can check every tensor of both directions, and list every value the
//! format cannot hold, before it writes any file.

use std::collections::HashMap;

use anyhow::{bail, Context};
use dicyc_core::format::{file_size, write_weight_file, Normalization, WriteError};
use dicyc_core::{Dtype, ModelConfig};
use half::f16;
use serde::Serialize;
use tch::{Kind, Tensor};

/// How much one tensor lost in quantization, and whether it can be stored at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorQuantization {
    /// Checkpoint name without the prefix (the core's tensor name).
    pub name: String,
    /// `f16` or `f32` as stored.
    pub dtype: &'static str,
    /// Dimensions (the core's, which the checkpoint's match).
    pub dims: Vec<u32>,
    /// Number of values.
    pub elements: usize,
    /// Largest finite `|v|`.
    pub max_abs_value: f32,
    /// Largest `|v − stored(v)|` over the values the dtype can hold.
    pub max_abs_error: f32,
    /// `‖v − stored(v)‖₂ / ‖v‖₂` over the values the dtype can hold (0 for all zeros).
    pub rel_l2_error: f64,
    /// Finite values that round past fp16's largest finite value (±65504): they would
    /// become infinities, so the tensor cannot be exported (f16 tensors only).
    pub out_of_range: usize,
    /// NaN or infinite values (a diverged run): they cannot be exported either.
    pub non_finite: usize,
}

impl TensorQuantization {
    /// Whether every value can be stored in the tensor's dtype (the core's writer refuses
    /// the file otherwise; it is never clamped).
    pub fn representable(&self) -> bool {
        self.out_of_range == 0 && self.non_finite == 0
    }

    /// `name: 2 values outside fp16's range (±65504), 1 non-finite; largest |value| 7.0e4`.
    pub fn describe_unrepresentable(&self) -> String {
        let mut parts = Vec::new();
        if self.out_of_range > 0 {
            parts.push(format!(
                "{} value(s) outside fp16's range (±65504)",
                self.out_of_range
            ));
        }
        if self.non_finite > 0 {
            parts.push(format!("{} non-finite value(s)", self.non_finite));
        }
        format!(
            "{}: {}; largest finite |value| {:.4e}",
            self.name,
            parts.join(", "),
            self.max_abs_value
        )
    }
}

/// A weight file and the per-tensor quantization report.
#[derive(Debug, Clone)]
pub struct ExportedGenerator {
    /// The complete weight file (docs/FORMAT.md).
    pub bytes: Vec<u8>,
    /// One entry per tensor, in file order.
    pub quantization: Vec<TensorQuantization>,
}

/// A generator's values, checked against the core's tensor list and measured, not yet
/// written: export checks every tensor of both directions before it writes any file.
#[derive(Debug, Clone)]
pub struct QuantizedGenerator {
    config: ModelConfig,
    values: Vec<Vec<f32>>,
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

/// Measures one tensor. A value counts as out of range exactly when the core's writer
/// would refuse it (`TensorSink::push`: fp16 rounding overflows to infinity).
fn quantization_of(name: String, dtype: Dtype, dims: &[u32], values: &[f32]) -> TensorQuantization {
    let mut q = TensorQuantization {
        name,
        dtype: match dtype {
            Dtype::F16 => "f16",
            Dtype::F32 => "f32",
        },
        dims: dims.to_vec(),
        elements: values.len(),
        max_abs_value: 0.0,
        max_abs_error: 0.0,
        rel_l2_error: 0.0,
        out_of_range: 0,
        non_finite: 0,
    };
    let (mut err_sq, mut val_sq) = (0f64, 0f64);
    for &v in values {
        if !v.is_finite() {
            q.non_finite += 1;
            continue;
        }
        q.max_abs_value = q.max_abs_value.max(v.abs());
        let stored = match dtype {
            Dtype::F16 => f16::from_f32(v),
            Dtype::F32 => {
                val_sq += f64::from(v) * f64::from(v);
                continue;
            }
        };
        if stored.is_infinite() {
            q.out_of_range += 1;
            continue;
        }
        let e = (v - stored.to_f32()).abs();
        q.max_abs_error = q.max_abs_error.max(e);
        err_sq += f64::from(e) * f64::from(e);
        val_sq += f64::from(v) * f64::from(v);
    }
    if val_sq > 0.0 {
        q.rel_l2_error = (err_sq / val_sq).sqrt();
    }
    q
}

/// Reads the generator whose parameters are `variables[prefix + name]` and measures every
/// tensor's quantization, without writing anything.
///
/// Errors name the tensor: a missing parameter or a shape that differs from the core's.
/// Values the weight format cannot hold are counted in the report (see
/// [`QuantizedGenerator::unrepresentable`]), so that a caller can list every one of them.
pub fn quantize_generator(
    variables: &HashMap<String, Tensor>,
    prefix: &str,
    config: &ModelConfig,
) -> anyhow::Result<QuantizedGenerator> {
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
        quantization.push(quantization_of(
            spec.id.to_string(),
            spec.dtype,
            spec.dims(),
            &v,
        ));
        values.push(v);
    }
    Ok(QuantizedGenerator {
        config: *config,
        values,
        quantization,
    })
}

impl QuantizedGenerator {
    /// The tensors holding values the weight format cannot store, in file order.
    pub fn unrepresentable(&self) -> impl Iterator<Item = &TensorQuantization> {
        self.quantization.iter().filter(|q| !q.representable())
    }

    /// Writes the weight file through the core's writer; refuses, naming every offending
    /// tensor, when any value cannot be stored (never a silent clamp).
    pub fn write(self, normalization: &Normalization) -> anyhow::Result<ExportedGenerator> {
        let bad: Vec<String> = self
            .unrepresentable()
            .map(TensorQuantization::describe_unrepresentable)
            .collect();
        if !bad.is_empty() {
            bail!(
                "{} tensor(s) hold values the fp16 weight file cannot store: {}",
                bad.len(),
                bad.join("; ")
            );
        }
        let config = &self.config;
        let mut bytes = vec![0u8; file_size(config).map_err(|err| anyhow::anyhow!("{err}"))?];
        let mut next = self.values.iter();
        write_weight_file(&mut bytes, config, normalization, |spec, sink| {
            let v = next.next().ok_or(WriteError::Aborted { id: spec.id })?;
            sink.push_slice(v)
        })
        .map_err(|err| anyhow::anyhow!("writing the weight file: {err}"))?;
        Ok(ExportedGenerator {
            bytes,
            quantization: self.quantization,
        })
    }
}

/// Writes the generator whose parameters are `variables[prefix + name]` as a weight file
/// ([`quantize_generator`], then [`QuantizedGenerator::write`]).
///
/// Errors name the tensor: a missing parameter, a shape that differs from the core's, a
/// non-finite value, or a value outside fp16's range (never silently clamped).
pub fn export_generator(
    variables: &HashMap<String, Tensor>,
    prefix: &str,
    config: &ModelConfig,
    normalization: &Normalization,
) -> anyhow::Result<ExportedGenerator> {
    quantize_generator(variables, prefix, config)?
        .write(normalization)
        .with_context(|| format!("exporting the generator under prefix {prefix:?}"))
}

/// The core's configuration of a trainer generator for export: its shape
/// ([`GeneratorConfig::core_shape`](crate::model::GeneratorConfig::core_shape)).
pub fn core_config(
    config: &crate::model::generator::GeneratorConfig,
) -> anyhow::Result<ModelConfig> {
    config
        .core_shape()
        .map_err(|err| anyhow::anyhow!("generator configuration: {err:#}"))
}
