//! `firmware-sim inspect`: what a weight file holds, after full validation by the core.

use std::fmt;

use dicyc_core::format::{FormatError, Section, WeightFile};
use serde::Serialize;

/// Everything a user wants to know about a valid weight file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// `major.minor` format version.
    pub version: String,
    /// Bytes of the file proper (trailing flash padding excluded).
    pub file_bytes: usize,
    /// Image channels in.
    pub in_channels: u16,
    /// Image channels out.
    pub out_channels: u16,
    /// Base width.
    pub ngf: u16,
    /// Residual blocks.
    pub n_blocks: u16,
    /// Names of the offset layers present.
    pub offset_layers: Vec<&'static str>,
    /// Their fields' form: `per-channel` or `shared`.
    pub offset_form: &'static str,
    /// `[input_offset, input_scale, output_offset, output_scale]`.
    pub normalization: [f32; 4],
    /// Architecture hash, hex.
    pub architecture_hash: String,
    /// CRC-32C of the header, table and data sections, hex.
    pub crc32c: Checksums,
    /// Total parameters.
    pub parameters: u64,
    /// One row per tensor, in file order.
    pub tensors: Vec<TensorRow>,
}

/// The three section checksums.
#[derive(Debug, Clone, Serialize)]
pub struct Checksums {
    /// Header CRC-32C.
    pub header: String,
    /// Tensor-table CRC-32C.
    pub table: String,
    /// Data CRC-32C.
    pub data: String,
}

/// One tensor record.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    /// Checkpoint name, e.g. `blocks.3.conv1.weight`.
    pub name: String,
    /// `f16` or `f32`.
    pub dtype: &'static str,
    /// Dimensions.
    pub dims: Vec<u32>,
    /// Byte offset of the data from the start of the file.
    pub offset: usize,
    /// Bytes of data.
    pub bytes: usize,
}

impl Inspection {
    /// Validates `bytes` as a weight file (everything the core checks) and describes it.
    pub fn of(bytes: &[u8]) -> Result<Inspection, FormatError> {
        let file = WeightFile::new_checked(bytes)?;
        let config = file.config();
        let norm = file.normalization();
        let (major, minor) = file.version();
        let base = file.bytes().as_ptr() as usize;
        let tensors = file
            .tensors()
            .map(|view| TensorRow {
                name: view.spec.id.to_string(),
                dtype: match view.spec.dtype {
                    dicyc_core::Dtype::F16 => "f16",
                    dicyc_core::Dtype::F32 => "f32",
                },
                dims: view.spec.dims().to_vec(),
                offset: view.bytes.as_ptr() as usize - base,
                bytes: view.bytes.len(),
            })
            .collect();
        Ok(Inspection {
            version: format!("{major}.{minor}"),
            file_bytes: file.bytes().len(),
            in_channels: config.in_channels,
            out_channels: config.out_channels,
            ngf: config.ngf,
            n_blocks: config.n_blocks,
            offset_layers: dicyc_core::OffsetSite::ALL
                .iter()
                .filter(|site| config.offset_layers.contains(**site))
                .map(|site| site.name())
                .collect(),
            offset_form: config.offset_layers.form().name(),
            normalization: [
                norm.input_offset,
                norm.input_scale,
                norm.output_offset,
                norm.output_scale,
            ],
            architecture_hash: format!("{:016x}", file.architecture_hash()),
            crc32c: Checksums {
                header: format!("{:08x}", file.section_crc32c(Section::Header)),
                table: format!("{:08x}", file.section_crc32c(Section::Table)),
                data: format!("{:08x}", file.section_crc32c(Section::Data)),
            },
            parameters: config.parameter_count(),
            tensors,
        })
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dicyc weight file, format {}, {} bytes: valid",
            self.version, self.file_bytes
        )?;
        writeln!(
            f,
            "generator: {} -> {} channels, ngf {}, {} residual blocks, offset layers [{}]{}, {} parameters",
            self.in_channels,
            self.out_channels,
            self.ngf,
            self.n_blocks,
            self.offset_layers.join(", "),
            if self.offset_layers.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.offset_form)
            },
            self.parameters
        )?;
        let [io, is, oo, os] = self.normalization;
        writeln!(
            f,
            "normalization: input (z - {io}) * {is}; output y * {os} + {oo}"
        )?;
        writeln!(f, "architecture hash: {}", self.architecture_hash)?;
        writeln!(
            f,
            "crc32c: header {} table {} data {}",
            self.crc32c.header, self.crc32c.table, self.crc32c.data
        )?;
        writeln!(
            f,
            "{:<26} {:<5} {:<20} {:>10} {:>10}",
            "tensor", "dtype", "dims", "offset", "bytes"
        )?;
        for t in &self.tensors {
            let dims = t
                .dims
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("x");
            writeln!(
                f,
                "{:<26} {:<5} {:<20} {:>10} {:>10}",
                t.name, t.dtype, dims, t.offset, t.bytes
            )?;
        }
        Ok(())
    }
}
