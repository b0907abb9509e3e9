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
/// The flash-header major version this simulator reads and writes; others are refused.
pub const VERSION_MAJOR: u16 = 1;
/// The flash-header minor version this simulator writes, and the highest it reads: a reader
/// accepts minor versions up to its own and refuses newer ones (docs/FIRMWARE.md), since a
/// device must not boot from provisioning data it cannot fully check.
pub const VERSION_MINOR: u16 = 0;

/// The fields of the flash header (docs/FIRMWARE.md, "Flash image layout").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashField {
    /// Bytes 12..16, always 64.
    HeaderLength,
    /// Bytes 16..24, always 64.
    WeightsOffset,
    /// Bytes 24..32, the embedded weight file's own length.
    WeightsLength,
    /// Bytes 44..48 and 56..60, zero.
    Reserved,
}

impl FlashField {
    fn name(self) -> &'static str {
        match self {
            FlashField::HeaderLength => "header length",
            FlashField::WeightsOffset => "weight file offset",
            FlashField::WeightsLength => "weight file length",
            FlashField::Reserved => "reserved",
        }
    }
}

/// What to do about a flash header that is well-formed but wrong.
const REFLASH: &str = "rebuild the image from its weight file with `firmware-sim flash`";

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
    /// A version this simulator does not read: another major, or a newer minor.
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The flash header's checksum does not match: the header is corrupted.
    HeaderCrc {
        /// Stored CRC-32C.
        stored: u32,
        /// CRC-32C of the bytes.
        computed: u32,
    },
    /// A field of the flash header has a value other than the only one it may hold.
    BadField {
        /// Which field.
        field: FlashField,
        /// Value found (for the reserved bytes: the byte offset of the first non-zero one).
        found: u64,
        /// The value it must hold (for the reserved bytes: 0).
        expected: u64,
    },
    /// The planned slice size is one the core cannot run (zero, not a multiple of 4, under
    /// 8 or over the core's limit).
    PlannedSlice {
        /// Planned height.
        height: u32,
        /// Planned width.
        width: u32,
        /// Why the core refuses it.
        reason: dicyc_core::Error,
    },
    /// The planned RAM is not what the planned slice needs for the embedded weight file
    /// ([`ram_needed`]: the core's scratch plus the f32 input and output slices).
    PlannedRam {
        /// Planned height.
        height: u32,
        /// Planned width.
        width: u32,
        /// RAM the header records, bytes.
        stored: u64,
        /// RAM the core computes for that slice, bytes.
        computed: u64,
    },
    /// The weight file inside the image is invalid (corruption is reported with the section).
    Weights(FormatError),
    /// The weight file is valid but is not the one this header was written for.
    WeightsMismatch {
        /// The weight file's header CRC-32C recorded in the flash header.
        stored: u32,
        /// The embedded weight file's header CRC-32C.
        found: u32,
    },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlashError::Truncated { needed, available } => write!(
                f,
                "flash image truncated: needs {needed} bytes, has {available} (an incomplete transfer? copy or flash the image again)"
            ),
            FlashError::BadMagic => f.write_str(
                "not a dicyc flash image (bad magic; build one with `firmware-sim flash`)",
            ),
            FlashError::UnsupportedVersion { major, .. } if major != VERSION_MAJOR => write!(
                f,
                "flash image major version {major} is not supported (this simulator reads {VERSION_MAJOR}); {REFLASH} of this release, or use the release that wrote it"
            ),
            FlashError::UnsupportedVersion { major, minor } => write!(
                f,
                "flash image version {major}.{minor}: minor version {minor} is newer than this simulator reads (up to {VERSION_MAJOR}.{VERSION_MINOR}); {REFLASH} of this release, or use the release that wrote it"
            ),
            FlashError::HeaderCrc { stored, computed } => write!(
                f,
                "flash header corrupted: CRC-32C mismatch (stored {stored:08x}, computed {computed:08x}); {REFLASH}"
            ),
            FlashError::BadField {
                field: FlashField::Reserved,
                found,
                ..
            } => write!(
                f,
                "flash header field reserved: byte {found} is not zero; {REFLASH}"
            ),
            FlashError::BadField {
                field,
                found,
                expected,
            } => write!(
                f,
                "flash header field {} is {found}, must be {expected}; {REFLASH}",
                field.name()
            ),
            FlashError::PlannedSlice {
                height,
                width,
                reason,
            } => write!(
                f,
                "flash header field planned slice {height}x{width} cannot be run: {reason}; {REFLASH} and --height/--width the core accepts"
            ),
            FlashError::PlannedRam {
                height,
                width,
                stored,
                computed,
            } => write!(
                f,
                "flash header field planned RAM is {stored} bytes, but a {height}x{width} slice of its weight file needs {computed} bytes (scratch + input + output) in this build; {REFLASH}"
            ),
            FlashError::Weights(err) => write!(f, "weight file in the flash image: {err}"),
            FlashError::WeightsMismatch { stored, found } => write!(
                f,
                "the flash header was written for the weight file with header CRC {stored:08x}, the image holds {found:08x}; {REFLASH}"
            ),
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
    /// RAM that slice needs, as computed when flashing (checked against the core).
    pub planned_ram: u64,
    /// Length of the image proper (header + weight file).
    pub image_len: usize,
    /// The flash header's own CRC-32C (bytes 60..64), checked.
    pub header_crc32c: u32,
}

/// The `N` bytes at `at` of the header (all offsets are constants inside the 64 bytes).
fn field<const N: usize>(header: &[u8; FLASH_HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(bytes) = header.get(at..at + N) {
        out.copy_from_slice(bytes);
    }
    out
}
fn u16_at(h: &[u8; FLASH_HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes(field(h, at))
}
fn u32_at(h: &[u8; FLASH_HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes(field(h, at))
}
fn u64_at(h: &[u8; FLASH_HEADER_LEN], at: usize) -> u64 {
    u64::from_le_bytes(field(h, at))
}

/// Reserved (zero) byte ranges of the header.
const RESERVED: [(usize, usize); 2] = [(44, 48), (56, 60)];

impl<'a> FlashImage<'a> {
    /// Validates every field of the flash header structurally (docs/FIRMWARE.md, in this
    /// order: magic, major version, header CRC, minor version, header length, weight file
    /// offset, reserved bytes, weight file length, the weight file with every check of the
    /// core, its CRC against the header's, the planned slice and RAM against the core's
    /// plan), and returns a view of the image. Never panics.
    pub fn new_checked(bytes: &'a [u8]) -> Result<FlashImage<'a>, FlashError> {
        let available = bytes.len() as u64;
        let Some(header) = bytes
            .get(..FLASH_HEADER_LEN)
            .and_then(|h| <&[u8; FLASH_HEADER_LEN]>::try_from(h).ok())
        else {
            return Err(FlashError::Truncated {
                needed: FLASH_HEADER_LEN as u64,
                available,
            });
        };
        // 1. Magic, 2. major version: the fields whose place never changes.
        if field::<8>(header, 0) != FLASH_MAGIC {
            return Err(FlashError::BadMagic);
        }
        let (major, minor) = (u16_at(header, 8), u16_at(header, 10));
        if major != VERSION_MAJOR {
            return Err(FlashError::UnsupportedVersion { major, minor });
        }
        // 3. The header CRC.
        let stored = u32_at(header, 60);
        let computed = crc32c(header.get(..60).unwrap_or(&[]));
        if stored != computed {
            return Err(FlashError::HeaderCrc { stored, computed });
        }
        // 4. Minor version: up to this reader's.
        #[allow(clippy::absurd_extreme_comparisons)]
        if minor > VERSION_MINOR {
            return Err(FlashError::UnsupportedVersion { major, minor });
        }
        // 5. The fixed layout.
        let fixed = [
            (FlashField::HeaderLength, u64::from(u32_at(header, 12))),
            (FlashField::WeightsOffset, u64_at(header, 16)),
        ];
        for (field, found) in fixed {
            if found != FLASH_HEADER_LEN as u64 {
                return Err(FlashError::BadField {
                    field,
                    found,
                    expected: FLASH_HEADER_LEN as u64,
                });
            }
        }
        for (start, end) in RESERVED {
            if let Some(i) = header
                .get(start..end)
                .and_then(|r| r.iter().position(|&b| b != 0))
            {
                return Err(FlashError::BadField {
                    field: FlashField::Reserved,
                    found: (start + i) as u64,
                    expected: 0,
                });
            }
        }
        // 6. The weight file: present, valid, exactly the recorded length and CRC.
        let weights_len = u64_at(header, 24);
        let end = weights_len
            .checked_add(FLASH_HEADER_LEN as u64)
            .ok_or(FlashError::BadField {
                field: FlashField::WeightsLength,
                found: weights_len,
                expected: available.saturating_sub(FLASH_HEADER_LEN as u64),
            })?;
        if end > available {
            return Err(FlashError::Truncated {
                needed: end,
                available,
            });
        }
        let weights_bytes = usize::try_from(end)
            .ok()
            .and_then(|end| bytes.get(FLASH_HEADER_LEN..end))
            .ok_or(FlashError::Truncated {
                needed: end,
                available,
            })?;
        let weights = WeightFile::new_checked(weights_bytes).map_err(FlashError::Weights)?;
        let file_len = weights.bytes().len() as u64;
        if file_len != weights_len {
            return Err(FlashError::BadField {
                field: FlashField::WeightsLength,
                found: weights_len,
                expected: file_len,
            });
        }
        let recorded_crc = u32_at(header, 32);
        if weights.crc32c() != recorded_crc {
            return Err(FlashError::WeightsMismatch {
                stored: recorded_crc,
                found: weights.crc32c(),
            });
        }
        // 7. The plan: a slice the core runs, and exactly the RAM it needs.
        let (height, width) = (u32_at(header, 36), u32_at(header, 40));
        let planned_ram = u64_at(header, 48);
        let computed = slice_ram(&weights, height as usize, width as usize).map_err(|reason| {
            FlashError::PlannedSlice {
                height,
                width,
                reason,
            }
        })?;
        if computed != planned_ram {
            return Err(FlashError::PlannedRam {
                height,
                width,
                stored: planned_ram,
                computed,
            });
        }
        Ok(FlashImage {
            weights,
            planned_height: height,
            planned_width: width,
            planned_ram,
            image_len: weights_bytes.len() + FLASH_HEADER_LEN,
            header_crc32c: stored,
        })
    }
}

/// The RAM of one `height × width` slice: the core's scratch plus the f32 input and output
/// slices, or why the core cannot plan it.
fn slice_ram(
    weights: &WeightFile<'_>,
    height: usize,
    width: usize,
) -> Result<u64, dicyc_core::Error> {
    let config = weights.config();
    let scratch = dicyc_core::required_scratch_bytes(&config, height, width)?;
    let bad = dicyc_core::Error::BadDimensions { height, width };
    // The core accepted the size, so these are far from overflowing; checked anyway.
    let channels = u64::from(config.in_channels) + u64::from(config.out_channels);
    channels
        .checked_mul(height as u64)
        .and_then(|n| n.checked_mul(width as u64))
        .and_then(|n| n.checked_mul(4))
        .and_then(|io| io.checked_add(scratch as u64))
        .ok_or(bad)
}

/// The RAM a slice of `height × width` needs on the device: the core's scratch plus the
/// f32 input and output slices.
pub fn ram_needed(weights: &WeightFile<'_>, height: usize, width: usize) -> anyhow::Result<u64> {
    slice_ram(weights, height, width)
        .map_err(|err| anyhow::anyhow!("a {height}x{width} slice cannot be planned: {err}"))
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
