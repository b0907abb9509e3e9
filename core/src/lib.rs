//! `dicyc-core`: the DicycleGAN generator for scanner-attached accelerators.
//!
//! `#![no_std]` and heap-free: weights are read zero-copy from a flash-resident byte slice
//! (see [`format`]), every intermediate lives in one caller-supplied scratch buffer whose
//! exact size is known ahead of time, and every malformed input is a typed [`Error`], never
//! a panic.
#![no_std]
#![deny(missing_docs)]

pub mod config;

pub use config::{ConfigError, Dtype, ModelConfig, OffsetLayers, OffsetSite, Param, TensorId, TensorSpec};
