//! The validating zero-copy reader: [`WeightFile`] and [`TensorView`].

use core::fmt;

use half::f16;

use super::crc::crc32c;
use super::error::{FormatError, Region, Section};
use super::header::{self, Header};
use super::layout::{self, DataCursor};
use super::table::Record;
use super::{Normalization, HEADER_LEN, MAGIC, RECORD_LEN, VERSION_MAJOR, VERSION_MINOR};
use crate::config::{Dtype, ModelConfig, OffsetLayers, TensorId, TensorSpec};

/// A validated weight file, borrowed from the bytes it was read from (typically flash).
///
/// Only [`WeightFile::new_checked`] makes one, after checking everything `docs/FORMAT.md`
/// lists, so no accessor can fail on a malformed file or panic.
#[derive(Clone, Copy)]
pub struct WeightFile<'a> {
    /// Exactly the file: `file_len` bytes from the start of the input.
    bytes: &'a [u8],
    config: ModelConfig,
    normalization: Normalization,
    minor: u16,
    architecture_hash: u64,
    header_crc: u32,
    table_crc: u32,
    data_crc: u32,
    data_offset: usize,
}

/// Converts a `u64` known to be at most an in-memory length.
fn to_usize(value: u64, available: usize) -> Result<usize, FormatError> {
    usize::try_from(value).map_err(|_| FormatError::Truncated {
        needed: value,
        available: available as u64,
    })
}

/// The sub-slice `start..end`, or `Truncated` (unreachable once lengths are checked).
fn slice(bytes: &[u8], start: usize, end: usize) -> Result<&[u8], FormatError> {
    bytes.get(start..end).ok_or(FormatError::Truncated {
        needed: end as u64,
        available: bytes.len() as u64,
    })
}

/// `NonZeroPadding` at `base` + the first non-zero byte of `padding`, if any.
fn check_zero(padding: &[u8], base: usize) -> Result<(), FormatError> {
    match padding.iter().position(|&b| b != 0) {
        Some(i) => Err(FormatError::NonZeroPadding {
            offset: (base as u64).saturating_add(i as u64),
        }),
        None => Ok(()),
    }
}

impl<'a> WeightFile<'a> {
    /// Validates `bytes` as a weight file, checksums included, in the order documented in
    /// `docs/FORMAT.md`, and returns a view of it.
    ///
    /// `bytes` may be longer than the file (a file in a flash partition is followed by
    /// erased bytes): the file's own length comes from its header, the rest is ignored,
    /// and [`WeightFile::bytes`] is the file alone.
    pub fn new_checked(bytes: &'a [u8]) -> Result<WeightFile<'a>, FormatError> {
        let available = bytes.len();
        // 1. A whole header.
        let head: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(FormatError::Truncated {
                needed: HEADER_LEN as u64,
                available: available as u64,
            })?;
        let h = Header::parse(head);
        // 2. Magic, 3. major version: the only fields whose place never changes.
        if h.magic != MAGIC {
            return Err(FormatError::BadMagic { found: h.magic });
        }
        if h.major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion { found: h.major });
        }
        // 4. Header checksum.
        let computed = header::header_crc(head);
        if computed != h.header_crc {
            return Err(FormatError::CrcMismatch {
                section: Section::Header,
                stored: h.header_crc,
                computed,
            });
        }
        // 5. Reserved header bytes, unless a newer minor version may have used them.
        // (Always `minor == 0` while VERSION_MINOR is 0; written for later minor versions.)
        #[allow(clippy::absurd_extreme_comparisons)]
        let strict = h.minor <= VERSION_MINOR;
        if strict {
            if let Some(offset) = header::first_reserved_non_zero(head) {
                return Err(FormatError::ReservedNotZero {
                    offset: offset as u64,
                });
            }
        }
        // 6. The configuration, its hash, its tensor count; the normalisation.
        let offset_layers =
            OffsetLayers::from_bits(h.offset_layers).ok_or(FormatError::UnknownOffsetLayers {
                bits: h.offset_layers,
            })?;
        let config = ModelConfig {
            in_channels: h.in_channels,
            out_channels: h.out_channels,
            ngf: h.ngf,
            n_blocks: h.n_blocks,
            offset_layers,
        };
        config.validate().map_err(FormatError::InvalidConfig)?;
        let architecture_hash = config.architecture_hash();
        if architecture_hash != h.architecture_hash {
            return Err(FormatError::ArchitectureHashMismatch {
                stored: h.architecture_hash,
                computed: architecture_hash,
            });
        }
        let expected_count = config.tensor_count();
        if h.tensor_count != expected_count {
            return Err(FormatError::TensorCountMismatch {
                expected: expected_count,
                found: h.tensor_count,
            });
        }
        let normalization = Normalization {
            input_offset: h.input_offset,
            input_scale: h.input_scale,
            output_offset: h.output_offset,
            output_scale: h.output_scale,
        };
        normalization
            .validate()
            .map_err(|field| FormatError::InvalidNormalization { field })?;
        // 7. The whole file is present.
        if h.file_len > available as u64 {
            return Err(FormatError::Truncated {
                needed: h.file_len,
                available: available as u64,
            });
        }
        let file_len = to_usize(h.file_len, available)?;
        let file = slice(bytes, 0, file_len)?;
        // 8. The table right after the header, 9. the data section right after the table.
        let header_end = HEADER_LEN as u64;
        if h.table_offset != header_end {
            return Err(if h.table_offset < header_end {
                FormatError::Overlap {
                    region: Region::Table,
                    offset: h.table_offset,
                    expected: header_end,
                }
            } else {
                FormatError::Hole {
                    region: Region::Table,
                    offset: h.table_offset,
                    expected: header_end,
                }
            });
        }
        // The count matches a valid configuration (≤ 1044 records): no overflow here.
        let table_end = header_end.saturating_add((h.tensor_count as u64) * RECORD_LEN as u64);
        let expected_data = layout::data_offset(h.tensor_count).unwrap_or(u64::MAX);
        if h.data_offset % super::ALIGN as u64 != 0 {
            return Err(FormatError::Misaligned {
                region: Region::Data,
                offset: h.data_offset,
            });
        }
        if h.data_offset < expected_data {
            return Err(FormatError::Overlap {
                region: Region::Data,
                offset: h.data_offset,
                expected: expected_data,
            });
        }
        if h.data_offset > expected_data {
            return Err(FormatError::Hole {
                region: Region::Data,
                offset: h.data_offset,
                expected: expected_data,
            });
        }
        if h.data_offset > h.file_len {
            return Err(FormatError::OutOfBounds {
                region: Region::Data,
                offset: h.data_offset,
                len: 0,
                limit: h.file_len,
            });
        }
        let data_offset = to_usize(h.data_offset, available)?;
        let table_end = to_usize(table_end, available)?;
        // 10. Table and data checksums.
        let table_section = slice(file, HEADER_LEN, data_offset)?;
        let computed = crc32c(table_section);
        if computed != h.table_crc {
            return Err(FormatError::CrcMismatch {
                section: Section::Table,
                stored: h.table_crc,
                computed,
            });
        }
        let data = slice(file, data_offset, file_len)?;
        let computed = crc32c(data);
        if computed != h.data_crc {
            return Err(FormatError::CrcMismatch {
                section: Section::Data,
                stored: h.data_crc,
                computed,
            });
        }
        // 11. Zero padding between the table and the data.
        check_zero(slice(file, table_end, data_offset)?, table_end)?;
        // 12. Every record: well-formed, the configuration's tensor, placed canonically.
        let mut cursor = DataCursor::new();
        for (index, spec) in (0..h.tensor_count).zip(config.tensors()) {
            let record_at = HEADER_LEN.saturating_add((index as usize).saturating_mul(RECORD_LEN));
            if strict {
                if let Some(offset) = Record::first_reserved_non_zero(table_section, index) {
                    return Err(FormatError::ReservedNotZero {
                        offset: record_at.saturating_add(offset) as u64,
                    });
                }
            }
            let record = Record::parse(table_section, index).ok_or(FormatError::Truncated {
                needed: table_end as u64,
                available: available as u64,
            })?;
            check_record(&record, index, &spec)?;
            let region = Region::Tensor(index);
            if record.offset % super::ALIGN as u64 != 0 {
                return Err(FormatError::Misaligned {
                    region,
                    offset: record.offset,
                });
            }
            if record.offset < cursor.next {
                return Err(FormatError::Overlap {
                    region,
                    offset: record.offset,
                    expected: cursor.next,
                });
            }
            if record.offset > cursor.next {
                return Err(FormatError::Hole {
                    region,
                    offset: record.offset,
                    expected: cursor.next,
                });
            }
            let data_len = data.len() as u64;
            let end = match record.offset.checked_add(record.len) {
                Some(end) if end <= data_len => end,
                _ => {
                    return Err(FormatError::OutOfBounds {
                        region,
                        offset: record.offset,
                        len: record.len,
                        limit: data_len,
                    })
                }
            };
            cursor
                .place(record.len)
                .ok_or(FormatError::DimsOverflow { index })?;
            // Padding after the tensor (as far as the file goes: a short file is caught
            // by the length check below).
            let pad_end = cursor.next.min(data_len);
            let (end, pad_end) = (to_usize(end, available)?, to_usize(pad_end, available)?);
            check_zero(slice(data, end, pad_end)?, data_offset.saturating_add(end))?;
            // Every value finite: the writer refuses NaN and infinities, so one here was
            // written by something else and would turn the output into NaN.
            let start = to_usize(record.offset, available)?;
            if let Some(element) =
                super::le::first_non_finite(slice(data, start, end)?, spec.dtype.size())
            {
                return Err(FormatError::NonFiniteWeight {
                    index,
                    element: element as u64,
                });
            }
        }
        // 13. Nothing after the last tensor's padding, and that padding complete.
        let expected_len = h.data_offset.saturating_add(cursor.next);
        if expected_len != h.file_len {
            return Err(FormatError::FileLengthMismatch {
                expected: expected_len,
                found: h.file_len,
            });
        }
        Ok(WeightFile {
            bytes: file,
            config,
            normalization,
            minor: h.minor,
            architecture_hash,
            header_crc: h.header_crc,
            table_crc: h.table_crc,
            data_crc: h.data_crc,
            data_offset,
        })
    }

    /// The generator configuration stored in the header.
    pub fn config(&self) -> ModelConfig {
        self.config
    }

    /// The intensity normalisation stored in the header.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// `(major, minor)` version of the file.
    pub fn version(&self) -> (u16, u16) {
        (VERSION_MAJOR, self.minor)
    }

    /// The architecture hash (equal to `self.config().architecture_hash()`).
    pub fn architecture_hash(&self) -> u64 {
        self.architecture_hash
    }

    /// The file alone: its header's file length, without any bytes that followed it in the
    /// slice given to [`WeightFile::new_checked`].
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The stored header CRC-32C. The header holds the table and data checksums, so this
    /// one value fingerprints the whole file.
    pub fn crc32c(&self) -> u32 {
        self.header_crc
    }

    /// The stored CRC-32C of one section.
    pub fn section_crc32c(&self, section: Section) -> u32 {
        match section {
            Section::Header => self.header_crc,
            Section::Table => self.table_crc,
            Section::Data => self.data_crc,
        }
    }

    /// Number of tensors (the configuration's [`ModelConfig::tensor_count`]).
    pub fn tensor_count(&self) -> u32 {
        self.config.tensor_count()
    }

    /// The tensor `id`, or `None` if the configuration has no such tensor.
    pub fn tensor(&self, id: TensorId) -> Option<TensorView<'a>> {
        let (index, spec) = self
            .config
            .tensors()
            .enumerate()
            .find(|(_, spec)| spec.id == id)?;
        self.view(u32::try_from(index).ok()?, spec)
    }

    /// Every tensor, in file (canonical) order.
    pub fn tensors(&self) -> TensorViews<'a> {
        TensorViews {
            file: *self,
            specs: self.config.tensors(),
            index: 0,
        }
    }

    /// The view of record `index`, whose spec is `spec` (both validated).
    fn view(&self, index: u32, spec: TensorSpec) -> Option<TensorView<'a>> {
        let table = self.bytes.get(HEADER_LEN..self.data_offset)?;
        let record = Record::parse(table, index)?;
        let start = self
            .data_offset
            .checked_add(usize::try_from(record.offset).ok()?)?;
        let end = start.checked_add(usize::try_from(record.len).ok()?)?;
        Some(TensorView {
            spec,
            bytes: self.bytes.get(start..end)?,
        })
    }
}

impl fmt::Debug for WeightFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightFile")
            .field("len", &self.bytes.len())
            .field("version", &self.version())
            .field("config", &self.config)
            .field("normalization", &self.normalization)
            .field("crc32c", &format_args!("{:#010x}", self.header_crc))
            .finish()
    }
}

/// Record checks that need no placement: dtype, rank, dims, length, id, configuration.
fn check_record(record: &Record, index: u32, spec: &TensorSpec) -> Result<(), FormatError> {
    let dtype = Dtype::from_u8(record.dtype).ok_or(FormatError::UnknownDtype {
        index,
        found: record.dtype,
    })?;
    if !(1..=4).contains(&record.ndim) {
        return Err(FormatError::BadRank {
            index,
            found: record.ndim,
        });
    }
    let (used, unused) = record.dims.split_at(usize::from(record.ndim).min(4));
    if unused.iter().any(|&d| d != 1) {
        return Err(FormatError::UnusedDimension { index });
    }
    let mut expected: u64 = dtype.size() as u64;
    for &dim in used {
        expected = expected
            .checked_mul(dim as u64)
            .ok_or(FormatError::DimsOverflow { index })?;
    }
    if record.len != expected {
        return Err(FormatError::LengthMismatch {
            index,
            expected,
            found: record.len,
        });
    }
    let id = TensorId::from_u32(record.id).ok_or(FormatError::UnknownTensorId {
        index,
        found: record.id,
    })?;
    if id != spec.id
        || dtype != spec.dtype
        || record.ndim != spec.ndim
        || record.dims != spec.dims_raw
    {
        return Err(FormatError::TensorMismatch { index });
    }
    Ok(())
}

/// Iterator over a [`WeightFile`]'s tensors in file order ([`WeightFile::tensors`]).
#[derive(Clone, Debug)]
pub struct TensorViews<'a> {
    file: WeightFile<'a>,
    specs: crate::config::Tensors,
    index: u32,
}

impl<'a> Iterator for TensorViews<'a> {
    type Item = TensorView<'a>;

    fn next(&mut self) -> Option<TensorView<'a>> {
        let spec = self.specs.next()?;
        let view = self.file.view(self.index, spec);
        self.index = self.index.saturating_add(1);
        view
    }
}

/// One tensor's spec and its little-endian data, borrowed from the file.
///
/// `bytes.len() == spec.byte_len()`. The data is 64-byte aligned relative to the file
/// start; whether it is aligned in memory depends on where the file lies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TensorView<'a> {
    /// Which tensor, its dtype and shape.
    pub spec: TensorSpec,
    /// Its data: `element_count` little-endian values of `spec.dtype`.
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.spec.dtype.size()
    }

    /// Whether the tensor has no elements (never for a valid configuration).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` of an fp16 tensor; `None` if `i` is out of range or the dtype is not fp16.
    pub fn f16_at(&self, i: usize) -> Option<f16> {
        if self.spec.dtype != Dtype::F16 {
            return None;
        }
        super::le::array(self.bytes, i.checked_mul(2)?).map(f16::from_le_bytes)
    }

    /// Element `i` as `f32`, for either dtype (fp16 widens exactly); `None` if `i` is out
    /// of range.
    pub fn f32_at(&self, i: usize) -> Option<f32> {
        match self.spec.dtype {
            Dtype::F16 => self.f16_at(i).map(f16::to_f32),
            Dtype::F32 => super::le::f32_at(self.bytes, i.checked_mul(4)?),
        }
    }

    /// Every element as `f32`, in order.
    pub fn iter_f32(&self) -> impl Iterator<Item = f32> + 'a {
        let view = *self;
        (0..self.len()).filter_map(move |i| view.f32_at(i))
    }

    /// The data as `&[f16]` without copying: `Some` when the dtype is fp16, the host is
    /// little-endian and the data is 2-byte aligned in memory.
    pub fn as_f16_slice(&self) -> Option<&'a [f16]> {
        if self.spec.dtype != Dtype::F16 || cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(self.bytes).ok()
    }

    /// The data as `&[f32]` without copying: `Some` when the dtype is f32, the host is
    /// little-endian and the data is 4-byte aligned in memory.
    pub fn as_f32_slice(&self) -> Option<&'a [f32]> {
        if self.spec.dtype != Dtype::F32 || cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(self.bytes).ok()
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorView")
            .field("spec", &self.spec)
            .field("len", &self.bytes.len())
            .finish()
    }
}
