//! The golden bundle: real input slices and libtorch's fp32 outputs for both passes,
//! written by `trainer export` and replayed on the device by `firmware-sim verify`.
//!
//! A directory holding `golden.json` and raw little-endian f32 files in CHW order, so that
//! anyone can read them (`numpy.fromfile(path, "<f4").reshape(c, h, w)`). Specified in
//! docs/FIRMWARE.md, section "Golden bundle (version 1)".

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

/// Name of the manifest inside a bundle directory.
pub const MANIFEST: &str = "golden.json";
/// Value of the manifest's `format` field.
pub const FORMAT: &str = "dicyc-golden";
/// The manifest version this code reads and writes.
pub const VERSION: u32 = 1;

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
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn read_f32(path: &Path, expected: usize) -> anyhow::Result<Vec<f32>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read golden data {}", path.display()))?;
    ensure!(
        bytes.len() == expected * 4,
        "{}: expected {expected} f32 values ({} bytes), found {} bytes",
        path.display(),
        expected * 4,
        bytes.len()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
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
        std::fs::write(&path, serde_json::to_string_pretty(&self.manifest)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(self.manifest)
    }
}

/// Reads a bundle directory, checking every file's size against the manifest.
pub fn read_bundle(dir: &Path) -> anyhow::Result<(Manifest, Vec<LoadedSlice>)> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read golden bundle manifest {}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a golden bundle manifest", path.display()))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        bail!(
            "{}: format {:?} version {} is not {FORMAT} version {VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    let slices = manifest
        .slices
        .iter()
        .map(|meta| {
            let pixels = meta.height * meta.width;
            Ok(LoadedSlice {
                input: read_f32(&dir.join(&meta.input), manifest.in_channels * pixels)?,
                deformed: read_f32(&dir.join(&meta.deformed), manifest.out_channels * pixels)?,
                undeformed: read_f32(&dir.join(&meta.undeformed), manifest.out_channels * pixels)?,
                meta: meta.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((manifest, slices))
}
