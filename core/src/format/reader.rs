//! The validating zero-copy reader: [`WeightFile`] and [`TensorView`].

use core::fmt;

use half::f16;

use super::crc::crc32c;
use super::error::{FormatError, Region, Section};
use super::header::{self, Header};
use super::layout::{self, DataCursor};
use super::table::Record;
use super::{Normalization, HEADER_LEN, MAGIC, RECORD_LEN, VERSION_MAJOR, VERSION_MINOR};
use crate::config::{Dtype, ModelConfig, OffsetForm, OffsetLayers, TensorId, TensorSpec};

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
        let head = whole_header(bytes)?;
        let h = Header::parse(head);
        check_magic_and_major(&h)?;
        crc_matches(Section::Header, h.header_crc, header::header_crc(head))?;
        // Reserved bytes are checked unless a newer minor version may have used them.
        let strict = h.minor <= VERSION_MINOR;
        if strict {
            reserved_zero(header::first_reserved_non_zero(head), 0)?;
        }
        let (config, architecture_hash) = header_config(&h)?;
        let normalization = header_normalization(&h)?;
        let file = whole_file(bytes, &h)?;
        let (table_end, data_offset) = section_offsets(&h, available)?;
        let sections = checksummed_sections(file, &h, table_end, data_offset, available)?;
        check_zero(slice(file, table_end, data_offset)?, table_end)?;
        let data_len = sections.check_records(&config, h.tensor_count, strict)?;
        check_file_len(&h, data_len)?;
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

// The steps of `WeightFile::new_checked`, in the order `docs/FORMAT.md` ("Validation")
// numbers them: the first failing check is the one reported, so each step runs only on
// what the steps before it have established.

/// Step 1: a whole header, before any field is read.
fn whole_header(bytes: &[u8]) -> Result<&[u8; HEADER_LEN], FormatError> {
    bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FormatError::Truncated {
            needed: HEADER_LEN as u64,
            available: bytes.len() as u64,
        })
}

/// Steps 2 and 3: magic and major version, before the checksum, because they are the
/// only fields whose place never changes (they decide where the checksum is).
fn check_magic_and_major(h: &Header) -> Result<(), FormatError> {
    if h.magic != MAGIC {
        return Err(FormatError::BadMagic { found: h.magic });
    }
    if h.major != VERSION_MAJOR {
        return Err(FormatError::UnsupportedVersion { found: h.major });
    }
    Ok(())
}

/// `CrcMismatch` for `section` unless its `stored` checksum is the `computed` one
/// (step 4 for the header, step 10 for the table and the data).
fn crc_matches(section: Section, stored: u32, computed: u32) -> Result<(), FormatError> {
    if computed == stored {
        Ok(())
    } else {
        Err(FormatError::CrcMismatch {
            section,
            stored,
            computed,
        })
    }
}

/// `ReservedNotZero` at `base` + `found`, the first non-zero reserved byte if any (step 5
/// for the header, base 0; step 12 for a record, base its offset in the file).
fn reserved_zero(found: Option<usize>, base: usize) -> Result<(), FormatError> {
    match found {
        Some(offset) => Err(FormatError::ReservedNotZero {
            offset: base.saturating_add(offset) as u64,
        }),
        None => Ok(()),
    }
}

/// Step 6: the configuration the header describes, valid, with the architecture hash and
/// tensor count it implies stored; returned with that hash. Checked before any offset,
/// because the layout the later steps demand is the configuration's.
fn header_config(h: &Header) -> Result<(ModelConfig, u64), FormatError> {
    let offset_layers =
        OffsetLayers::from_bits(h.offset_layers).ok_or(FormatError::UnknownOffsetLayers {
            bits: h.offset_layers,
        })?;
    // Version 1.0 had no form: its byte was reserved, so it must be zero there.
    if h.minor == 0 && h.offset_form != 0 {
        return Err(FormatError::ReservedNotZero {
            offset: header::OFFSET_FORM_AT as u64,
        });
    }
    let form = OffsetForm::from_u8(h.offset_form).ok_or(FormatError::UnknownOffsetForm {
        found: h.offset_form,
    })?;
    let config = ModelConfig {
        in_channels: h.in_channels,
        out_channels: h.out_channels,
        ngf: h.ngf,
        n_blocks: h.n_blocks,
        offset_layers: offset_layers.with_form(form),
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
    Ok((config, architecture_hash))
}

/// Step 6, last: the normalisation constants, finite with non-zero scales, so that no
/// caller maps intensities through a NaN.
fn header_normalization(h: &Header) -> Result<Normalization, FormatError> {
    let normalization = Normalization {
        input_offset: h.input_offset,
        input_scale: h.input_scale,
        output_offset: h.output_offset,
        output_scale: h.output_scale,
    };
    normalization
        .validate()
        .map_err(|field| FormatError::InvalidNormalization { field })?;
    Ok(normalization)
}

/// Step 7: the whole file is present; it is the header's `file_len` bytes from the start
/// (what follows, erased flash for instance, is ignored).
fn whole_file<'a>(bytes: &'a [u8], h: &Header) -> Result<&'a [u8], FormatError> {
    let available = bytes.len();
    if h.file_len > available as u64 {
        return Err(FormatError::Truncated {
            needed: h.file_len,
            available: available as u64,
        });
    }
    let file_len = to_usize(h.file_len, available)?;
    slice(bytes, 0, file_len)
}

/// `Overlap` if `region` starts before `expected`, `Hole` if after: one configuration has
/// exactly one layout, so anything else is a malformed file.
fn placed_at(region: Region, offset: u64, expected: u64) -> Result<(), FormatError> {
    if offset < expected {
        return Err(FormatError::Overlap {
            region,
            offset,
            expected,
        });
    }
    if offset > expected {
        return Err(FormatError::Hole {
            region,
            offset,
            expected,
        });
    }
    Ok(())
}

/// Steps 8 and 9: the table right after the header, the data section aligned right after
/// the table and inside the file; returns the end of the records and the data offset.
fn section_offsets(h: &Header, available: usize) -> Result<(usize, usize), FormatError> {
    let header_end = HEADER_LEN as u64;
    placed_at(Region::Table, h.table_offset, header_end)?;
    // The count matches a valid configuration (≤ 1044 records): no overflow here.
    let table_end = header_end.saturating_add((h.tensor_count as u64) * RECORD_LEN as u64);
    let expected_data = layout::data_offset(h.tensor_count).unwrap_or(u64::MAX);
    if h.data_offset % super::ALIGN as u64 != 0 {
        return Err(FormatError::Misaligned {
            region: Region::Data,
            offset: h.data_offset,
        });
    }
    placed_at(Region::Data, h.data_offset, expected_data)?;
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
    Ok((table_end, data_offset))
}

/// Step 10: the table and data checksums, table first; returns the two sections. Checked
/// before any record is read, so a corrupted table is reported as corruption, not as
/// whichever record check it happens to trip.
fn checksummed_sections<'a>(
    file: &'a [u8],
    h: &Header,
    table_end: usize,
    data_offset: usize,
    available: usize,
) -> Result<Sections<'a>, FormatError> {
    let table = slice(file, HEADER_LEN, data_offset)?;
    crc_matches(Section::Table, h.table_crc, crc32c(table))?;
    let data = slice(file, data_offset, file.len())?;
    crc_matches(Section::Data, h.data_crc, crc32c(data))?;
    Ok(Sections {
        table,
        data,
        table_end,
        data_offset,
        available,
    })
}

/// Step 13: nothing after the last tensor's padding, and that padding complete.
fn check_file_len(h: &Header, data_len: u64) -> Result<(), FormatError> {
    let expected_len = h.data_offset.saturating_add(data_len);
    if expected_len != h.file_len {
        return Err(FormatError::FileLengthMismatch {
            expected: expected_len,
            found: h.file_len,
        });
    }
    Ok(())
}

/// Where a tensor lies in the data section: its data `start..end`, then zero padding up
/// to `next` (the aligned start of the tensor after it).
#[derive(Clone, Copy)]
struct Placed {
    start: u64,
    end: u64,
    next: u64,
}

/// The located, checksummed table and data sections that step 12 reads the records and
/// tensors from.
struct Sections<'a> {
    /// `HEADER_LEN..data_offset`: the records and the padding after them.
    table: &'a [u8],
    /// `data_offset..file_len`.
    data: &'a [u8],
    /// End of the last record (file offset).
    table_end: usize,
    /// Start of the data section (file offset).
    data_offset: usize,
    /// Length of the slice given to `new_checked` (for `Truncated`).
    available: usize,
}

impl Sections<'_> {
    /// Step 12: every record well-formed, the configuration's tensor, placed canonically,
    /// with zero padding and finite values; returns the data section's canonical length
    /// (the aligned end of the last tensor).
    fn check_records(
        &self,
        config: &ModelConfig,
        tensor_count: u32,
        strict: bool,
    ) -> Result<u64, FormatError> {
        let mut cursor = DataCursor::new();
        for (index, spec) in (0..tensor_count).zip(config.tensors()) {
            let record = self.record(index, &spec, strict)?;
            let placed = self.place(&record, index, &mut cursor)?;
            self.check_bytes(index, placed, spec.dtype.size())?;
        }
        Ok(cursor.next)
    }

    /// Record `index`: reserved bytes zero (`strict`), readable, and a well-formed record
    /// of the configuration's tensor `spec`.
    fn record(&self, index: u32, spec: &TensorSpec, strict: bool) -> Result<Record, FormatError> {
        if strict {
            let record_at = HEADER_LEN.saturating_add((index as usize).saturating_mul(RECORD_LEN));
            reserved_zero(
                Record::first_reserved_non_zero(self.table, index),
                record_at,
            )?;
        }
        let record = Record::parse(self.table, index).ok_or(FormatError::Truncated {
            needed: self.table_end as u64,
            available: self.available as u64,
        })?;
        check_record(&record, index, spec)?;
        Ok(record)
    }

    /// Record `index`'s data placed canonically: aligned, right at `cursor` (the aligned
    /// end of the previous tensor) and inside the data section. Advances `cursor` past the
    /// tensor's padding and returns where its data and padding lie.
    fn place(
        &self,
        record: &Record,
        index: u32,
        cursor: &mut DataCursor,
    ) -> Result<Placed, FormatError> {
        let region = Region::Tensor(index);
        if record.offset % super::ALIGN as u64 != 0 {
            return Err(FormatError::Misaligned {
                region,
                offset: record.offset,
            });
        }
        placed_at(region, record.offset, cursor.next)?;
        let data_len = self.data.len() as u64;
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
        Ok(Placed {
            start: record.offset,
            end,
            next: cursor.next,
        })
    }

    /// The bytes of record `index`'s tensor, of `size`-byte values: zero padding after
    /// the data, and every value finite (the writer refuses NaN and infinities, so one
    /// here was written by something else and would turn the output into NaN).
    fn check_bytes(&self, index: u32, placed: Placed, size: usize) -> Result<(), FormatError> {
        let available = self.available;
        // Padding after the tensor (as far as the file goes: a short file is caught by the
        // length check of step 13).
        let pad_end = placed.next.min(self.data.len() as u64);
        let end = to_usize(placed.end, available)?;
        let pad_end = to_usize(pad_end, available)?;
        check_zero(
            slice(self.data, end, pad_end)?,
            self.data_offset.saturating_add(end),
        )?;
        let start = to_usize(placed.start, available)?;
        match super::le::first_non_finite(slice(self.data, start, end)?, size) {
            Some(element) => Err(FormatError::NonFiniteWeight {
                index,
                element: element as u64,
            }),
            None => Ok(()),
        }
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
        super::le::f16_element(self.bytes, i)
    }

    /// Element `i` as `f32`, for either dtype (fp16 widens exactly); `None` if `i` is out
    /// of range.
    pub fn f32_at(&self, i: usize) -> Option<f32> {
        match self.spec.dtype {
            Dtype::F16 => self.f16_at(i).map(f16::to_f32),
            Dtype::F32 => super::le::f32_element(self.bytes, i),
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
