//! The seam between data and training: where the training loop gets its unpaired slices.
//!
//! The data pipeline (`data/`) implements [`UnpairedSlices`] for NIfTI folders; tests and
//! smoke runs implement it for generated images. The loop knows nothing else about data.

use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// An endless supply of unpaired 2D slices of two domains, A and B.
///
/// Draws must depend only on the `rng` passed in (and the source's fixed contents), so that
/// a run resumed with the same RNG state continues exactly as the uninterrupted run would.
pub trait UnpairedSlices {
    /// `batch` slices of domain A and, drawn independently, `batch` slices of domain B:
    /// `Kind::Float` CPU tensors `[batch, channels, height, width]`, already normalised into
    /// the generator's range and augmented.
    fn next_batch(
        &mut self,
        batch: usize,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<(Tensor, Tensor)>;

    /// How many draws make one epoch (e.g. the larger domain's number of slices).
    fn slices_per_epoch(&self) -> usize;

    /// Channels of domain A and of domain B.
    fn channels(&self) -> (i64, i64);

    /// Training slice size `(height, width)`; both multiples of 4.
    fn slice_size(&self) -> (i64, i64);
}
