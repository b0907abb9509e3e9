//! The fixed 128-byte header: field offsets, parsing and serialisation.
//!
//! See `docs/FORMAT.md` for the table; the offsets below are that table.

use super::le;
use super::HEADER_LEN;

pub(crate) const MAGIC_AT: usize = 0;
pub(crate) const MAJOR_AT: usize = 8;
pub(crate) const MINOR_AT: usize = 10;
pub(crate) const TENSOR_COUNT_AT: usize = 12;
pub(crate) const FILE_LEN_AT: usize = 16;
pub(crate) const TABLE_OFFSET_AT: usize = 24;
pub(crate) const DATA_OFFSET_AT: usize = 32;
pub(crate) const ARCH_HASH_AT: usize = 40;
pub(crate) const IN_CHANNELS_AT: usize = 48;
pub(crate) const OUT_CHANNELS_AT: usize = 50;
pub(crate) const NGF_AT: usize = 52;
pub(crate) const N_BLOCKS_AT: usize = 54;
pub(crate) const OFFSET_LAYERS_AT: usize = 56;
/// The offset form (version 1.1; reserved, and so zero, in 1.0 files).
pub(crate) const OFFSET_FORM_AT: usize = 57;
/// Reserved (zero) bytes `58..64`.
pub(crate) const RESERVED_A: (usize, usize) = (58, 64);
pub(crate) const INPUT_OFFSET_AT: usize = 64;
pub(crate) const INPUT_SCALE_AT: usize = 68;
pub(crate) const OUTPUT_OFFSET_AT: usize = 72;
pub(crate) const OUTPUT_SCALE_AT: usize = 76;
pub(crate) const TABLE_CRC_AT: usize = 80;
pub(crate) const DATA_CRC_AT: usize = 84;
/// Reserved (zero) bytes `88..124`.
pub(crate) const RESERVED_B: (usize, usize) = (88, 124);
/// The header CRC-32C covers bytes `0..HEADER_CRC_AT` and is stored at `HEADER_CRC_AT`.
pub(crate) const HEADER_CRC_AT: usize = 124;

/// Every header field, as stored (nothing validated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Header {
    pub(crate) magic: [u8; 8],
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) tensor_count: u32,
    pub(crate) file_len: u64,
    pub(crate) table_offset: u64,
    pub(crate) data_offset: u64,
    pub(crate) architecture_hash: u64,
    pub(crate) in_channels: u16,
    pub(crate) out_channels: u16,
    pub(crate) ngf: u16,
    pub(crate) n_blocks: u16,
    pub(crate) offset_layers: u8,
    pub(crate) offset_form: u8,
    pub(crate) input_offset: f32,
    pub(crate) input_scale: f32,
    pub(crate) output_offset: f32,
    pub(crate) output_scale: f32,
    pub(crate) table_crc: u32,
    pub(crate) data_crc: u32,
    pub(crate) header_crc: u32,
}

impl Header {
    /// Reads every field of a header (the reserved bytes are checked separately).
    pub(crate) fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let b = &bytes[..];
        // All offsets are constants inside the 128-byte array, so the `unwrap_or`
        // fallbacks are unreachable; they only keep this code free of panic paths.
        Header {
            magic: le::array(b, MAGIC_AT).unwrap_or([0; 8]),
            major: le::u16_at(b, MAJOR_AT).unwrap_or(0),
            minor: le::u16_at(b, MINOR_AT).unwrap_or(0),
            tensor_count: le::u32_at(b, TENSOR_COUNT_AT).unwrap_or(0),
            file_len: le::u64_at(b, FILE_LEN_AT).unwrap_or(0),
            table_offset: le::u64_at(b, TABLE_OFFSET_AT).unwrap_or(0),
            data_offset: le::u64_at(b, DATA_OFFSET_AT).unwrap_or(0),
            architecture_hash: le::u64_at(b, ARCH_HASH_AT).unwrap_or(0),
            in_channels: le::u16_at(b, IN_CHANNELS_AT).unwrap_or(0),
            out_channels: le::u16_at(b, OUT_CHANNELS_AT).unwrap_or(0),
            ngf: le::u16_at(b, NGF_AT).unwrap_or(0),
            n_blocks: le::u16_at(b, N_BLOCKS_AT).unwrap_or(0),
            offset_layers: le::u8_at(b, OFFSET_LAYERS_AT).unwrap_or(0),
            offset_form: le::u8_at(b, OFFSET_FORM_AT).unwrap_or(0),
            input_offset: le::f32_at(b, INPUT_OFFSET_AT).unwrap_or(0.0),
            input_scale: le::f32_at(b, INPUT_SCALE_AT).unwrap_or(0.0),
            output_offset: le::f32_at(b, OUTPUT_OFFSET_AT).unwrap_or(0.0),
            output_scale: le::f32_at(b, OUTPUT_SCALE_AT).unwrap_or(0.0),
            table_crc: le::u32_at(b, TABLE_CRC_AT).unwrap_or(0),
            data_crc: le::u32_at(b, DATA_CRC_AT).unwrap_or(0),
            header_crc: le::u32_at(b, HEADER_CRC_AT).unwrap_or(0),
        }
    }

    /// Writes every field; reserved bytes are zeroed. The stored `header_crc` is written
    /// as is: seal with [`seal`] afterwards.
    pub(crate) fn write(&self, bytes: &mut [u8; HEADER_LEN]) {
        bytes.fill(0);
        let b = &mut bytes[..];
        le::put(b, MAGIC_AT, &self.magic);
        le::put(b, MAJOR_AT, &self.major.to_le_bytes());
        le::put(b, MINOR_AT, &self.minor.to_le_bytes());
        le::put(b, TENSOR_COUNT_AT, &self.tensor_count.to_le_bytes());
        le::put(b, FILE_LEN_AT, &self.file_len.to_le_bytes());
        le::put(b, TABLE_OFFSET_AT, &self.table_offset.to_le_bytes());
        le::put(b, DATA_OFFSET_AT, &self.data_offset.to_le_bytes());
        le::put(b, ARCH_HASH_AT, &self.architecture_hash.to_le_bytes());
        le::put(b, IN_CHANNELS_AT, &self.in_channels.to_le_bytes());
        le::put(b, OUT_CHANNELS_AT, &self.out_channels.to_le_bytes());
        le::put(b, NGF_AT, &self.ngf.to_le_bytes());
        le::put(b, N_BLOCKS_AT, &self.n_blocks.to_le_bytes());
        le::put(b, OFFSET_LAYERS_AT, &[self.offset_layers]);
        le::put(b, OFFSET_FORM_AT, &[self.offset_form]);
        le::put(b, INPUT_OFFSET_AT, &self.input_offset.to_le_bytes());
        le::put(b, INPUT_SCALE_AT, &self.input_scale.to_le_bytes());
        le::put(b, OUTPUT_OFFSET_AT, &self.output_offset.to_le_bytes());
        le::put(b, OUTPUT_SCALE_AT, &self.output_scale.to_le_bytes());
        le::put(b, TABLE_CRC_AT, &self.table_crc.to_le_bytes());
        le::put(b, DATA_CRC_AT, &self.data_crc.to_le_bytes());
        le::put(b, HEADER_CRC_AT, &self.header_crc.to_le_bytes());
    }
}

/// The CRC-32C the header's last field must hold: over bytes `0..124`.
pub(crate) fn header_crc(bytes: &[u8; HEADER_LEN]) -> u32 {
    super::crc::crc32c(bytes.get(..HEADER_CRC_AT).unwrap_or(&[]))
}

/// Stores [`header_crc`] in the header's last field.
pub(crate) fn seal(bytes: &mut [u8; HEADER_LEN]) {
    let crc = header_crc(bytes);
    le::put(&mut bytes[..], HEADER_CRC_AT, &crc.to_le_bytes());
}

/// Offset of the first non-zero reserved header byte, if any.
pub(crate) fn first_reserved_non_zero(bytes: &[u8; HEADER_LEN]) -> Option<usize> {
    [RESERVED_A, RESERVED_B]
        .into_iter()
        .find_map(|(start, end)| {
            let found = le::first_non_zero(bytes.get(start..end)?)?;
            start.checked_add(found)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tile_the_header_without_overlap() {
        // (offset, size) of every field and reserved run, in order.
        let fields = [
            (MAGIC_AT, 8),
            (MAJOR_AT, 2),
            (MINOR_AT, 2),
            (TENSOR_COUNT_AT, 4),
            (FILE_LEN_AT, 8),
            (TABLE_OFFSET_AT, 8),
            (DATA_OFFSET_AT, 8),
            (ARCH_HASH_AT, 8),
            (IN_CHANNELS_AT, 2),
            (OUT_CHANNELS_AT, 2),
            (NGF_AT, 2),
            (N_BLOCKS_AT, 2),
            (OFFSET_LAYERS_AT, 1),
            (OFFSET_FORM_AT, 1),
            (RESERVED_A.0, RESERVED_A.1 - RESERVED_A.0),
            (INPUT_OFFSET_AT, 4),
            (INPUT_SCALE_AT, 4),
            (OUTPUT_OFFSET_AT, 4),
            (OUTPUT_SCALE_AT, 4),
            (TABLE_CRC_AT, 4),
            (DATA_CRC_AT, 4),
            (RESERVED_B.0, RESERVED_B.1 - RESERVED_B.0),
            (HEADER_CRC_AT, 4),
        ];
        let mut next = 0;
        for (offset, size) in fields {
            assert_eq!(offset, next);
            if size.is_power_of_two() && size <= 8 {
                assert_eq!(
                    offset % size,
                    0,
                    "field at {offset} is not naturally aligned"
                );
            }
            next = offset + size;
        }
        assert_eq!(next, HEADER_LEN);
    }
}
