//! `firmware-sim run` on hostile NIfTI inputs (issue 11): a header whose bitpix contradicts
//! its datatype, a small file declaring a 4 GiB volume, or a volume over the
//! `DICYC_MAX_VOLUME_BYTES` limit is a clean error naming the input (no panic, no abort, no
//! output); a legal file whose data start at vox_offset 1024 gives the same output as the
//! same data at 352.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dicyc_core::format::{file_size, write_weight_file, Normalization};
use dicyc_core::{ModelConfig, OffsetLayers};
use dicyc_firmware_sim::flash::build_image;
use dicyc_firmware_sim::profile::DeviceProfile;
use dicyc_volume::nifti_io::read_volume;
use dicyc_volume::testing::{f32_bytes, gzip, RawNifti};

const NORM: Normalization = Normalization {
    input_offset: 0.0,
    input_scale: 1.0 / 3.0,
    output_offset: 120.0,
    output_scale: 40.0,
};

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("hostile-nifti", name)
}

fn image(d: &Path) -> PathBuf {
    let config = ModelConfig {
        in_channels: 1,
        out_channels: 1,
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetLayers::ALL,
    };
    let mut bytes = vec![0u8; file_size(&config).unwrap()];
    let mut state = 11u32;
    write_weight_file(&mut bytes, &config, &NORM, |_, sink| {
        while sink.remaining() > 0 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            sink.push(((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.4)?;
        }
        Ok(())
    })
    .unwrap();
    let profile = DeviceProfile {
        name: "test".into(),
        flash_bytes: 1 << 20,
        ram_bytes: 1 << 20,
    };
    let p = d.join("image.flash");
    std::fs::write(&p, build_image(&bytes, &profile, 24, 24).unwrap()).unwrap();
    p
}

fn run(image: &Path, input: &Path, output: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_firmware-sim"));
    c.arg("run")
        .arg("--image")
        .arg(image)
        .args(["--flash", "1M", "--ram", "1M", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .env_remove("DICYC_MAX_VOLUME_BYTES");
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
