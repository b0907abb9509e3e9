//! Device profiles: how much flash holds the image and how much RAM the inference may use.

use std::fmt;

use anyhow::{bail, Context};

const MIB: u64 = 1024 * 1024;

/// A device's memory: the flash that holds the image and the RAM that holds the core's
/// scratch buffer plus the input and output slices.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceProfile {
    /// Profile name (`custom` for sizes given on the command line).
    pub name: String,
    /// Flash capacity in bytes.
    pub flash_bytes: u64,
    /// RAM available to inference in bytes.
    pub ram_bytes: u64,
}

/// The named profiles: accelerator boards of the sizes scanner vendors fit. The uses are
/// what the profile holds with the paper-size generator (24.65 MiB image; RAM = scratch of
/// docs/MEMORY.md + f32 input and output slices). The RAM figures are those of the
/// portable build (6×8 micro-kernel, no `target-cpu` flags), which is how `firmware-sim`
/// is built; an AVX2 build needs the same, an AVX-512 build (8×32 panels) 22 KiB less at
/// 256×256 (docs/MEMORY.md), since the scratch size depends on the panel padding.
pub const NAMED_PROFILES: &[(&str, u64, u64, &str)] = &[
    (
        "edge-8m",
        16 * MIB,
        8 * MIB,
        "small MCU-class board: small models or small slices",
    ),
    (
        "edge-16m",
        32 * MIB,
        16 * MIB,
        "paper-size model at 256x256 (needs 13.77 MiB RAM)",
    ),
    (
        "edge-32m",
        64 * MIB,
        32 * MIB,
        "paper-size model up to 384x384 (needs 29.74 MiB RAM)",
    ),
    (
        "edge-64m",
        128 * MIB,
        64 * MIB,
        "paper-size model at 512x512 (needs 51.96 MiB RAM)",
    ),
];

impl DeviceProfile {
    /// A named profile, with optional overrides of either size.
    pub fn resolve(
        name: Option<&str>,
        flash: Option<u64>,
        ram: Option<u64>,
    ) -> anyhow::Result<DeviceProfile> {
        let mut profile = match name {
            Some(name) => {
                let Some(&(name, flash_bytes, ram_bytes, _)) =
                    NAMED_PROFILES.iter().find(|p| p.0 == name)
                else {
                    let known: Vec<&str> = NAMED_PROFILES.iter().map(|p| p.0).collect();
                    bail!("unknown device profile {name:?}; known profiles: {} (or give --flash and --ram)", known.join(", "));
                };
                DeviceProfile {
                    name: name.to_owned(),
                    flash_bytes,
                    ram_bytes,
                }
            }
            None => match (flash, ram) {
                (Some(flash_bytes), Some(ram_bytes)) => {
                    return Ok(DeviceProfile {
                        name: "custom".to_owned(),
                        flash_bytes,
                        ram_bytes,
                    })
                }
                _ => bail!("name a device profile with --profile, or give both --flash and --ram"),
            },
        };
        if let Some(flash) = flash {
            profile.flash_bytes = flash;
            profile.name.push_str("+flash");
        }
        if let Some(ram) = ram {
            profile.ram_bytes = ram;
            profile.name.push_str("+ram");
        }
        Ok(profile)
    }
}

impl fmt::Display for DeviceProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (flash {}, RAM {})",
            self.name,
            human_bytes(self.flash_bytes),
            human_bytes(self.ram_bytes)
        )
    }
}

/// Parses `123`, `64K`, `16KiB`, `32M`, `32MiB`, `1G` (binary units) into bytes.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let value: u64 = digits.parse().with_context(|| {
        format!("size {text:?}: expected a number with an optional unit (K, M, G)")
    })?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => 1024 * MIB,
        other => bail!("size {text:?}: unknown unit {other:?} (use K, M or G, binary)"),
    };
    value
        .checked_mul(multiplier)
        .with_context(|| format!("size {text:?} does not fit in 64 bits"))
}

/// `12.3 MiB`-style rendering for messages.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{:.2} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("32MiB").unwrap(), 32 * MIB);
        assert_eq!(parse_size("1g").unwrap(), 1024 * MIB);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn named_and_custom_profiles_resolve() {
        let p = DeviceProfile::resolve(Some("edge-32m"), None, None).unwrap();
        assert_eq!((p.flash_bytes, p.ram_bytes), (64 * MIB, 32 * MIB));
        let p = DeviceProfile::resolve(Some("edge-32m"), None, Some(MIB)).unwrap();
        assert_eq!(p.ram_bytes, MIB);
        let p = DeviceProfile::resolve(None, Some(10), Some(20)).unwrap();
        assert_eq!(p.name, "custom");
        let err = DeviceProfile::resolve(Some("edge-1t"), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("edge-8m"), "{err}");
        assert!(DeviceProfile::resolve(None, Some(10), None).is_err());
    }
}
