//! The scratch primitives shared by the ops and the scratch plan: the alignment every
//! region gets, the largest image side, checked size arithmetic, and the bump allocator
//! that hands out typed slices of a caller's byte buffer.
//!
//! A leaf module on purpose: it imports neither `ops` nor `plan`, so the ops' standalone
//! wrappers and the plan can both carve scratch without depending on each other (the plan
//! uses the ops' geometry; the ops never see the plan).

use half::f16;

use crate::error::Error;

/// Alignment of the scratch base and of every region in it (a cache line; ≥ any SIMD need).
pub const ALIGN: usize = 64;

/// Largest supported height or width.
pub const MAX_SIZE: usize = 1 << 15;

/// Bytes of a region of `n` f32s (rounded up to [`ALIGN`]); `None` if that overflows
/// `usize` (only reachable on narrow targets: callers bound `n` first, this keeps a
/// missed bound from becoming a panic).
pub(crate) const fn f32_region_bytes(n: usize) -> Option<usize> {
    match n.checked_mul(4) {
        Some(bytes) => bytes.div_ceil(ALIGN).checked_mul(ALIGN),
        None => None,
    }
}

/// The product of `factors`, or `None` if it overflows `usize`.
pub(crate) fn checked_product(factors: &[usize]) -> Option<usize> {
    factors.iter().try_fold(1usize, |p, &f| p.checked_mul(f))
}

/// Aligns the start of `bytes` to [`ALIGN`].
pub(crate) fn align(bytes: &mut [u8]) -> Result<&mut [u8], Error> {
    let pad = bytes.as_ptr().align_offset(ALIGN);
    bytes.get_mut(pad..).ok_or(Error::Internal)
}

/// Bump allocator over an aligned byte region: hands out `f32`/`f16` slices of
/// [`ALIGN`]-rounded regions in order.
pub(crate) struct Bump<'a> {
    rest: &'a mut [u8],
}

impl<'a> Bump<'a> {
    /// Over `bytes` (its start is aligned first): the standalone ops' entry, which take a
    /// scratch at any address (`synthesize` aligns once and carves the plan's regions).
    #[cfg(feature = "internals")]
    pub fn new(bytes: &'a mut [u8]) -> Result<Self, Error> {
        Ok(Bump {
            rest: align(bytes)?,
        })
    }

    /// Over an already aligned region.
    pub fn aligned(bytes: &'a mut [u8]) -> Self {
        Bump { rest: bytes }
    }

    fn take(&mut self, bytes: usize) -> Result<&'a mut [u8], Error> {
        let r = core::mem::take(&mut self.rest);
        if r.len() < bytes {
            return Err(Error::Internal);
        }
        let (h, t) = r.split_at_mut(bytes);
        self.rest = t;
        Ok(h)
    }

    /// The four GEMM work buffers `[a, b, prow, c]` of a convolution (the lengths
    /// `ConvGeom::parts` gives).
    pub fn conv_work(&mut self, parts: [usize; 4]) -> Result<[&'a mut [f32]; 4], Error> {
        Ok([
            self.f32s(parts[0])?,
            self.f32s(parts[1])?,
            self.f32s(parts[2])?,
            self.f32s(parts[3])?,
        ])
    }

    pub fn f32s(&mut self, n: usize) -> Result<&'a mut [f32], Error> {
        let bytes = self.take(f32_region_bytes(n).ok_or(Error::Internal)?)?;
        let all: &mut [f32] = bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::Internal)?;
        all.get_mut(..n).ok_or(Error::Internal)
    }
}

/// An aligned byte region as `n` f16s.
pub(crate) fn as_f16(bytes: &mut [u8], n: usize) -> Result<&mut [f16], Error> {
    let all: &mut [f16] = bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::Internal)?;
    all.get_mut(..n).ok_or(Error::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_sizes_are_checked() {
        assert_eq!(f32_region_bytes(0), Some(0));
        assert_eq!(f32_region_bytes(1), Some(ALIGN));
        assert_eq!(f32_region_bytes(16), Some(64));
        assert_eq!(f32_region_bytes(17), Some(128));
        // Overflows of `n · 4` and of the rounding up are `None`, not a wrap or a panic.
        assert_eq!(f32_region_bytes(usize::MAX / 4 + 1), None);
        assert_eq!(f32_region_bytes(usize::MAX / 4), None);
        assert_eq!(checked_product(&[]), Some(1));
        assert_eq!(checked_product(&[3, 5, 7]), Some(105));
        assert_eq!(checked_product(&[usize::MAX, 2]), None);
        assert_eq!(checked_product(&[usize::MAX, 0]), Some(0));
    }
}
