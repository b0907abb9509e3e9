//! CycleGAN's image pool: the discriminator sees a mix of the newest fakes and up to
//! `capacity` older ones. Until full every fake is stored and returned; after that each fake
//! has a 50 % chance to be swapped with a random stored one (which is returned instead).
//! All randomness comes from the caller's host RNG, so resumed runs replay exactly.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// A pool of detached fake images `[C, H, W]`.
#[derive(Debug)]
pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    /// An empty pool (capacity 0 passes fakes straight through).
    pub fn new(capacity: usize) -> ImagePool {
        ImagePool {
            capacity,
            images: Vec::with_capacity(capacity),
        }
    }

    /// Number of stored images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The shape `[C, H, W]` of the stored images (None when empty).
    pub fn image_shape(&self) -> Option<Vec<i64>> {
        self.images.first().map(|t| t.size())
    }

    /// The batch `[N, C, H, W]` to show the discriminator for the new fakes `images`.
    pub fn query(&mut self, images: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
        let images = images.detach();
        if self.capacity == 0 {
            return images;
        }
        let n = images.size()[0];
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let image = images.get(i).copy();
            if self.images.len() < self.capacity {
                self.images.push(image.shallow_clone());
                out.push(image);
            } else if rng.gen_bool(0.5) {
                let j = rng.gen_range(0..self.capacity);
                let old = std::mem::replace(&mut self.images[j], image);
                out.push(old);
            } else {
                out.push(image);
            }
        }
        Tensor::stack(&out, 0)
    }

    /// The stored images as one tensor `[len, C, H, W]` (None when empty), for checkpoints.
    pub fn to_tensor(&self) -> Option<Tensor> {
        if self.images.is_empty() {
            None
        } else {
            Some(Tensor::stack(&self.images, 0).to_device(tch::Device::Cpu))
        }
    }

    /// Replaces the content with the images of `stacked` `[len, C, H, W]` on `device`.
    pub fn restore(&mut self, stacked: &Tensor, device: tch::Device) -> anyhow::Result<()> {
        let len = stacked.size()[0] as usize;
        anyhow::ensure!(
            len <= self.capacity,
            "saved image pool holds {len} images, capacity is {}",
            self.capacity
        );
        self.images = (0..len as i64)
            .map(|i| stacked.get(i).to_device(device))
            .collect();
        Ok(())
    }
}
