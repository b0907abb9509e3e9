//! The weight file: one versioned, checksummed, 64-byte aligned binary format that the
//! core reads zero-copy from flash ([`WeightFile`]) and that the trainer's exporter writes
//! through [`write_weight_file`] — one implementation of the layout for both directions.
//!
//! The byte layout, the validation order and the versioning policy are specified in
//! `docs/FORMAT.md`. In short:
//!
//! ```text
//! [0, 128)                 header: magic, version, lengths, offsets, ModelConfig,
//!                          Normalization, architecture hash, table and data CRC-32C,
//!                          header CRC-32C
//! [128, 128 + 48·n)        n tensor records (id, dtype, ndim, dims, offset, length)
//!                          zero padding up to a multiple of 64
//! [data_offset, file_len)  tensor data in canonical order, each tensor 64-byte aligned,
//!                          zero padding after each tensor up to a multiple of 64
//! ```
//!
//! Reading never panics, never allocates and never copies a tensor: every malformed input
//! is a [`FormatError`]. Writing goes into a caller-supplied buffer of exactly
//! [`file_size`] bytes; values that fp16 cannot hold are a [`WriteError`] naming the
//! tensor, never clamped.
//!
//! ```
//! use dicyc_core::format::{file_size, write_weight_file, Normalization, WeightFile};
//! use dicyc_core::{ModelConfig, OffsetLayers, TensorId, Param};
//!
//! let config = ModelConfig { in_channels: 1, out_channels: 1, ngf: 2, n_blocks: 1,
//!                            offset_layers: OffsetLayers::ALL };
//! let mut buffer = [0u8; 16384]; // more than the 9,536 bytes needed
//! let size = file_size(&config).unwrap();
//! let written = write_weight_file(&mut buffer, &config, &Normalization::IDENTITY, |spec, sink| {
//!     for i in 0..spec.element_count() {
//!         sink.push(0.01 * i as f32)?;
//!     }
//!     Ok(())
//! }).unwrap();
//! assert_eq!(written, size);
//!
//! let file = WeightFile::new_checked(&buffer).unwrap(); // trailing bytes are allowed
//! assert_eq!(file.config(), config);
//! assert_eq!(file.bytes().len(), size);
//! let stem = file.tensor(TensorId::Stem(Param::Weight)).unwrap();
//! assert_eq!(stem.f32_at(1), Some(0.010002136)); // 0.01 rounded to fp16
//! ```

mod crc;
mod error;
mod header;
mod layout;
// Crate-visible: the ops decode weight bytes with the same readers.
pub(crate) mod le;
mod reader;
mod table;
mod writer;

pub use crc::crc32c;
pub use error::{FormatError, NormalizationField, Region, Section, WriteError};
pub use reader::{TensorView, TensorViews, WeightFile};
pub use writer::{write_weight_file, TensorSink};

use crate::config::ModelConfig;

/// The first 8 bytes of every weight file.
pub const MAGIC: [u8; 8] = *b"DICYCGEN";
/// The major version this crate reads and writes. Bumped only for structural changes;
/// the reader rejects any other major version.
pub const VERSION_MAJOR: u16 = 1;
/// The minor version this crate writes. Minor versions are additive: the reader accepts
/// files with a higher minor version (and then ignores the reserved bytes).
pub const VERSION_MINOR: u16 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 128;
/// Size of one tensor record in bytes.
pub const RECORD_LEN: usize = 48;
/// Alignment of the data section and of every tensor's data, in bytes (from the start of
/// the file).
pub const ALIGN: usize = 64;

/// Maps a per-volume standardised intensity `z` into the generator's range, and the
/// generator's output directly into the target domain's units:
///
/// ```text
/// z               = (x - mean) / sd          (x: source voxel; mean, sd over the whole volume)
/// generator_input = clamp((z - input_offset) * input_scale, -1, 1)
/// output          = generator_output * output_scale + output_offset   (target units)
/// ```
///
/// `trainer export` writes `input_offset = 0`, `input_scale = 1 / sd_range` (the training
/// run's `sd_range`, default 3) and `output_offset`, `output_scale` = the target domain's
/// typical mean and `sd_range · sd` (from the run's `data-stats.json`; 0 and 1 without it,
/// i.e. outputs in the generator's range) — exactly the map `trainer synth` applies.
///
/// All four constants must be finite and both scales non-zero; the reader rejects a file
/// otherwise and the writer refuses to write one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Subtracted from the standardised input intensity `z`.
    pub input_offset: f32,
    /// Multiplies the offset input intensity (then clamped to [-1, 1]).
    pub input_scale: f32,
    /// Added to the scaled generator output: target units.
    pub output_offset: f32,
    /// Multiplies the generator output: target units per generator unit.
    pub output_scale: f32,
}

impl Normalization {
    /// The identity mapping: offsets 0, scales 1.
    pub const IDENTITY: Normalization = Normalization {
        input_offset: 0.0,
        input_scale: 1.0,
        output_offset: 0.0,
        output_scale: 1.0,
    };

    /// Checks that every constant is finite and both scales are non-zero; `Err` names the
    /// first offending field.
    pub fn validate(&self) -> Result<(), NormalizationField> {
        let fields = [
            (self.input_offset, NormalizationField::InputOffset, false),
            (self.input_scale, NormalizationField::InputScale, true),
            (self.output_offset, NormalizationField::OutputOffset, false),
            (self.output_scale, NormalizationField::OutputScale, true),
        ];
        for (value, field, is_scale) in fields {
            if !value.is_finite() || (is_scale && value == 0.0) {
                return Err(field);
            }
        }
        Ok(())
    }

    /// `clamp((z - input_offset) * input_scale, -1, 1)`: a standardised intensity as
    /// generator input. The clamp keeps every input inside the range
    /// [`crate::synthesize`] accepts ([`crate::MAX_ABS_INPUT`]) and the tanh-like range the
    /// generator was trained on; outliers (metal, bright vessels) saturate instead of
    /// being rejected. A NaN stays NaN (and `synthesize` rejects it).
    pub fn to_generator(&self, z: f32) -> f32 {
        ((z - self.input_offset) * self.input_scale)
            .clamp(-crate::MAX_ABS_INPUT, crate::MAX_ABS_INPUT)
    }

    /// `y * output_scale + output_offset`: a generator output (tanh range) in the target
    /// domain's units. Not clamped: the output is already bounded by the tanh.
    pub fn from_generator(&self, y: f32) -> f32 {
        y * self.output_scale + self.output_offset
    }
}

impl Default for Normalization {
    fn default() -> Normalization {
        Normalization::IDENTITY
    }
}

/// The exact number of bytes of `config`'s weight file (what [`write_weight_file`] needs
/// and returns).
///
/// Errors: [`FormatError::InvalidConfig`] if the configuration fails validation,
/// [`FormatError::TooLarge`] if the size does not fit in `usize` (only on targets with a
/// narrow address space).
pub fn file_size(config: &ModelConfig) -> Result<usize, FormatError> {
    config.validate().map_err(FormatError::InvalidConfig)?;
    let bytes = layout::file_len(config).ok_or(FormatError::TooLarge { bytes: u64::MAX })?;
    usize::try_from(bytes).map_err(|_| FormatError::TooLarge { bytes })
}
