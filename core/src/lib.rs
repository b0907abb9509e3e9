//! `dicyc-core`: the DicycleGAN generator for scanner-attached accelerators.
//!
//! `#![no_std]` and heap-free: weights are read zero-copy from a flash-resident byte slice
//! (see [`format`]), every intermediate lives in one caller-supplied scratch buffer whose
//! exact size is known ahead of time, and every malformed input is a typed [`Error`], never
//! a panic.
//!
//! Input contract: [`synthesize`] takes images normalised into `[-1, 1]`
//! ([`MAX_ABS_INPUT`]; [`Normalization::to_generator`] maps and clamps intensities into
//! it) and rejects anything else; `Ok` always means a finite output in the tanh range.
#![no_std]
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod format;
pub mod generator;
pub mod plan;
mod scratch;

// The kernels: crate-internal, public only with the `internals` feature (the core's tests
// and the benchmark); not part of the supported API.
#[cfg(feature = "internals")]
pub mod gemm;
#[cfg(not(feature = "internals"))]
mod gemm;
#[cfg(feature = "internals")]
pub mod ops;
#[cfg(not(feature = "internals"))]
mod ops;

pub use config::{
    ConfigError, Dtype, ModelConfig, OffsetForm, OffsetLayers, OffsetSite, Param, TensorId,
    TensorSpec,
};
pub use error::Error;
pub use format::{FormatError, Normalization, TensorView, WeightFile, WriteError};
pub use generator::{synthesize, Pass, Weights, MAX_ABS_INPUT};
pub use plan::{layer_by_layer_minimum_bytes, required_scratch_bytes};
