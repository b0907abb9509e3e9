//! `firmware-sim run`: a NIfTI volume through the device, slice by slice; the output keeps
//! the source's grid and geometry, is in the weight file's target units, matches the core
//! run slice by slice, and a corrupted image or too little RAM writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{lcg_weight_file, roomy, roomy_image, run_command, NORM};
use dicyc_core::Pass;
use dicyc_firmware_sim::device::Device;
use dicyc_firmware_sim::flash::{ram_needed, FlashImage};
use dicyc_volume::nifti_io::{read_volume, write};
use dicyc_volume::slicewise::DeviceMap;
use dicyc_volume::testing::listing;
use dicyc_volume::volume::{affine_of, Volume};
use ndarray::Array3;

/// Not multiples of 4 in-plane: exercises the padding and the crop.
const DIM: (usize, usize, usize) = (18, 22, 3);

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("run", name)
}

/// This suite's model: the shared tiny generator, LCG seed 7, in target units `NORM`.
fn weight_file() -> Vec<u8> {
    lcg_weight_file(7, 1.0, &NORM)
}

/// A phantom with an oblique, offset affine.
fn volume() -> Volume {
    let data = Array3::from_shape_fn(DIM, |(i, j, k)| {
        let r = ((i as f32 - 9.0).powi(2) + (j as f32 - 11.0).powi(2)).sqrt();
        if r < 7.0 {
            300.0 + 20.0 * k as f32 + 5.0 * i as f32 - 3.0 * j as f32
        } else {
            10.0
        }
    });
    let mut v = Volume::new(data, [0.9, 1.2, 3.0], [-40.0, 12.5, -7.0]);
    v.header.srow_x = [-0.9, 0.02, 0.0, 40.0];
    v.header.srow_y = [0.0, 1.2, 0.05, -12.5];
    v.header.srow_z = [0.01, 0.0, 3.0, -7.0];
    v
}

/// Writes the image and the volume; returns (image, volume) paths.
fn setup(d: &Path) -> (PathBuf, PathBuf) {
    let image = roomy_image(&weight_file(), 24);
    std::fs::write(d.join("image.flash"), image).unwrap();
    write(&d.join("in.nii.gz"), &volume()).unwrap();
    (d.join("image.flash"), d.join("in.nii.gz"))
}

fn run(image: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    run_command(image, input, output, "1M")
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn run_writes_the_volume_in_target_units_with_the_source_geometry() {
    let d = tmpdir("ok");
    let (image, input) = setup(&d);
    let output = d.join("out").join("synth.nii.gz");
    let out = run(&image, &input, &output, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 slices padded to 20x24"), "{stdout}");
    assert!(stdout.contains("ms per slice"), "{stdout}");
    assert!(stdout.contains("peak scratch"), "{stdout}");

    let source = volume();
    let result = read_volume(&output).unwrap();
    assert_eq!(result.dim(), DIM);
    assert_eq!(result.spacing(), source.spacing());
    assert_eq!(affine_of(&result.header), affine_of(&source.header));
    assert!(result.data.iter().all(|v| v.is_finite()));
    // Generator outputs are in tanh range: target units within offset ± scale.
    let (lo, hi) = (
        NORM.output_offset - NORM.output_scale,
        NORM.output_offset + NORM.output_scale,
    );
    assert!(result
        .data
        .iter()
        .all(|&v| (lo - 1e-3..=hi + 1e-3).contains(&v)));

    // The same as running the core on the slice normalised and padded by hand.
    let bytes = std::fs::read(&image).unwrap();
    let mut device = Device::boot(&bytes, &roomy()).unwrap();
    let map = DeviceMap::of(&source.data, NORM);
    let min = source.data.iter().copied().fold(f32::INFINITY, f32::min);
    let (h, w) = (20, 24);
    for k in 0..DIM.2 {
        let input: Vec<f32> = (0..h * w)
            .map(|n| {
                let (i, j) = (n / w, n % w);
                map.forward(if i < DIM.0 && j < DIM.1 {
                    source.data[[i, j, k]]
                } else {
                    min
                })
            })
            .collect();
        let mut y = vec![0f32; h * w];
        device
            .run_slice(&input, h, w, Pass::Undeformed, &mut y)
            .unwrap();
        for i in 0..DIM.0 {
            for j in 0..DIM.1 {
                let expected = y[i * w + j] * NORM.output_scale + NORM.output_offset;
                let got = result.data[[i, j, k]];
                assert!(
                    (got - expected).abs() < 1e-3,
                    "({i},{j},{k}): {got} vs {expected}"
                );
            }
        }
    }
    // Deformed pass runs too.
    let out = run(
        &image,
        &input,
        &d.join("deformed.nii"),
        &["--pass", "deformed"],
    );
    assert!(out.status.success());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_corrupted_image_or_too_little_ram_writes_nothing() {
    let d = tmpdir("fault");
    let (image, input) = setup(&d);
    let output = d.join("synth.nii.gz");
    let out = run(
        &image,
        &input,
        &output,
        &["--flip-bits", "1", "--seed", "3"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("fault:"), "{stderr}");
    assert!(stderr.contains("refuses to boot"), "{stderr}");
    assert!(!output.exists());
    let out = run(&image, &input, &output, &["--truncate", "100"]);
    assert!(!out.status.success());
    assert!(!output.exists());

    // RAM for an 8x8 slice only: the 20x24 slice is refused with the shortfall.
    let bytes = std::fs::read(&image).unwrap();
    let small = ram_needed(&FlashImage::new_checked(&bytes).unwrap().weights, 8, 8).unwrap();
    let out = run_command(&image, &input, &output, &small.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("20x24 slice needs"), "{stderr}");
    assert!(!output.exists());
    // No temporary files left behind either.
    let names = listing(&d);
    assert!(
        names.iter().all(|n| !n.starts_with(".dicyc-tmp")),
        "{names:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
