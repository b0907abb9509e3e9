//! What a convolution reads and writes: element types of feature maps and the sources of
//! input rows (a plain map, or the offset layer's strip resampler).

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::Error;

/// Element type a feature map may be read from.
pub(crate) trait Elem: Copy {
    /// To f32.
    fn to_f32(self) -> f32;
    /// Converts `src` into `dst` (same lengths).
    fn convert(src: &[Self], dst: &mut [f32]);
}

impl Elem for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn convert(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl Elem for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline]
    fn convert(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// Element type a result may be stored as.
pub(crate) trait StoreElem: Copy {
    /// From f32 (fp16 saturates at ±65504 instead of overflowing to infinity).
    fn from_f32(v: f32) -> Self;
}

impl StoreElem for f32 {
    #[inline]
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl StoreElem for f16 {
    #[inline]
    fn from_f32(v: f32) -> f16 {
        f16::from_f32(v.clamp(-65504.0, 65504.0))
    }
}

/// Provides input rows to a convolution, a strip at a time.
pub(crate) trait RowSource {
    /// Element type of the rows.
    type E: Elem;
    /// Makes rows `lo..hi` (of every channel) readable through [`RowSource::row`].
    /// `tmp_b` and `tmp_c` are the caller's packed-B and accumulator buffers, free for the
    /// source to use meanwhile.
    fn prepare(
        &mut self,
        lo: usize,
        hi: usize,
        tmp_b: &mut [f32],
        tmp_c: &mut [f32],
    ) -> Result<(), Error>;
    /// Row `y` of channel `c` (only for prepared rows); `None` if not available.
    fn row(&self, c: usize, y: usize) -> Option<&[Self::E]>;
}

/// A fully materialised CHW feature map.
#[derive(Clone, Copy)]
pub(crate) struct MapSource<'a, T> {
    pub data: &'a [T],
    pub h: usize,
    pub w: usize,
}

impl<T: Elem> MapSource<'_, T> {
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data
            .get((c * self.h + y) * self.w + x)
            .map_or(0.0, |v| v.to_f32())
    }
}

impl<T: Elem> RowSource for MapSource<'_, T> {
    type E = T;
    #[inline]
    fn prepare(&mut self, _: usize, _: usize, _: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn row(&self, c: usize, y: usize) -> Option<&[T]> {
        let start = (c * self.h + y) * self.w;
        self.data.get(start..start + self.w)
    }
}
