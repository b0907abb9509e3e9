//! Bounds-checked little-endian field access. Out-of-range reads yield `None`, out-of-range
//! writes do nothing and return `false`; nothing here can panic.
//!
//! Every little-endian decode of the core is here: the header and record fields, the
//! tensor views' elements, and the fp16 weights and f32 biases the ops read straight from
//! a weight file's bytes (so those need no alignment and no host-endian cast).

use half::f16;

/// The `N` bytes at `offset`, if `bytes` holds them.
#[inline]
pub(crate) fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    bytes.get(offset..end)?.try_into().ok()
}

#[inline]
pub(crate) fn u8_at(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

#[inline]
pub(crate) fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    array(bytes, offset).map(u16::from_le_bytes)
}

#[inline]
pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    array(bytes, offset).map(u32::from_le_bytes)
}

#[inline]
pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    array(bytes, offset).map(u64::from_le_bytes)
}

#[inline]
pub(crate) fn f32_at(bytes: &[u8], offset: usize) -> Option<f32> {
    u32_at(bytes, offset).map(f32::from_bits)
}

/// Element `i` of an array of little-endian fp16 values.
#[inline]
pub(crate) fn f16_element(bytes: &[u8], i: usize) -> Option<f16> {
    array(bytes, i.checked_mul(2)?).map(f16::from_le_bytes)
}

/// Element `i` of an array of little-endian f32 values.
#[inline]
pub(crate) fn f32_element(bytes: &[u8], i: usize) -> Option<f32> {
    f32_at(bytes, i.checked_mul(4)?)
}

/// Copies `value` to `offset`; `false` if `bytes` is too short.
pub(crate) fn put(bytes: &mut [u8], offset: usize, value: &[u8]) -> bool {
    let Some(end) = offset.checked_add(value.len()) else {
        return false;
    };
    match bytes.get_mut(offset..end) {
        Some(dst) => {
            dst.copy_from_slice(value);
            true
        }
        None => false,
    }
}

/// Element index of the first NaN or infinity in `bytes` read as little-endian values
/// of `size` bytes (2 = fp16, 4 = f32), if any. Non-finite means an all-ones exponent in
/// both formats, so this looks at bits only (no conversion).
pub(crate) fn first_non_finite(bytes: &[u8], size: usize) -> Option<usize> {
    match size {
        2 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        _ => bytes.chunks_exact(4).position(|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000
        }),
    }
}

/// Offset of the first non-zero byte of `bytes`, if any.
pub(crate) fn first_non_zero(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b != 0)
}
