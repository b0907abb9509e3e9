//! The inference error type: every way a call can fail, as a `Copy` enum (no strings).

use core::fmt;

use crate::config::{ConfigError, TensorId};

/// Why an inference call (or a scratch-size query) failed. Never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The model configuration is not a valid generator.
    InvalidConfig(ConfigError),
    /// Height and width must be multiples of 4 and at least 8 (the trunk runs at a quarter
    /// of the resolution and its 3×3 reflection pad needs at least 2 pixels), and small
    /// enough that every buffer size fits in `usize`.
    BadDimensions {
        /// Requested height.
        height: usize,
        /// Requested width.
        width: usize,
    },
    /// The input slice is not `in_channels · height · width` long.
    InputSize {
        /// Required number of `f32`s.
        expected: usize,
        /// Length of the slice given.
        got: usize,
    },
    /// The output slice is not `out_channels · height · width` long.
    OutputSize {
        /// Required number of `f32`s.
        expected: usize,
        /// Length of the slice given.
        got: usize,
    },
    /// The scratch buffer is smaller than [`crate::required_scratch_bytes`].
    ScratchTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The input holds a NaN or an infinity (at this element index).
    NonFiniteInput {
        /// Index of the first non-finite element.
        index: usize,
    },
    /// A finite input value lies outside the generator's normalised range
    /// `[-MAX_ABS_INPUT, MAX_ABS_INPUT]` ([`crate::generator::MAX_ABS_INPUT`]: the
    /// preprocessing clamps intensities to `[-1, 1]`, see
    /// [`crate::Normalization::to_generator`]). Far larger values would overflow the f32
    /// accumulators.
    InputOutOfRange {
        /// Index of the first out-of-range element.
        index: usize,
    },
    /// An intermediate feature map or offset strip became NaN or infinite. Only
    /// non-finite weights can cause it (a [`crate::Weights`] source that is not a
    /// validated weight file): overflow alone never becomes infinite, since fp16
    /// activations are stored saturating at ±65504 and the f32 accumulators cannot reach
    /// infinity from finite weights and such activations; a NaN weight, or an infinite one meeting a zero
    /// (`∞ · 0`), yields NaN, and an infinite one can make the f32 offsets infinite.
    NonFiniteActivation,
    /// The output holds a NaN or an infinity (at this element index); never returned as
    /// `Ok`. Unreachable with a validated weight file and an in-range input; the last
    /// line of defence for other [`crate::Weights`] sources.
    NonFiniteOutput {
        /// Index of the first non-finite element.
        index: usize,
    },
    /// The weights lack a tensor the configuration requires.
    MissingTensor(TensorId),
    /// A tensor's byte length does not match its spec in the configuration.
    TensorSize {
        /// Which tensor.
        id: TensorId,
        /// Bytes the spec requires.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// An operator was called with an unsupported shape (the operators' standalone API,
    /// `ops`, is public with the `internals` feature).
    BadShape,
    /// An internal invariant did not hold (a bug in this crate); reported instead of a panic.
    Internal,
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::InvalidConfig(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidConfig(e) => write!(f, "invalid model configuration: {e}"),
            Error::BadDimensions { height, width } => write!(
                f,
                "image size {height}x{width} unsupported: height and width must be multiples of 4 and at least 8"
            ),
            Error::InputSize { expected, got } => {
                write!(f, "input has {got} values, expected {expected} (C·H·W)")
            }
            Error::OutputSize { expected, got } => {
                write!(f, "output has room for {got} values, expected {expected} (C·H·W)")
            }
            Error::ScratchTooSmall { needed, got } => {
                write!(f, "scratch buffer too small: {got} bytes given, {needed} needed")
            }
            Error::NonFiniteInput { index } => {
                write!(f, "input value at index {index} is NaN or infinite")
            }
            Error::InputOutOfRange { index } => write!(
                f,
                "input value at index {index} is outside the normalised range [-1, 1]"
            ),
            Error::NonFiniteActivation => f.write_str(
                "an intermediate activation became NaN or infinite (weights out of range)",
            ),
            Error::NonFiniteOutput { index } => {
                write!(f, "output value at index {index} is NaN or infinite")
            }
            Error::MissingTensor(id) => write!(f, "weights lack tensor {id}"),
            Error::TensorSize { id, expected, got } => {
                write!(f, "tensor {id} has {got} bytes, expected {expected}")
            }
            Error::BadShape => f.write_str("unsupported operator shape"),
            Error::Internal => f.write_str("internal error in dicyc-core (please report)"),
        }
    }
}

impl core::error::Error for Error {}
