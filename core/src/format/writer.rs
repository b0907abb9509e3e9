//! The writer: serialises a configuration, its normalisation and the caller's tensor values
//! into a caller-supplied buffer, using the same layout code as the reader.

use half::f16;

use super::crc::crc32c;
use super::error::WriteError;
use super::header::{self, Header};
use super::layout::{self, DataCursor};
use super::table::Record;
use super::{
    file_size, FormatError, Normalization, HEADER_LEN, MAGIC, RECORD_LEN, VERSION_MAJOR,
    VERSION_MINOR,
};
use crate::config::{Dtype, ModelConfig, TensorSpec};

/// Where the fill callback of [`write_weight_file`] puts one tensor's values, in flat
/// (row-major, PyTorch) order. Values are converted to the tensor's dtype: to fp16 with
/// round-to-nearest-even, and a value that is not finite or whose nearest fp16 is infinite
/// is an error naming the tensor and element, never clamped.
pub struct TensorSink<'a> {
    spec: TensorSpec,
    out: &'a mut [u8],
    written: u64,
}

impl core::fmt::Debug for TensorSink<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TensorSink")
            .field("spec", &self.spec)
            .field("len", &self.len())
            .field("written", &self.written)
            .finish()
    }
}

impl TensorSink<'_> {
    /// The tensor being written.
    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    /// Number of values the tensor needs in all.
    pub fn len(&self) -> u64 {
        (self.out.len() / self.spec.dtype.size()) as u64
    }

    /// Whether the tensor has no elements (never for a valid configuration).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values pushed so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Number of values still to push.
    pub fn remaining(&self) -> u64 {
        self.len().saturating_sub(self.written)
    }

    /// The bytes of the next element, or `TooManyValues`.
    fn next_slot(&mut self) -> Result<&mut [u8], WriteError> {
        let size = self.spec.dtype.size();
        let too_many = WriteError::TooManyValues {
            id: self.spec.id,
            expected: self.len(),
        };
        let start = usize::try_from(self.written)
            .ok()
            .and_then(|w| w.checked_mul(size))
            .ok_or(too_many)?;
        let end = start.checked_add(size).ok_or(too_many)?;
        self.out.get_mut(start..end).ok_or(too_many)
    }

    /// Appends one value, converted to the tensor's dtype.
    pub fn push(&mut self, value: f32) -> Result<(), WriteError> {
        let (id, index) = (self.spec.id, self.written);
        let dtype = self.spec.dtype;
        let slot = self.next_slot()?;
        if !value.is_finite() {
            return Err(WriteError::NonFinite { id, index });
        }
        match dtype {
            Dtype::F16 => {
                let half = f16::from_f32(value);
                if half.is_infinite() {
                    return Err(WriteError::OutOfRange { id, index, value });
                }
                slot.copy_from_slice(&half.to_le_bytes());
            }
            Dtype::F32 => slot.copy_from_slice(&value.to_le_bytes()),
        }
        self.written += 1;
        Ok(())
    }

    /// Appends an already-rounded fp16 value (widened exactly for an f32 tensor).
    pub fn push_f16(&mut self, value: f16) -> Result<(), WriteError> {
        let (id, index) = (self.spec.id, self.written);
        let dtype = self.spec.dtype;
        let slot = self.next_slot()?;
        if !value.is_finite() {
            return Err(WriteError::NonFinite { id, index });
        }
        match dtype {
            Dtype::F16 => slot.copy_from_slice(&value.to_le_bytes()),
            Dtype::F32 => slot.copy_from_slice(&value.to_f32().to_le_bytes()),
        }
        self.written += 1;
        Ok(())
    }

    /// Appends every value of `values` in order (stops at the first error).
    pub fn push_slice(&mut self, values: &[f32]) -> Result<(), WriteError> {
        values.iter().try_for_each(|&v| self.push(v))
    }

    /// `TooFewValues` unless every element was written.
    fn finish(&self) -> Result<(), WriteError> {
        if self.written == self.len() {
            Ok(())
        } else {
            Err(WriteError::TooFewValues {
                id: self.spec.id,
                expected: self.len(),
                written: self.written,
            })
        }
    }
}

/// Writes `config`'s weight file into the start of `out` and returns its length
/// ([`file_size`]`(config)`); bytes of `out` past that length are left untouched.
///
/// `fill` is called once per tensor, in file order, with the tensor's spec and a
/// [`TensorSink`] that must receive exactly `spec.element_count()` values; an error it
/// returns is passed through (use [`WriteError::Aborted`] for reasons of your own).
/// Checksums are computed last, so a failed write never leaves a file that validates.
///
/// No allocation: from `std`, pass `&mut vec![0u8; file_size(&config)?]`.
pub fn write_weight_file(
    out: &mut [u8],
    config: &ModelConfig,
    norm: &Normalization,
    mut fill: impl FnMut(&TensorSpec, &mut TensorSink<'_>) -> Result<(), WriteError>,
) -> Result<usize, WriteError> {
    config.validate().map_err(WriteError::InvalidConfig)?;
    norm.validate()
        .map_err(|field| WriteError::InvalidNormalization { field })?;
    let size = file_size(config).map_err(|error| match error {
        FormatError::InvalidConfig(e) => WriteError::InvalidConfig(e),
        _ => WriteError::TooLarge { bytes: u64::MAX },
    })?;
    let available = out.len();
    let too_small = WriteError::BufferTooSmall {
        needed: size,
        available,
    };
    let file = out.get_mut(..size).ok_or(too_small)?;
    file.fill(0);
    let count = config.tensor_count();
    // The layout is the one `file_size` computed, so the `too_small` fallbacks below are
    // unreachable; they keep this function free of panic paths.
    let data_offset = layout::data_offset(count)
        .and_then(|d| usize::try_from(d).ok())
        .ok_or(too_small)?;
    let (head, rest) = file.split_at_mut_checked(HEADER_LEN).ok_or(too_small)?;
    let table_len = data_offset.checked_sub(HEADER_LEN).ok_or(too_small)?;
    let (table, data) = rest.split_at_mut_checked(table_len).ok_or(too_small)?;

    let mut cursor = DataCursor::new();
    for (index, spec) in config.tensors().enumerate() {
        let len = layout::byte_len(&spec).ok_or(too_small)?;
        let offset = cursor.place(len).ok_or(too_small)?;
        let slot = table
            .get_mut(index.saturating_mul(RECORD_LEN)..)
            .ok_or(too_small)?;
        if !Record::for_spec(&spec, offset, len).write(slot) {
            return Err(too_small);
        }
        let start = usize::try_from(offset).map_err(|_| too_small)?;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| too_small)?)
            .ok_or(too_small)?;
        let mut sink = TensorSink {
            spec,
            out: data.get_mut(start..end).ok_or(too_small)?,
            written: 0,
        };
        fill(&spec, &mut sink)?;
        sink.finish()?;
    }

    let header = Header {
        magic: MAGIC,
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        tensor_count: count,
        file_len: size as u64,
        table_offset: HEADER_LEN as u64,
        data_offset: data_offset as u64,
        architecture_hash: config.architecture_hash(),
        in_channels: config.in_channels,
        out_channels: config.out_channels,
        ngf: config.ngf,
        n_blocks: config.n_blocks,
        offset_layers: config.offset_layers.bits(),
        offset_form: config.offset_layers.form() as u8,
        input_offset: norm.input_offset,
        input_scale: norm.input_scale,
        output_offset: norm.output_offset,
        output_scale: norm.output_scale,
        table_crc: crc32c(table),
        data_crc: crc32c(data),
        header_crc: 0,
    };
    let head: &mut [u8; HEADER_LEN] = head.try_into().map_err(|_| too_small)?;
    header.write(head);
    header::seal(head);
    Ok(size)
}

#[cfg(test)]
mod tests {
    use half::f16;

    #[test]
    fn f16_conversion_rounds_to_nearest_even() {
        // Halfway between 1 and 1 + 2^-10 rounds down to the even 1.
        assert_eq!(f16::from_f32(1.0 + 2f32.powi(-11)), f16::from_f32(1.0));
        // Halfway between 1 + 2^-10 and 1 + 2^-9 rounds up to the even 1 + 2^-9.
        assert_eq!(
            f16::from_f32(1.0 + 3.0 * 2f32.powi(-11)).to_f32(),
            1.0 + 2f32.powi(-9)
        );
        // 65504 is the largest finite fp16; 65519.99 still rounds to it; 65520 overflows.
        assert_eq!(f16::from_f32(65519.99).to_f32(), 65504.0);
        assert!(f16::from_f32(65520.0).is_infinite());
    }
}
