//! The MNI ICBM152 2009a template (symmetric, non-linear; McConnell Brain Imaging Centre)
//! as shipped in PyPI's nilearn wheel: where it is cached and how it is fetched.
//!
//! Cache: `${DICYC_CACHE:-~/.cache/dicyc}/mni_icbm152_2009a/`. Fetching downloads the
//! nilearn wheel with `python3 -m pip download` (nothing is installed) into
//! `<cache>/wheels/` and extracts the three maps with Python's `zipfile` (the same steps as
//! `tools/fetch-template.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The nilearn release whose wheel was checked to ship the template.
pub const NILEARN_VERSION: &str = "0.14.1";
/// Grid of the template maps.
pub const TEMPLATE_DIMS: [usize; 3] = [197, 233, 189];

/// File name of one map (`t1`, `gm`, `wm`).
pub fn map_file(kind: &str) -> String {
    format!("mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")
}

/// `${DICYC_CACHE:-~/.cache/dicyc}`.
pub fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("DICYC_CACHE").filter(|c| !c.is_empty()) {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("dicyc")
}

/// The default template folder in the cache.
pub fn default_template_dir() -> PathBuf {
    cache_dir().join("mni_icbm152_2009a")
}

/// Whether `dir` holds the three maps (by name and plausible size).
pub fn is_present(dir: &Path) -> bool {
    ["t1", "gm", "wm"]
        .iter()
        .all(|k| std::fs::metadata(dir.join(map_file(k))).is_ok_and(|m| m.len() > 100_000))
}

/// Returns the template folder: `dir` if given (must hold the maps), else the cache, fetching
/// the template into it first when `fetch` is true and it is absent.
pub fn locate(dir: Option<&Path>, fetch: bool) -> Result<PathBuf> {
    if let Some(d) = dir {
        if is_present(d) {
            return Ok(d.to_path_buf());
        }
        bail!(
            "template folder {} lacks {} / gm / wm maps: run tools/fetch-template.sh or omit --template",
            d.display(),
            map_file("t1")
        );
    }
    let d = default_template_dir();
    if is_present(&d) {
        return Ok(d);
    }
    if !fetch {
        bail!("the MNI ICBM152 2009a template is not in {}: run tools/fetch-template.sh (needs python3 with pip and network once)", d.display());
    }
    fetch_into(&cache_dir())?;
    if !is_present(&d) {
        bail!(
            "fetching the template did not produce the maps in {}",
            d.display()
        );
    }
    Ok(d)
}

/// Downloads the nilearn wheel into `<cache>/wheels` (reused when present) and extracts the
/// maps into `<cache>/mni_icbm152_2009a`.
pub fn fetch_into(cache: &Path) -> Result<()> {
    let wheels = cache.join("wheels");
    let out = cache.join("mni_icbm152_2009a");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let find_wheel = || -> Option<PathBuf> {
        std::fs::read_dir(&wheels)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("nilearn-{NILEARN_VERSION}-")) && n.ends_with(".whl")
                })
            })
    };
    let wheel = match find_wheel() {
        Some(w) => w,
        None => {
            eprintln!(
                "downloading nilearn {NILEARN_VERSION} wheel (template source) into {} ...",
                wheels.display()
            );
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    &format!("nilearn=={NILEARN_VERSION}"),
                    "--no-deps",
                    "--only-binary=:all:",
                    "-q",
                    "-d",
                ])
                .arg(&wheels)
                .status()
                .context("cannot run `python3 -m pip download` (is python3 with pip installed?)")?;
            if !status.success() {
                bail!("`python3 -m pip download nilearn=={NILEARN_VERSION}` failed ({status}); check the network or run tools/fetch-template.sh");
            }
            find_wheel().context("pip reported success but no nilearn wheel is in the cache")?
        }
    };
    let script = r#"
import os, sys, zipfile, tempfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for kind in ("t1", "gm", "wm"):
        name = f"nilearn/datasets/data/mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        data = z.read(name)
        fd, tmp = tempfile.mkstemp(dir=out, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(out, os.path.basename(name)))
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(&out)
        .status()
        .context("cannot run python3 to extract the template from the wheel")?;
    if !status.success() {
        bail!(
            "extracting the template from {} failed ({status}); delete the wheel and retry",
            wheel.display()
        );
    }
    Ok(())
}
