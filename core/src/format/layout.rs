//! The canonical placement of the sections and tensors of a configuration's file.
//!
//! The writer places everything here and the reader demands exactly this placement, so
//! one configuration has exactly one file layout.

use super::{ALIGN, HEADER_LEN, RECORD_LEN};
use crate::config::{ModelConfig, TensorSpec};

/// `value` rounded up to a multiple of [`ALIGN`]; `None` on overflow.
pub(crate) const fn align_up(value: u64) -> Option<u64> {
    match value.checked_add(ALIGN as u64 - 1) {
        Some(v) => Some(v & !(ALIGN as u64 - 1)),
        None => None,
    }
}

/// Offset of the data section for a table of `tensor_count` records.
pub(crate) fn data_offset(tensor_count: u32) -> Option<u64> {
    let table_len = (tensor_count as u64).checked_mul(RECORD_LEN as u64)?;
    align_up((HEADER_LEN as u64).checked_add(table_len)?)
}

/// Offsets (relative to the data section) of each tensor in turn, and the section length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataCursor {
    /// Where the next tensor starts (relative to the data section), always aligned.
    pub(crate) next: u64,
}

impl DataCursor {
    pub(crate) const fn new() -> DataCursor {
        DataCursor { next: 0 }
    }

    /// Places a tensor of `len` bytes: returns its offset and advances past its padding.
    pub(crate) fn place(&mut self, len: u64) -> Option<u64> {
        let offset = self.next;
        self.next = align_up(offset.checked_add(len)?)?;
        Some(offset)
    }
}

/// Byte length of a spec's data; `None` on overflow (never for a valid configuration).
pub(crate) fn byte_len(spec: &TensorSpec) -> Option<u64> {
    let mut count: u64 = 1;
    for &dim in spec.dims() {
        count = count.checked_mul(dim as u64)?;
    }
    count.checked_mul(spec.dtype.size() as u64)
}

/// Total file length of a (validated) configuration; `None` on `u64` overflow.
pub(crate) fn file_len(config: &ModelConfig) -> Option<u64> {
    let start = data_offset(config.tensor_count())?;
    let mut cursor = DataCursor::new();
    for spec in config.tensors() {
        cursor.place(byte_len(&spec)?)?;
    }
    start.checked_add(cursor.next)
}
