//! Real scans for MR→CT, fetched at set-up from Debian's package archive into the cache and
//! never committed (docs/DATA.md, "Real scans"):
//!
//! - Colin27 (`ch2.nii.gz`, and `ch2bet.nii.gz`, its brain-extracted version): a real T1 MR
//!   of one head with skull and scalp, 181×217×181 at 1 mm, from `mricron-data`;
//! - `Cranium.inv3`: a real clinical head CT (int16 HU, 256×256×108 at 0.957×0.957×1.5 mm)
//!   from `invesalius-examples` (GPL-2 data: it stays in the cache), converted to NIfTI with
//!   its real geometry by [`dicyc_volume::inv3`].
//!
//! Each package is pinned by version and SHA-256 of its `.deb`, each file taken from it by
//! SHA-256. A `.deb` comes from the cache, else `apt-get download` (root or not), else a plain
//! download (curl or wget) of the URI apt's configured source gives for it, or, without apt,
//! of its path on deb.debian.org. Files are unpacked with `dpkg-deb --fsys-tarfile` (or
//! `ar` + `xz` without dpkg) and written atomically after their hash checked.
//!
//! Cache: `${DICYC_CACHE:-~/.cache/dicyc}/real/` (`debs/`, `colin27/`, `cranium/`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use dicyc_volume::atomic::AtomicFile;
use dicyc_volume::inv3::{self, Inv3Scan};

use super::template::cache_dir;

/// A Debian package pinned by version and the SHA-256 of its `.deb`.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// Package name.
    pub name: &'static str,
    /// Exact version (bookworm).
    pub version: &'static str,
    /// Path of the `.deb` under a Debian mirror's root (`pool/…`).
    pub pool_path: &'static str,
    /// SHA-256 of the `.deb` (as in the archive's `Packages` index).
    pub deb_sha256: &'static str,
    /// Files taken from it: path inside the package, SHA-256, name in the cache folder.
    pub files: &'static [(&'static str, &'static str, &'static str)],
    /// Cache sub-folder of the files.
    pub folder: &'static str,
}

impl Package {
    /// The `.deb`'s file name (`name_version_all.deb`).
    pub fn deb_name(&self) -> String {
        format!("{}_{}_all.deb", self.name, self.version)
    }
}

/// `mricron-data` (BSD-3-Clause): Colin27 T1 and its brain-extracted version.
pub const MRICRON_DATA: Package = Package {
    name: "mricron-data",
    version: "1.2.20211006+dfsg-4",
    pool_path: "pool/main/m/mricron/mricron-data_1.2.20211006%2bdfsg-4_all.deb",
    deb_sha256: "d40aa0ed66cf89bf6cafa049ad3884703c9d975c2ee2737525b7196528df9d6f",
    files: &[
        (
            "usr/share/mricron/templates/ch2.nii.gz",
            "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
            "ch2.nii.gz",
        ),
        (
            "usr/share/mricron/templates/ch2bet.nii.gz",
            "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
            "ch2bet.nii.gz",
        ),
    ],
    folder: "colin27",
};

/// `invesalius-examples` (GPL-2): the Cranium CT project.
pub const INVESALIUS_EXAMPLES: Package = Package {
    name: "invesalius-examples",
    version: "3.1.99998-4",
    pool_path: "pool/main/i/invesalius/invesalius-examples_3.1.99998-4_all.deb",
    deb_sha256: "f2f14bdfef6dc3812eafc5013d133c6c18370aaab5666b78d54af2e7db432f97",
    files: &[(
        "usr/share/doc/invesalius-examples/examples/Cranium.inv3",
        "3b34f11f7c4f557f4c65cd6543c412a2f6ceb0cfecfd9c41184420e02d9b7e2a",
        "Cranium.inv3",
    )],
    folder: "cranium",
};

/// Where a mirror is taken from when apt is not there to say.
pub const FALLBACK_MIRROR: &str = "https://deb.debian.org/debian";

/// The converted CT, in the `cranium` folder.
pub const CT_NIFTI: &str = "cranium_ct.nii.gz";

/// `<cache>/real`.
pub fn real_dir() -> PathBuf {
    cache_dir().join("real")
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn has_sha(path: &Path, sha: &str) -> bool {
    sha256_file(path).is_ok_and(|s| s == sha)
}

/// What `fetch_real` produced.
#[derive(Debug)]
pub struct RealData {
    /// Colin27 T1 (`ch2.nii.gz`) and its brain-extracted version.
    pub colin27: PathBuf,
    /// See [`RealData::colin27`].
    pub colin27_bet: PathBuf,
    /// The InVesalius project as shipped.
    pub cranium_inv3: PathBuf,
    /// The CT as NIfTI.
    pub cranium_ct: PathBuf,
    /// The CT's project, as read (when it was converted in this run, or re-read).
    pub ct: Inv3Scan,
}

/// Fetches both packages' files into `<cache>/real` (reusing verified ones) and converts the CT
/// (again when `reconvert`).
pub fn fetch_real(reconvert: bool) -> Result<RealData> {
    let root = real_dir();
    for pkg in [MRICRON_DATA, INVESALIUS_EXAMPLES] {
        ensure_package_files(&root, &pkg)?;
    }
    let colin = root.join(MRICRON_DATA.folder);
    let cranium = root.join(INVESALIUS_EXAMPLES.folder);
    let inv3_path = cranium.join("Cranium.inv3");
    let ct_path = cranium.join(CT_NIFTI);
    let ct = if reconvert || !ct_path.is_file() {
        eprintln!(
            "converting {} -> {}",
            inv3_path.display(),
            ct_path.display()
        );
        inv3::convert_inv3(&inv3_path, &ct_path)?
    } else {
        inv3::read_inv3(&inv3_path)?
    };
    Ok(RealData {
        colin27: colin.join("ch2.nii.gz"),
        colin27_bet: colin.join("ch2bet.nii.gz"),
        cranium_inv3: inv3_path,
        cranium_ct: ct_path,
        ct,
    })
}

/// Makes `<root>/<folder>/<name>` hold each of the package's files with its pinned hash.
fn ensure_package_files(root: &Path, pkg: &Package) -> Result<()> {
    let folder = root.join(pkg.folder);
    let missing: Vec<_> = pkg
        .files
        .iter()
        .filter(|(_, sha, name)| !has_sha(&folder.join(name), sha))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let deb = ensure_deb(&root.join("debs"), pkg)?;
    extract_files(&deb, pkg, &folder)
}

/// The verified `.deb` of `pkg` in `debs` (downloaded when absent or wrong).
fn ensure_deb(debs: &Path, pkg: &Package) -> Result<PathBuf> {
    std::fs::create_dir_all(debs).with_context(|| format!("cannot create {}", debs.display()))?;
    let deb = debs.join(pkg.deb_name());
    if has_sha(&deb, pkg.deb_sha256) {
        return Ok(deb);
    }
    let _ = std::fs::remove_file(&deb);
    let mut tried = Vec::new();
    // 1. apt-get download, in a private folder (it writes the final name directly).
    let work = debs.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let spec = format!("{}={}", pkg.name, pkg.version);
    eprintln!("downloading {spec} (apt-get download) ...");
    let apt = Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(&work)
        .stdout(Stdio::null())
        .status();
    // Each source: what it is, and the file it produced (or why it produced none).
    let mut sources: Vec<(String, Result<PathBuf>)> = Vec::new();
    let got = work.join(pkg.deb_name());
    sources.push((
        format!("`apt-get download {spec}`"),
        match apt {
            Ok(s) if s.success() && got.is_file() => Ok(got),
            Ok(s) => Err(anyhow::anyhow!("failed ({s})")),
            Err(e) => Err(anyhow::anyhow!("could not run ({e})")),
        },
    ));
    // 2. The URI apt's configured source gives, else the pool path on deb.debian.org.
    let mut uris = apt_uri(pkg).into_iter().collect::<Vec<_>>();
    let fallback = format!("{FALLBACK_MIRROR}/{}", pkg.pool_path);
    if !uris.contains(&fallback) {
        uris.push(fallback);
    }
    let mut uris = uris.into_iter();
    loop {
        if let Some((what, file)) = sources.pop() {
            match file {
                Ok(file) if adopt(&file, &deb, pkg)? => {
                    let _ = std::fs::remove_dir_all(&work);
                    return Ok(deb);
                }
                Ok(_) => tried.push(format!(
                    "{what} gave a file whose SHA-256 is not the pinned one"
                )),
                Err(e) => tried.push(format!("{what}: {e:#}")),
            }
        }
        let Some(uri) = uris.next() else { break };
        let tmp = work.join(format!("{}.part", pkg.deb_name()));
        eprintln!("downloading {uri} ...");
        sources.push((uri.clone(), http_get(&uri, &tmp).map(|()| tmp)));
    }
    let _ = std::fs::remove_dir_all(&work);
    bail!(
        "cannot fetch {} {} ({}):\n  - {}\nOn a machine with Debian's archive in its apt sources (bookworm or later), \
         `apt-get download {spec}` fetches it; or download {FALLBACK_MIRROR}/{} (or the same path on \
         snapshot.debian.org) by hand. Put the file in {} and run this again; its SHA-256 must be {}",
        pkg.name,
        pkg.version,
        pkg.deb_name(),
        tried.join("\n  - "),
        pkg.pool_path,
        debs.display(),
        pkg.deb_sha256
    )
}

/// Moves `got` to `deb` when its hash is the pinned one (else removes it).
fn adopt(got: &Path, deb: &Path, pkg: &Package) -> Result<bool> {
    let sha = sha256_file(got)?;
    if sha != pkg.deb_sha256 {
        eprintln!(
            "{}: SHA-256 {sha}, expected {} (another version?)",
            got.display(),
            pkg.deb_sha256
        );
        let _ = std::fs::remove_file(got);
        return Ok(false);
    }
    std::fs::rename(got, deb)
        .with_context(|| format!("cannot move {} to {}", got.display(), deb.display()))?;
    Ok(true)
}

/// The URI of the pinned `.deb` from apt's configured sources (`apt-get download
/// --print-uris`), when apt knows the version.
fn apt_uri(pkg: &Package) -> Option<String> {
    let empty = std::env::temp_dir();
    let out = Command::new("apt-get")
        .args([
            "download",
            "--print-uris",
            &format!("{}={}", pkg.name, pkg.version),
        ])
        .current_dir(empty)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_print_uris(&String::from_utf8_lossy(&out.stdout))
}

/// The first URI of `apt-get --print-uris` output (`'URI' file size SHA256:…`).
pub fn parse_print_uris(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix('\'')?;
        let (uri, _) = rest.split_once('\'')?;
        (uri.starts_with("http://") || uri.starts_with("https://")).then(|| uri.to_string())
    })
}

/// Downloads `uri` to `dest` with curl, else wget.
fn http_get(uri: &str, dest: &Path) -> Result<()> {
    let curl = Command::new("curl")
        .args(["-fsSL", "--retry", "2", "-o"])
        .arg(dest)
        .arg(uri)
        .status();
    match curl {
        Ok(s) if s.success() => return Ok(()),
        Ok(s) => bail!("curl failed ({s})"),
        Err(_) => {}
    }
    let wget = Command::new("wget")
        .args(["-q", "-O"])
        .arg(dest)
        .arg(uri)
        .status();
    match wget {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("wget failed ({s})"),
        Err(_) => bail!("neither curl nor wget is installed"),
    }
}

/// Streams the package's data tar (`dpkg-deb --fsys-tarfile`, else `ar p … data.tar.xz |
/// xz -dc`) and writes each wanted file into `folder`, atomically, only when its SHA-256 is
/// the pinned one.
fn extract_files(deb: &Path, pkg: &Package, folder: &Path) -> Result<()> {
    let d = deb.display();
    let mut child = match Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => Command::new("sh")
            .arg("-c")
            .arg("ar p \"$1\" data.tar.xz | xz -dc")
            .arg("sh")
            .arg(deb)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("cannot unpack {d}: neither dpkg-deb nor sh with ar and xz is available")
            })?,
    };
    let stdout = child.stdout.take().context("no pipe from the unpacker")?;
    let mut done = vec![false; pkg.files.len()];
    let result = (|| -> Result<()> {
        let mut archive = tar::Archive::new(stdout);
        for entry in archive
            .entries()
            .with_context(|| format!("cannot read the data of {d}"))?
        {
            let mut entry = entry.with_context(|| format!("{d}: damaged data archive"))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = name.trim_start_matches("./");
            let Some(n) = pkg.files.iter().position(|(p, _, _)| *p == name) else {
                continue;
            };
            let (_, sha, out) = pkg.files[n];
            let dest = folder.join(out);
            let mut file = AtomicFile::create(&dest)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = entry
                    .read(&mut buf)
                    .with_context(|| format!("{d}: cannot read {name}"))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                file.write_all(&buf[..k])
                    .with_context(|| format!("cannot write {}", dest.display()))?;
            }
            let got = hex(&h.finalize());
            if got != sha {
                bail!("{d}: {name} has SHA-256 {got}, expected {sha}; nothing was written");
            }
            file.commit()?;
            done[n] = true;
        }
        Ok(())
    })();
    let status = child.wait();
    result?;
    if let Some(n) = done.iter().position(|d| !d) {
        let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        bail!(
            "{d} gave no {} (unpacker: {how}): not the pinned package, or it could not be unpacked",
            pkg.files[n].0
        );
    }
    Ok(())
}
