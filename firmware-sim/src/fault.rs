//! Fault injection: corrupt a flash image the way failing flash or a bad transfer would,
//! before the device loads it. Every fault must be caught by the loader's checks.

/// One flipped bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitFlip {
    /// Byte offset in the image.
    pub offset: usize,
    /// Bit within the byte (0 = least significant).
    pub bit: u8,
}

/// What to do to an image before loading it (`--flip-bits N --seed S`, `--truncate LEN`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// Flip this many distinct, randomly chosen bits of the image before loading it.
    #[arg(long, value_name = "N")]
    pub flip_bits: Option<usize>,
    /// Seed of the bit positions for --flip-bits.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Truncate the image to its first LEN bytes before loading it.
    #[arg(long, value_name = "LEN")]
    pub truncate: Option<usize>,
}

impl FaultArgs {
    /// Whether any fault is requested.
    pub fn any(&self) -> bool {
        self.flip_bits.is_some_and(|n| n > 0) || self.truncate.is_some()
    }

    /// Applies the requested faults; returns the flipped bits (sorted). Bits are chosen
    /// among the first `covered_len` bytes (the image proper: bytes after it are not read
    /// by the loader, so a flip there would corrupt nothing).
    pub fn apply(&self, image: &mut Vec<u8>, covered_len: usize) -> Vec<BitFlip> {
        let covered = covered_len.min(image.len());
        let flips = match self.flip_bits {
            Some(n) => flip_bits(&mut image[..covered], n, self.seed),
            None => Vec::new(),
        };
        if let Some(len) = self.truncate {
            image.truncate(len);
        }
        flips
    }
}

/// SplitMix64: a tiny, well-mixed, seedable generator (fault positions need no more).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Flips `n` distinct bits of `image` chosen by `seed` (all bits if `n` exceeds them).
pub fn flip_bits(image: &mut [u8], n: usize, seed: u64) -> Vec<BitFlip> {
    let total_bits = image.len() as u64 * 8;
    let n = n.min(total_bits as usize);
    let mut rng = SplitMix64(seed);
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < n {
        chosen.insert(rng.next() % total_bits);
    }
    chosen
        .into_iter()
        .map(|bit_index| {
            let flip = BitFlip {
                offset: (bit_index / 8) as usize,
                bit: (bit_index % 8) as u8,
            };
            image[flip.offset] ^= 1 << flip.bit;
            flip
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_are_distinct_seeded_and_applied() {
        let mut a = vec![0u8; 16];
        let flips = flip_bits(&mut a, 10, 42);
        assert_eq!(flips.len(), 10);
        assert_eq!(a.iter().map(|b| b.count_ones()).sum::<u32>(), 10);
        let mut b = vec![0u8; 16];
        assert_eq!(flip_bits(&mut b, 10, 42), flips);
        assert_eq!(a, b);
        let mut c = vec![0u8; 2];
        assert_eq!(flip_bits(&mut c, 100, 1).len(), 16);
        assert_eq!(c, vec![0xff, 0xff]);
    }

    #[test]
    fn flips_stay_within_the_covered_bytes() {
        let args = FaultArgs {
            flip_bits: Some(40),
            seed: 3,
            truncate: None,
        };
        let mut image = vec![0u8; 64];
        let flips = args.apply(&mut image, 8);
        assert_eq!(flips.len(), 40);
        assert!(flips.iter().all(|f| f.offset < 8), "{flips:?}");
        assert!(image[8..].iter().all(|&b| b == 0));
    }
}
