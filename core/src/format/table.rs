//! Fixed-size tensor records: field offsets, parsing and serialisation.

use super::le;
use super::RECORD_LEN;
use crate::config::TensorSpec;

pub(crate) const ID_AT: usize = 0;
pub(crate) const DTYPE_AT: usize = 4;
pub(crate) const NDIM_AT: usize = 5;
/// Reserved (zero) bytes `6..8`.
pub(crate) const RESERVED_A: (usize, usize) = (6, 8);
pub(crate) const DIMS_AT: usize = 8;
pub(crate) const OFFSET_AT: usize = 24;
pub(crate) const LEN_AT: usize = 32;
/// Reserved (zero) bytes `40..48`.
pub(crate) const RESERVED_B: (usize, usize) = (40, 48);

/// One tensor record as stored (nothing validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: u32,
    pub(crate) dtype: u8,
    pub(crate) ndim: u8,
    pub(crate) dims: [u32; 4],
    /// Offset of the data, relative to the start of the data section.
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl Record {
    /// The record for `spec` with its data at `offset` (relative to the data section).
    pub(crate) fn for_spec(spec: &TensorSpec, offset: u64, len: u64) -> Record {
        Record {
            id: spec.id.to_u32(),
            dtype: spec.dtype as u8,
            ndim: spec.ndim,
            dims: spec.dims_raw,
            offset,
            len,
        }
    }

    /// Reads record `index` of `table`; `None` if the table is too short.
    pub(crate) fn parse(table: &[u8], index: u32) -> Option<Record> {
        let start = (index as usize).checked_mul(RECORD_LEN)?;
        let end = start.checked_add(RECORD_LEN)?;
        let r = table.get(start..end)?;
        Some(Record {
            id: le::u32_at(r, ID_AT)?,
            dtype: le::u8_at(r, DTYPE_AT)?,
            ndim: le::u8_at(r, NDIM_AT)?,
            dims: [
                le::u32_at(r, DIMS_AT)?,
                le::u32_at(r, DIMS_AT + 4)?,
                le::u32_at(r, DIMS_AT + 8)?,
                le::u32_at(r, DIMS_AT + 12)?,
            ],
            offset: le::u64_at(r, OFFSET_AT)?,
            len: le::u64_at(r, LEN_AT)?,
        })
    }

    /// Offset (within the record) of the first non-zero reserved byte of record `index`.
    pub(crate) fn first_reserved_non_zero(table: &[u8], index: u32) -> Option<usize> {
        let start = (index as usize).checked_mul(RECORD_LEN)?;
        let end = start.checked_add(RECORD_LEN)?;
        let r = table.get(start..end)?;
        [RESERVED_A, RESERVED_B].into_iter().find_map(|(from, to)| {
            let found = le::first_non_zero(r.get(from..to)?)?;
            from.checked_add(found)
        })
    }

    /// Writes this record into its 48-byte slot (reserved bytes zeroed); `false` if `slot`
    /// is shorter than a record.
    pub(crate) fn write(&self, slot: &mut [u8]) -> bool {
        let Some(r) = slot.get_mut(..RECORD_LEN) else {
            return false;
        };
        r.fill(0);
        let mut ok = le::put(r, ID_AT, &self.id.to_le_bytes());
        ok &= le::put(r, DTYPE_AT, &[self.dtype]);
        ok &= le::put(r, NDIM_AT, &[self.ndim]);
        for (i, dim) in self.dims.iter().enumerate() {
            ok &= le::put(r, DIMS_AT + 4 * i, &dim.to_le_bytes());
        }
        ok &= le::put(r, OFFSET_AT, &self.offset.to_le_bytes());
        ok &= le::put(r, LEN_AT, &self.len.to_le_bytes());
        ok
    }
}
