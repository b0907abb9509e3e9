//! Typed errors of the reader ([`FormatError`]) and of the writer ([`WriteError`]).

use core::fmt;

use crate::config::{ConfigError, TensorId};

/// One of the three checksummed sections of a weight file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// The fixed 128-byte header (its CRC covers bytes `0..124`).
    Header,
    /// The tensor table and the zero padding up to the data section.
    Table,
    /// The data section: every tensor and its zero padding.
    Data,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Table => "tensor table",
            Section::Data => "data section",
        })
    }
}

/// A place in the file that a layout check is about.
///
/// Offsets reported with [`Region::Table`] and [`Region::Data`] count from the start of
/// the file; those reported with [`Region::Tensor`] are the record's own offsets, which
/// count from the start of the data section (and so does their `limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// The tensor table.
    Table,
    /// The data section as a whole.
    Data,
    /// The data of the tensor with this table index.
    Tensor(u32),
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Table => f.write_str("the tensor table"),
            Region::Data => f.write_str("the data section"),
            Region::Tensor(index) => write!(f, "tensor #{index}"),
        }
    }
}

/// A [`Normalization`](super::Normalization) field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NormalizationField {
    /// `input_offset`.
    InputOffset,
    /// `input_scale`.
    InputScale,
    /// `output_offset`.
    OutputOffset,
    /// `output_scale`.
    OutputScale,
}

impl fmt::Display for NormalizationField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NormalizationField::InputOffset => "input_offset",
            NormalizationField::InputScale => "input_scale",
            NormalizationField::OutputOffset => "output_offset",
            NormalizationField::OutputScale => "output_scale",
        })
    }
}

/// Why a byte slice is not a valid weight file (or a configuration has no file).
///
/// The reader checks in the order documented in `docs/FORMAT.md` and reports the first
/// failure. Every variant is `Copy` and carries only small numbers, so it can be returned
/// from `no_std` code and matched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The input ends before the header (`needed` = 128) or before the file length that
    /// the header records (`needed` = that length).
    Truncated {
        /// Bytes the file needs.
        needed: u64,
        /// Bytes the input has.
        available: u64,
    },
    /// The first 8 bytes are not [`MAGIC`](super::MAGIC).
    BadMagic {
        /// The 8 bytes found.
        found: [u8; 8],
    },
    /// The major version is not [`VERSION_MAJOR`](super::VERSION_MAJOR).
    UnsupportedVersion {
        /// The major version found.
        found: u16,
    },
    /// A section's stored CRC-32C differs from the CRC-32C of its bytes.
    CrcMismatch {
        /// Which section.
        section: Section,
        /// The checksum stored in the header.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// A reserved header or record byte is not zero (checked when the file's minor version
    /// is at most the reader's; newer minor versions may give these bytes a meaning).
    ReservedNotZero {
        /// Offset of the first non-zero reserved byte, from the start of the file.
        offset: u64,
    },
    /// The offset-layer byte has bits set outside the four offset sites.
    UnknownOffsetLayers {
        /// The byte found.
        bits: u8,
    },
    /// The offset-form byte holds no known [`OffsetForm`](crate::OffsetForm).
    UnknownOffsetForm {
        /// The byte found.
        found: u8,
    },
    /// The configuration in the header fails [`ModelConfig::validate`](crate::ModelConfig::validate).
    InvalidConfig(ConfigError),
    /// The stored architecture hash differs from the configuration's.
    ArchitectureHashMismatch {
        /// Hash stored in the header.
        stored: u64,
        /// Hash of the configuration in the header.
        computed: u64,
    },
    /// A normalisation constant is not finite, or a scale is zero.
    InvalidNormalization {
        /// The offending field.
        field: NormalizationField,
    },
    /// The tensor count differs from the configuration's.
    TensorCountMismatch {
        /// The configuration's tensor count.
        expected: u32,
        /// The count stored in the header.
        found: u32,
    },
    /// The file length recorded in the header is not the one the layout implies
    /// (data past the last tensor's padding, or missing final padding).
    FileLengthMismatch {
        /// Length implied by the table and configuration.
        expected: u64,
        /// Length recorded in the header.
        found: u64,
    },
    /// A region does not start on its required alignment (64 bytes).
    Misaligned {
        /// Which region.
        region: Region,
        /// Its start offset as stored.
        offset: u64,
    },
    /// A region extends past the end of the file (or its end overflows `u64`).
    OutOfBounds {
        /// Which region.
        region: Region,
        /// Its start offset as stored.
        offset: u64,
        /// Its length.
        len: u64,
        /// The end it must not pass.
        limit: u64,
    },
    /// A region starts before the previous one (header, table or tensor) ends.
    Overlap {
        /// Which region.
        region: Region,
        /// Its start offset as stored.
        offset: u64,
        /// The first offset it may start at.
        expected: u64,
    },
    /// A region starts after the aligned end of the previous one: the file has a hole.
    Hole {
        /// Which region.
        region: Region,
        /// Its start offset as stored.
        offset: u64,
        /// The offset it must start at.
        expected: u64,
    },
    /// A padding byte between or after regions is not zero.
    NonZeroPadding {
        /// Offset of the first non-zero padding byte, from the start of the file.
        offset: u64,
    },
    /// A tensor record has a dtype byte the reader does not know.
    UnknownDtype {
        /// Table index.
        index: u32,
        /// The byte found.
        found: u8,
    },
    /// A tensor record's `ndim` is not in `1..=4`.
    BadRank {
        /// Table index.
        index: u32,
        /// The `ndim` found.
        found: u8,
    },
    /// A tensor record has an unused dimension (past `ndim`) that is not 1.
    UnusedDimension {
        /// Table index.
        index: u32,
    },
    /// A tensor record's element or byte count overflows `u64`.
    DimsOverflow {
        /// Table index.
        index: u32,
    },
    /// A tensor record's byte length is not its element count times its dtype size.
    LengthMismatch {
        /// Table index.
        index: u32,
        /// `elements × dtype size`.
        expected: u64,
        /// The stored byte length.
        found: u64,
    },
    /// A tensor record's id is no [`TensorId`] encoding.
    UnknownTensorId {
        /// Table index.
        index: u32,
        /// The raw id found.
        found: u32,
    },
    /// A well-formed tensor record that is not the configuration's tensor at this index
    /// (other id, dtype or shape, or another order).
    TensorMismatch {
        /// Table index.
        index: u32,
    },
    /// A tensor holds a NaN or an infinity (the writer never writes one; a file with
    /// valid checksums can still carry one from another writer).
    NonFiniteWeight {
        /// Table index.
        index: u32,
        /// Flat index of the first non-finite element within the tensor.
        element: u64,
    },
    /// The file for this configuration would not fit in the address space (`usize`).
    TooLarge {
        /// Its size in bytes.
        bytes: u64,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::Truncated { needed, available } => write!(
                f,
                "weight file truncated: needs {needed} bytes, only {available} available"
            ),
            FormatError::BadMagic { found } => {
                write!(f, "not a dicyc weight file: bad magic {found:02x?}")
            }
            FormatError::UnsupportedVersion { found } => write!(
                f,
                "unsupported weight-file major version {found} (this reader supports {})",
                super::VERSION_MAJOR
            ),
            FormatError::CrcMismatch {
                section,
                stored,
                computed,
            } => write!(
                f,
                "CRC-32C mismatch in the {section}: stored {stored:#010x}, computed {computed:#010x}"
            ),
            FormatError::ReservedNotZero { offset } => {
                write!(f, "reserved byte at offset {offset} is not zero")
            }
            FormatError::UnknownOffsetLayers { bits } => {
                write!(f, "unknown offset-layer bits {bits:#04x}")
            }
            FormatError::UnknownOffsetForm { found } => write!(
                f,
                "unknown offset form {found} (this reader knows 0 = per-channel, 1 = shared)"
            ),
            FormatError::InvalidConfig(error) => {
                write!(f, "invalid model configuration in header: {error}")
            }
            FormatError::ArchitectureHashMismatch { stored, computed } => write!(
                f,
                "architecture hash mismatch: stored {stored:#018x}, configuration has {computed:#018x}"
            ),
            FormatError::InvalidNormalization { field } => write!(
                f,
                "normalisation {field} is not finite (or is a zero scale)"
            ),
            FormatError::TensorCountMismatch { expected, found } => write!(
                f,
                "header lists {found} tensors, the configuration has {expected}"
            ),
            FormatError::FileLengthMismatch { expected, found } => write!(
                f,
                "header records a file length of {found} bytes, the layout implies {expected}"
            ),
            FormatError::Misaligned { region, offset } => {
                write!(f, "{region} starts at offset {offset}, not 64-byte aligned")
            }
            FormatError::OutOfBounds {
                region,
                offset,
                len,
                limit,
            } => write!(
                f,
                "{region} ({len} bytes at offset {offset}) extends past {limit}"
            ),
            FormatError::Overlap {
                region,
                offset,
                expected,
            } => write!(
                f,
                "{region} starts at offset {offset}, overlapping what precedes it (expected {expected})"
            ),
            FormatError::Hole {
                region,
                offset,
                expected,
            } => write!(
                f,
                "{region} starts at offset {offset}, leaving a hole (expected {expected})"
            ),
            FormatError::NonZeroPadding { offset } => {
                write!(f, "padding byte at offset {offset} is not zero")
            }
            FormatError::UnknownDtype { index, found } => {
                write!(f, "tensor #{index} has unknown dtype {found}")
            }
            FormatError::BadRank { index, found } => {
                write!(f, "tensor #{index} has {found} dimensions (1 to 4 allowed)")
            }
            FormatError::UnusedDimension { index } => {
                write!(f, "tensor #{index} has an unused dimension that is not 1")
            }
            FormatError::DimsOverflow { index } => {
                write!(f, "tensor #{index} has dimensions whose size overflows")
            }
            FormatError::LengthMismatch {
                index,
                expected,
                found,
            } => write!(
                f,
                "tensor #{index} records {found} bytes, its shape and dtype need {expected}"
            ),
            FormatError::UnknownTensorId { index, found } => {
                write!(f, "tensor #{index} has unknown id {found:#010x}")
            }
            FormatError::TensorMismatch { index } => write!(
                f,
                "tensor #{index} does not match the configuration's tensor at that position"
            ),
            FormatError::NonFiniteWeight { index, element } => {
                write!(f, "tensor #{index} element {element} is NaN or infinite")
            }
            FormatError::TooLarge { bytes } => {
                write!(f, "weight file of {bytes} bytes does not fit in memory")
            }
        }
    }
}

impl core::error::Error for FormatError {}

/// Why [`write_weight_file`](super::write_weight_file) failed. Values that the file cannot
/// hold are errors naming the tensor, never silently clamped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WriteError {
    /// The configuration fails [`ModelConfig::validate`](crate::ModelConfig::validate).
    InvalidConfig(ConfigError),
    /// The normalisation would be rejected by the reader.
    InvalidNormalization {
        /// The offending field.
        field: NormalizationField,
    },
    /// The file would not fit in the address space (`usize`).
    TooLarge {
        /// Its size in bytes.
        bytes: u64,
    },
    /// The output buffer is shorter than [`file_size`](super::file_size).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes supplied.
        available: usize,
    },
    /// A value is NaN or infinite.
    NonFinite {
        /// The tensor.
        id: TensorId,
        /// Flat element index within the tensor.
        index: u64,
    },
    /// A finite value whose nearest fp16 is infinite (|value| ≥ 65520).
    OutOfRange {
        /// The tensor.
        id: TensorId,
        /// Flat element index within the tensor.
        index: u64,
        /// The value.
        value: f32,
    },
    /// The callback pushed more values than the tensor has.
    TooManyValues {
        /// The tensor.
        id: TensorId,
        /// Its element count.
        expected: u64,
    },
    /// The callback returned with fewer values than the tensor has.
    TooFewValues {
        /// The tensor.
        id: TensorId,
        /// Its element count.
        expected: u64,
        /// Values pushed.
        written: u64,
    },
    /// The callback gave up on this tensor (keep the reason in a captured variable).
    Aborted {
        /// The tensor.
        id: TensorId,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WriteError::InvalidConfig(error) => write!(f, "invalid model configuration: {error}"),
            WriteError::InvalidNormalization { field } => write!(
                f,
                "normalisation {field} is not finite (or is a zero scale)"
            ),
            WriteError::TooLarge { bytes } => {
                write!(f, "weight file of {bytes} bytes does not fit in memory")
            }
            WriteError::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer of {available} bytes is too small, the file needs {needed}"
            ),
            WriteError::NonFinite { id, index } => {
                write!(f, "{id}[{index}] is not finite")
            }
            WriteError::OutOfRange { id, index, value } => write!(
                f,
                "{id}[{index}] = {value} is outside the finite fp16 range (±65504)"
            ),
            WriteError::TooManyValues { id, expected } => {
                write!(f, "more than {expected} values supplied for {id}")
            }
            WriteError::TooFewValues {
                id,
                expected,
                written,
            } => write!(f, "{written} of {expected} values supplied for {id}"),
            WriteError::Aborted { id } => write!(f, "writing {id} was aborted by the caller"),
        }
    }
}

impl core::error::Error for WriteError {}
