//! `dicyc-trainer`: the workstation side of dicyc.
//!
//! Trains DicycleGAN and the CycleGAN baseline on libtorch (through `tch`), on CUDA when
//! present and on the CPU otherwise; reads and writes NIfTI; evaluates; exports weights into
//! the core's format through the core's own writer.

pub mod cli;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod inference;
pub mod loss;
pub mod model;
pub mod source;
pub mod study;
pub mod train;
