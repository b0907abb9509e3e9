//! The device's flash image: a small checksummed header that says what the device was
//! provisioned for, followed by the weight file, read in place.
//!
//! ```text
//! offset size field
//!  0      8   magic "DICYCFLS"
//!  8      2   major version (1)       10  2  minor version (0)
//! 12      4   header length (64)
//! 16      8   weight file offset (64) 24  8  weight file length
//! 32      4   the weight file's header CRC-32C (ties this header to that file)
//! 36      4   planned slice height     40  4  planned slice width
//! 44      4   reserved, zero
//! 48      8   RAM the planned slice needs (scratch + input + output), bytes
//! 56      4   reserved, zero
//! 60      4   CRC-32C of bytes 0..60
//! 64      …   the weight file (docs/FORMAT.md), with its own three CRC-32C
//! ```
//! The image is exactly header + weight file, so every byte is covered by a checksum and
//! any corruption is detected; a device's flash may hold erased bytes after it.

use std::fmt;

use dicyc_core::format::{crc32c, FormatError, WeightFile};

use crate::profile::{human_bytes, DeviceProfile};

/// First bytes of a flash image.
pub const FLASH_MAGIC: [u8; 8] = *b"DICYCFLS";
/// Flash header length; the weight file starts right after it.
pub const FLASH_HEADER_LEN: usize = 64;
const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;

/// Why a flash image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Shorter than its header says.
    Truncated {
        /// Bytes the header (or the header's header) requires.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// Not a flash image.
    BadMagic,
    /// A major version this simulator does not know.
    UnsupportedVersion(u16),
    /// The flash header's checksum does not match: the header is corrupted.
    HeaderCrc {
        /// Stored CRC-32C.
        stored: u32,
        /// CRC-32C of the bytes.
        computed: u32,
    },
    /// A field of the flash header has an impossible value.
    BadField(&'static str),
    /// The weight file inside the image is invalid (corruption is reported with the section).
    Weights(FormatError),
    /// The weight file is valid but is not the one this header was written for.
    WeightsMismatch,
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::Truncated { needed, available } => {
                write!(f, "flash image truncated: needs {needed} bytes, has {available}")
            }
            FlashError::BadMagic => f.write_str("not a dicyc flash image (bad magic)"),
            FlashError::UnsupportedVersion(v) => write!(f, "flash image major version {v} is not supported (this simulator reads 1)"),
            FlashError::HeaderCrc { stored, computed } => write!(
                f,
                "flash header corrupted: CRC-32C mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
            FlashError::BadField(field) => write!(f, "flash header field {field} has an impossible value"),
            FlashError::Weights(err) => write!(f, "weight file in the flash image: {err}"),
            FlashError::WeightsMismatch => {
                f.write_str("the weight file's header CRC differs from the one the flash header was written for")
            }
        }
    }
}

impl std::error::Error for FlashError {}

/// A validated flash image, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct FlashImage<'a> {
    /// The weight file, validated by the core.
    pub weights: WeightFile<'a>,
    /// Slice height the image was provisioned for.
    pub planned_height: u32,
    /// Slice width the image was provisioned for.
    pub planned_width: u32,
    /// RAM that slice needs, as computed when flashing.
    pub planned_ram: u64,
    /// Length of the image proper (header + weight file).
    pub image_len: usize,
    /// The flash header's own CRC-32C (bytes 60..64), checked.
    pub header_crc32c: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(
        b[at..at + 4]
            .try_into()
            .expect("4-byte field inside the checked header"),
    )
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(
        b[at..at + 8]
            .try_into()
            .expect("8-byte field inside the checked header"),
    )
}

impl<'a> FlashImage<'a> {
    /// Validates the flash header, then the weight file with every check of the core.
    pub fn new_checked(bytes: &'a [u8]) -> Result<FlashImage<'a>, FlashError> {
        let available = bytes.len() as u64;
        let Some(header) = bytes.get(..FLASH_HEADER_LEN) else {
            return Err(FlashError::Truncated {
                needed: FLASH_HEADER_LEN as u64,
                available,
            });
        };
        if header[..8] != FLASH_MAGIC {
            return Err(FlashError::BadMagic);
        }
        let stored = u32_at(header, 60);
        let computed = crc32c(&header[..60]);
        if stored != computed {
            return Err(FlashError::HeaderCrc { stored, computed });
        }
        let major = u16::from_le_bytes([header[8], header[9]]);
        if major != VERSION_MAJOR {
            return Err(FlashError::UnsupportedVersion(major));
        }
        if u32_at(header, 12) as usize != FLASH_HEADER_LEN {
            return Err(FlashError::BadField("header length"));
        }
        if u64_at(header, 16) != FLASH_HEADER_LEN as u64 {
            return Err(FlashError::BadField("weight file offset"));
        }
        if u32_at(header, 44) != 0 || u32_at(header, 56) != 0 {
            return Err(FlashError::BadField("reserved"));
        }
        let weights_len = u64_at(header, 24);
        let end = weights_len
            .checked_add(FLASH_HEADER_LEN as u64)
            .ok_or(FlashError::BadField("weight file length"))?;
        if end > available {
            return Err(FlashError::Truncated {
                needed: end,
                available,
            });
        }
        let weights_bytes = &bytes[FLASH_HEADER_LEN..end as usize];
        let weights = WeightFile::new_checked(weights_bytes).map_err(FlashError::Weights)?;
        if weights.bytes().len() as u64 != weights_len {
            return Err(FlashError::BadField("weight file length"));
        }
        if weights.crc32c() != u32_at(header, 32) {
            return Err(FlashError::WeightsMismatch);
        }
        Ok(FlashImage {
            weights,
            planned_height: u32_at(header, 36),
            planned_width: u32_at(header, 40),
            planned_ram: u64_at(header, 48),
            image_len: end as usize,
            header_crc32c: stored,
        })
    }
}

/// The RAM a slice of `height × width` needs on the device: the core's scratch plus the
/// f32 input and output slices.
pub fn ram_needed(weights: &WeightFile<'_>, height: usize, width: usize) -> anyhow::Result<u64> {
    let config = weights.config();
    let scratch = dicyc_core::required_scratch_bytes(&config, height, width)
        .map_err(|err| anyhow::anyhow!("a {height}x{width} slice cannot be planned: {err}"))?;
    let io = (config.in_channels as usize + config.out_channels as usize) * height * width * 4;
    Ok((scratch + io) as u64)
}

/// Builds the flash image of `weight_file` for `profile`, provisioned for slices of
/// `height × width`; refuses, saying by how much, when the image does not fit in flash or
/// the slice's RAM does not fit in RAM.
pub fn build_image(
    weight_file: &[u8],
    profile: &DeviceProfile,
    height: usize,
    width: usize,
) -> anyhow::Result<Vec<u8>> {
    let weights = WeightFile::new_checked(weight_file)
        .map_err(|err| anyhow::anyhow!("invalid weight file: {err}"))?;
    let file = weights.bytes();
    let image_len = (FLASH_HEADER_LEN + file.len()) as u64;
    if image_len > profile.flash_bytes {
        anyhow::bail!(
            "the image ({}) does not fit in {}'s flash ({}): {} too large",
            human_bytes(image_len),
            profile.name,
            human_bytes(profile.flash_bytes),
            human_bytes(image_len - profile.flash_bytes)
        );
    }
    let ram = ram_needed(&weights, height, width)?;
    if ram > profile.ram_bytes {
        anyhow::bail!(
            "a {height}x{width} slice needs {} of RAM (scratch + input + output), {} has {}: {} short",
            human_bytes(ram),
            profile.name,
            human_bytes(profile.ram_bytes),
            human_bytes(ram - profile.ram_bytes)
        );
    }
    let mut image = vec![0u8; image_len as usize];
    let h = &mut image[..FLASH_HEADER_LEN];
    h[..8].copy_from_slice(&FLASH_MAGIC);
    h[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    h[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    h[12..16].copy_from_slice(&(FLASH_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(FLASH_HEADER_LEN as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(file.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&weights.crc32c().to_le_bytes());
    h[36..40].copy_from_slice(&u32::try_from(height)?.to_le_bytes());
    h[40..44].copy_from_slice(&u32::try_from(width)?.to_le_bytes());
    h[48..56].copy_from_slice(&ram.to_le_bytes());
    let crc = crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    image[FLASH_HEADER_LEN..].copy_from_slice(file);
    Ok(image)
}

/// The layout of a file on its way to the device (a flash image or a plain weight file),
/// read from the pristine bytes before any fault, so that each fault can be reported with
/// the section it hits and aimed at bytes a checksum covers.
#[derive(Debug, Clone, Copy)]
pub struct FaultMap<'a> {
    /// A flash image (else a weight file).
    pub flash: bool,
    /// Bytes of the image or weight file proper, all under a checksum. Bytes after them
    /// (erased flash) are ignored by the loader, so a fault there would corrupt nothing.
    pub covered_len: usize,
    weights: Option<WeightFile<'a>>,
}

impl<'a> FaultMap<'a> {
    /// The layout of `pristine`. A file that is already invalid has no known sections
    /// beyond its headers, and all of its bytes count as covered.
    pub fn of(pristine: &'a [u8]) -> FaultMap<'a> {
        let flash = pristine.starts_with(&FLASH_MAGIC);
        let layout = if flash {
            FlashImage::new_checked(pristine)
                .ok()
                .map(|image| (image.image_len, image.weights))
        } else {
            WeightFile::new_checked(pristine)
                .ok()
                .map(|weights| (weights.bytes().len(), weights))
        };
        FaultMap {
            flash,
            covered_len: layout.map_or(pristine.len(), |(len, _)| len),
            weights: layout.map(|(_, weights)| weights),
        }
    }

    /// What the file is, for messages.
    pub fn what(&self) -> &'static str {
        if self.flash {
            "flash image"
        } else {
            "weight file"
        }
    }

    /// Names the section that byte `offset` of the file belongs to.
    pub fn region(&self, offset: usize) -> &'static str {
        if offset >= self.covered_len {
            return if self.flash {
                "past the image"
            } else {
                "past the weight file"
            };
        }
        let within = if self.flash {
            if offset < FLASH_HEADER_LEN {
                return "flash header";
            }
            offset - FLASH_HEADER_LEN
        } else {
            offset
        };
        if within < dicyc_core::format::HEADER_LEN {
            return "weight-file header";
        }
        let Some(weights) = self.weights else {
            return "weight file";
        };
        let data_start = weights.tensors().next().map_or(usize::MAX, |t| {
            t.bytes.as_ptr() as usize - weights.bytes().as_ptr() as usize
        });
        if within < data_start {
            "weight-file tensor table"
        } else {
            "weight-file data"
        }
    }
}
