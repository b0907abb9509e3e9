//! The golden bundle: real input slices and libtorch's fp32 outputs for both passes,
//! written by `trainer export` and replayed on the device by `firmware-sim verify`.
//!
//! A directory holding `golden.json` and raw little-endian f32 files in CHW order, so that
//! anyone can read them (`numpy.fromfile(path, "<f4").reshape(c, h, w)`). Specified in
//! docs/FIRMWARE.md, section "Golden bundle (version 1)".

use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

/// Name of the manifest inside a bundle directory.
pub const MANIFEST: &str = "golden.json";
/// Value of the manifest's `format` field.
pub const FORMAT: &str = "dicyc-golden";
/// The manifest version this code reads and writes.
pub const VERSION: u32 = 1;

/// docs/DESIGN.md §3.3: the relative L2 error of the core's output against libtorch's that a
/// bundle's replay may show, at most (fp16 weights against fp32).
pub const REL_L2_TOLERANCE: f64 = 1e-2;
/// docs/DESIGN.md §3.3: the largest absolute difference on the tanh range, at most.
pub const MAX_ABS_TOLERANCE: f64 = 3e-2;

/// `golden.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Header CRC-32C of the weight file the outputs were computed with (hex), which
    /// fingerprints the whole file.
    pub weights_crc32c: String,
    /// Input image channels.
    pub in_channels: usize,
    /// Output image channels.
    pub out_channels: usize,
    /// The slices.
    pub slices: Vec<GoldenSlice>,
}

/// One input slice and the reference outputs of both passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenSlice {
    /// Where it came from (volume and slice index), for reports.
    pub name: String,
    /// Slice height.
    pub height: usize,
    /// Slice width.
    pub width: usize,
    /// File of the `in_channels × height × width` input (generator range).
    pub input: String,
    /// File of libtorch's deformed-pass output.
    pub deformed: String,
    /// File of libtorch's undeformed-pass output.
    pub undeformed: String,
}

/// A slice with its data loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSlice {
    /// The manifest entry.
    pub meta: GoldenSlice,
    /// Input, CHW.
    pub input: Vec<f32>,
    /// Reference deformed output, CHW.
    pub deformed: Vec<f32>,
    /// Reference undeformed output, CHW.
    pub undeformed: Vec<f32>,
}

/// Writes f32 values as raw little-endian bytes.
fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(path, &bytes)
}

/// Reads the raw f32 file `path`, which must be a regular file of exactly
/// `expected_values` × 4 bytes: its size is checked before anything is read, and the read
/// is bounded by it, so a device (`/dev/zero`), a pipe, a folder or a huge file is a clear
/// error, never an unbounded read.
fn read_f32(path: &Path, expected_values: u64, what: &str) -> anyhow::Result<Vec<f32>> {
    let expected = expected_values.checked_mul(4).with_context(|| {
        format!(
            "{}: {expected_values} f32 values do not fit in 64 bits",
            path.display()
        )
    })?;
    let bytes = read_regular_file(path, expected, expected, what)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// What a non-regular file is, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_fifo() {
            return "a pipe";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a plain file"
}

/// Reads `path`, a regular file of `min..=max` bytes (checked from its metadata before it is
/// opened, so that a pipe is never opened and a device never read), reading at most `max`
/// bytes (a file that grows meanwhile is refused, not followed).
fn read_regular_file(path: &Path, min: u64, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let fix = "re-export the bundle with `trainer export`";
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    ensure!(
        meta.is_file(),
        "{what} {} is not a regular file ({}); the bundle must hold plain files: {fix}",
        path.display(),
        kind_of(meta.file_type())
    );
    let size_error = |found: u64| {
        let wanted = if min == max {
            format!("{min} bytes")
        } else {
            format!("at most {max} bytes")
        };
        anyhow::anyhow!(
            "{what} {} has {found} bytes, expected {wanted} (from the manifest); the bundle is incomplete or was edited: {fix}",
            path.display()
        )
    };
    if meta.len() < min || meta.len() > max {
        return Err(size_error(meta.len()));
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let capacity = usize::try_from(meta.len())
        .with_context(|| format!("{what} {} does not fit in memory", path.display()))?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(capacity).map_err(|_| {
        anyhow::anyhow!(
            "{what} {}: not enough memory for {capacity} bytes",
            path.display()
        )
    })?;
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let found = bytes.len() as u64;
    if found < min || found > max {
        return Err(size_error(found));
    }
    Ok(bytes)
}

/// Builds a bundle directory slice by slice.
pub struct BundleWriter {
    dir: PathBuf,
    manifest: Manifest,
}

impl BundleWriter {
    /// Starts a bundle in `dir` (created if missing) for the weight file with header CRC
    /// `weights_crc32c`.
    pub fn create(
        dir: &Path,
        weights_crc32c: u32,
        in_channels: usize,
        out_channels: usize,
    ) -> anyhow::Result<BundleWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(BundleWriter {
            dir: dir.to_owned(),
            manifest: Manifest {
                format: FORMAT.into(),
                version: VERSION,
                weights_crc32c: format!("{weights_crc32c:08x}"),
                in_channels,
                out_channels,
                slices: Vec::new(),
            },
        })
    }

    /// Adds one slice: input and both reference outputs, CHW.
    pub fn add(
        &mut self,
        name: &str,
        height: usize,
        width: usize,
        input: &[f32],
        deformed: &[f32],
        undeformed: &[f32],
    ) -> anyhow::Result<()> {
        let (cin, cout) = (self.manifest.in_channels, self.manifest.out_channels);
        ensure!(
            input.len() == cin * height * width,
            "golden input {name}: wrong length"
        );
        ensure!(
            deformed.len() == cout * height * width && undeformed.len() == deformed.len(),
            "golden output {name}: wrong length"
        );
        let index = self.manifest.slices.len();
        let meta = GoldenSlice {
            name: name.into(),
            height,
            width,
            input: format!("slice-{index:03}.input.f32"),
            deformed: format!("slice-{index:03}.deformed.f32"),
            undeformed: format!("slice-{index:03}.undeformed.f32"),
        };
        write_f32(&self.dir.join(&meta.input), input)?;
        write_f32(&self.dir.join(&meta.deformed), deformed)?;
        write_f32(&self.dir.join(&meta.undeformed), undeformed)?;
        self.manifest.slices.push(meta);
        Ok(())
    }

    /// Writes the manifest (last, so a bundle with a manifest is complete).
    pub fn finish(self) -> anyhow::Result<Manifest> {
        let path = self.dir.join(MANIFEST);
        write_atomic(
            &path,
            serde_json::to_string_pretty(&self.manifest)?.as_bytes(),
        )?;
        Ok(self.manifest)
    }
}

/// Whether `name` is one normal path component (so that joined to the bundle's folder it
/// stays inside it).
fn is_plain_file_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

/// Largest `golden.json` read: an entry is about 200 bytes, so this is some 300,000 slices.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Reads and checks `dir/golden.json` (format, version and [`Manifest::validate`]) without
/// reading any slice data.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = read_regular_file(&path, 0, MAX_MANIFEST_BYTES, "golden bundle manifest")?;
    let manifest: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a golden bundle manifest (docs/FIRMWARE.md, \"Golden bundle\")",
            path.display()
        )
    })?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        bail!(
            "{}: format {:?} version {} is not {FORMAT} version {VERSION}; write the bundle with this release's `trainer export`",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    manifest
        .validate()
        .with_context(|| format!("{} is not a valid golden bundle manifest", path.display()))?;
    Ok(manifest)
}

impl Manifest {
    /// Checks what can be checked without a model: at least one slice, at least one input
    /// and one output channel, slices of at least 1×1 whose byte counts fit in 64 bits.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.in_channels > 0,
            "it declares 0 input channels (a generator has at least 1)"
        );
        ensure!(
            self.out_channels > 0,
            "it declares 0 output channels (a generator has at least 1)"
        );
        ensure!(!self.slices.is_empty(), "it lists no slices");
        for (i, slice) in self.slices.iter().enumerate() {
            let (h, w) = (slice.height, slice.width);
            ensure!(
                h > 0 && w > 0,
                "slice {i} ({:?}) is {h}x{w}: a slice has at least one pixel",
                slice.name
            );
            for channels in [self.in_channels, self.out_channels] {
                ensure!(
                    Self::values(channels, h, w).is_some(),
                    "slice {i} ({:?}) of {channels}x{h}x{w} values is too large to exist",
                    slice.name
                );
            }
            for file in [&slice.input, &slice.deformed, &slice.undeformed] {
                ensure!(
                    is_plain_file_name(file),
                    "slice {i} ({:?}) names the file {file:?}: a bundle's files are plain \
                     names inside its folder (no folders, no \"..\", no absolute paths); \
                     re-export the bundle with `trainer export`",
                    slice.name
                );
            }
        }
        Ok(())
    }

    /// Checks the manifest against the generator that will run it: the same input and
    /// output channels, and every slice a size the core can run (multiples of 4, at least 8).
    pub fn check_model(&self, config: &dicyc_core::ModelConfig) -> anyhow::Result<()> {
        let (cin, cout) = (config.in_channels as usize, config.out_channels as usize);
        ensure!(
            self.in_channels == cin && self.out_channels == cout,
            "the bundle has {} input channels and {} output channels, the model {cin} and {cout}: it was made for another model; verify it with that model's image, or re-export the bundle for this one",
            self.in_channels,
            self.out_channels
        );
        for (i, slice) in self.slices.iter().enumerate() {
            let (h, w) = (slice.height, slice.width);
            dicyc_core::required_scratch_bytes(config, h, w).map_err(|err| {
                anyhow::anyhow!(
                    "slice {i} ({:?}) is {h}x{w}, which the model cannot run: {err}",
                    slice.name
                )
            })?;
        }
        Ok(())
    }

    /// `channels × height × width`, if it fits (in f32 values and in bytes).
    fn values(channels: usize, height: usize, width: usize) -> Option<u64> {
        let n = (channels as u64)
            .checked_mul(height as u64)?
            .checked_mul(width as u64)?;
        n.checked_mul(4)?;
        Some(n)
    }
}

/// Loads the data of every slice of a checked `manifest` from `dir`; each file must be a
/// regular file of exactly the size its shape gives. (Holds the whole bundle in memory:
/// replaying a bundle, `firmware-sim verify` reads one slice at a time with [`load_slice`].)
pub fn load_slices(dir: &Path, manifest: &Manifest) -> anyhow::Result<Vec<LoadedSlice>> {
    manifest.validate().with_context(|| {
        format!(
            "{} is not a valid golden bundle manifest",
            dir.join(MANIFEST).display()
        )
    })?;
    (0..manifest.slices.len())
        .map(|index| load_slice(dir, manifest, index))
        .collect()
}

/// Loads slice `index` of a [validated](Manifest::validate) `manifest` from `dir`: its three
/// files, each a regular file of exactly the size its shape gives (checked before reading).
pub fn load_slice(dir: &Path, manifest: &Manifest, index: usize) -> anyhow::Result<LoadedSlice> {
    let meta = manifest.slices.get(index).with_context(|| {
        format!(
            "{} lists {} slices, not {}",
            dir.join(MANIFEST).display(),
            manifest.slices.len(),
            index + 1
        )
    })?;
    let values =
        |channels: usize| Manifest::values(channels, meta.height, meta.width).unwrap_or(u64::MAX);
    let (cin, cout) = (manifest.in_channels, manifest.out_channels);
    Ok(LoadedSlice {
        input: read_f32(&dir.join(&meta.input), values(cin), "golden input")?,
        deformed: read_f32(
            &dir.join(&meta.deformed),
            values(cout),
            "golden deformed output",
        )?,
        undeformed: read_f32(
            &dir.join(&meta.undeformed),
            values(cout),
            "golden undeformed output",
        )?,
        meta: meta.clone(),
    })
}

/// Reads a bundle directory: the checked manifest, then every file, each checked against
/// the size the manifest gives before it is read.
pub fn read_bundle(dir: &Path) -> anyhow::Result<(Manifest, Vec<LoadedSlice>)> {
    let manifest = read_manifest(dir)?;
    let slices = load_slices(dir, &manifest)?;
    Ok((manifest, slices))
}

/// [`read_bundle`] for the generator `config`: refuses a bundle made for other channels or
/// with slices the core cannot run before reading any slice data.
pub fn read_bundle_for(
    dir: &Path,
    config: &dicyc_core::ModelConfig,
) -> anyhow::Result<(Manifest, Vec<LoadedSlice>)> {
    let manifest = read_manifest(dir)?;
    manifest
        .check_model(config)
        .with_context(|| format!("{} does not fit the model", dir.join(MANIFEST).display()))?;
    let slices = load_slices(dir, &manifest)?;
    Ok((manifest, slices))
}
