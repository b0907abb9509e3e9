//! `firmware-sim run` on hostile NIfTI inputs (issue 11): a header whose bitpix contradicts
//! its datatype, a small file declaring a 4 GiB volume, or a volume over the
//! `DICYC_MAX_VOLUME_BYTES` limit is a clean error naming the input (no panic, no abort, no
//! output); a legal file whose data start at vox_offset 1024 gives the same output as the
//! same data at 352.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{lcg_weight_file, roomy_image, run_command, NORM};
use dicyc_volume::nifti_io::read_volume;
use dicyc_volume::testing::{f32_bytes, gzip, RawNifti};

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("hostile-nifti", name)
}

/// Writes this suite's image: the shared tiny generator (LCG seed 11, target units `NORM`),
/// planned for 24 × 24 slices.
fn image(d: &Path) -> PathBuf {
    let p = d.join("image.flash");
    std::fs::write(&p, roomy_image(&lcg_weight_file(11, 1.0, &NORM), 24)).unwrap();
    p
}

/// `firmware-sim run` with `DICYC_MAX_VOLUME_BYTES` taken out of the environment it inherits
/// and `env` added.
fn run(image: &Path, input: &Path, output: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = run_command(image, input, output, "1M");
    c.env_remove("DICYC_MAX_VOLUME_BYTES");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Fails unless `out` is a clean refusal (exit status 1, not a panic's 101 or an abort's
/// signal) whose message names `input` and contains `words`.
fn assert_refused(out: &Output, input: &Path, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(&input.display().to_string()), "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "no `{w}` in: {stderr}");
    }
}

const SHAPE: [i16; 3] = [12, 10, 2];

fn values() -> Vec<f32> {
    (0..240).map(|n| (n % 37) as f32 * 3.0 + 5.0).collect()
}

#[test]
fn hostile_headers_are_refused_cleanly_and_vox_offset_is_honoured() {
    let d = tmpdir("run");
    let image = image(&d);
    let data = f32_bytes(&values(), false);

    // bitpix 8 with a float32 datatype panicked inside the nifti crate.
    let mut h = RawNifti::float32(SHAPE);
    h.bitpix = 8;
    let input = d.join("bitpix.nii.gz");
    std::fs::write(&input, gzip(&h.file_bytes(&data))).unwrap();
    let output = d.join("out-bitpix.nii");
    assert_refused(&run(&image, &input, &output, &[]), &input, &["bitpix = 8"]);
    assert!(!output.exists());

    // A 1 MB file declaring 1024³ float32 voxels aborted on a 4 GiB allocation.
    let h = RawNifti::float32([1024, 1024, 1024]);
    let input = d.join("bomb.nii.gz");
    std::fs::write(&input, gzip(&h.file_bytes(&vec![0u8; 1 << 20]))).unwrap();
    let output = d.join("out-bomb.nii");
    assert_refused(
        &run(&image, &input, &output, &[]),
        &input,
        &["DICYC_MAX_VOLUME_BYTES", "limit of 2.0 GiB"],
    );
    assert!(!output.exists());

    // Data at vox_offset 1024 give the same output as the same data at 352.
    let h = RawNifti::float32(SHAPE);
    let at352 = d.join("at352.nii.gz");
    std::fs::write(&at352, gzip(&h.file_bytes(&data))).unwrap();
    let mut h1024 = h.clone();
    h1024.vox_offset = 1024.0;
    let at1024 = d.join("at1024.nii");
    std::fs::write(
        &at1024,
        h1024.file_bytes_with_comment(b"extension before the data", &data),
    )
    .unwrap();
    let (o352, o1024) = (d.join("o352.nii"), d.join("o1024.nii"));
    for (input, output) in [(&at352, &o352), (&at1024, &o1024)] {
        let out = run(&image, input, output, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a, b) = (read_volume(&o352).unwrap(), read_volume(&o1024).unwrap());
    assert_eq!(a.data, b.data);
    assert_eq!(a.dim(), (12, 10, 2));

    // The limit comes from the environment: 240 voxels (960 bytes) over a 512-byte limit.
    let output = d.join("out-limit.nii");
    assert_refused(
        &run(
            &image,
            &at352,
            &output,
            &[("DICYC_MAX_VOLUME_BYTES", "512")],
        ),
        &at352,
        &["limit of 512 B", "DICYC_MAX_VOLUME_BYTES"],
    );
    assert!(!output.exists());
    std::fs::remove_dir_all(&d).unwrap();
}
