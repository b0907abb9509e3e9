//! The deployment path a user takes, driven through the real command lines in-process:
//! simulate data → train a tiny model → export weight files and golden bundles → build a
//! flash image → verify the device against libtorch; a corrupted image is refused; the
//! device synthesises a whole test volume (`firmware-sim run`) and agrees with
//! `trainer synth` of the same volume in the target domain's units.

mod common;

use std::path::Path;

use common::{firmware, trainer};
use dicyc_trainer::data::nifti_io::{list_volumes, read_volume};
use dicyc_volume::golden::read_bundle;

fn path(dir: &Path, name: &str) -> String {
    dir.join(name)
        .to_str()
        .expect("temp paths are UTF-8")
        .to_owned()
}

/// ‖a − b‖ / ‖b‖ over every voxel.
fn relative_l2(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}

#[test]
fn shared_fields_train_export_flash_verify_and_refuse_corruption() {
    deploy("shared");
}

#[test]
fn per_channel_fields_train_export_flash_verify_and_refuse_corruption() {
    deploy("per-channel");
}

/// The whole path for a DicycleGAN whose offset layers have fields of `form`.
fn deploy(form: &str) {
    let dir = std::env::temp_dir().join(format!("dicyc-deployment-{form}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (data, run, export) = (path(&dir, "data"), path(&dir, "run"), path(&dir, "export"));

    trainer(&["data", "simulate", "--small", "--phantom", "--out", &data]).unwrap();
    trainer(&[
        "train",
        "--preset",
        "small",
        "--max-steps",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--offset-form",
        form,
        "--data-a",
        &format!("{data}/train/pd"),
        "--data-b",
        &format!("{data}/train/t2"),
        "--run-dir",
        &run,
    ])
    .unwrap();
    trainer(&[
        "export",
        "--run",
        &run,
        "--out",
        &export,
        "--golden-a",
        &format!("{data}/test/pd"),
        "--golden-b",
        &format!("{data}/test/t2"),
        "--golden-slices",
        "2",
    ])
    .unwrap();

    // Without --golden-a/--golden-b, the bundles come from the training volumes the run's
    // config.toml records, for the same weights.
    let export_default = path(&dir, "export-default");
    trainer(&[
        "export",
        "--run",
        &run,
        "--out",
        &export_default,
        "--golden-slices",
        "1",
    ])
    .unwrap();
    for tag in ["ab", "ba"] {
        let (manifest, slices) =
            read_bundle(Path::new(&format!("{export_default}/golden-{tag}"))).unwrap();
        assert_eq!(slices.len(), 1, "g_{tag}");
        let weights = std::fs::read(format!("{export}/g_{tag}.dcw")).unwrap();
        let inspection = dicyc_firmware_sim::inspect::Inspection::of(&weights).unwrap();
        assert_eq!(manifest.weights_crc32c, inspection.crc32c.header, "g_{tag}");
        assert_eq!(inspection.offset_form, form, "g_{tag}");
        assert_eq!(inspection.offset_layers.len(), 4, "g_{tag}");
    }

    for tag in ["ab", "ba"] {
        let image = path(&dir, &format!("g_{tag}.flash"));
        let weights = format!("{export}/g_{tag}.dcw");
        let golden = format!("{export}/golden-{tag}");
        firmware(&[
            "flash",
            &weights,
            "--profile",
            "edge-8m",
            "--height",
            "48",
            "--width",
            "56",
            "-o",
            &image,
        ])
        .unwrap();
        firmware(&[
            "verify",
            "--image",
            &image,
            "--golden",
            &golden,
            "--profile",
            "edge-8m",
        ])
        .unwrap_or_else(|err| panic!("g_{tag}: the device disagrees with libtorch: {err:#}"));
        for fault in [["--flip-bits", "1"], ["--truncate", "5000"]] {
            let err = firmware(&[
                "verify",
                "--image",
                &image,
                "--golden",
                &golden,
                "--profile",
                "edge-8m",
                fault[0],
                fault[1],
            ])
            .expect_err("a corrupted image must be refused");
            assert!(
                format!("{err:#}").contains("refuses to boot"),
                "g_{tag} {fault:?}: {err:#}"
            );
        }
    }

    // A whole test volume on the device vs `trainer synth` (libtorch, the checkpoint).
    let volume = list_volumes(Path::new(&format!("{data}/test/pd"))).unwrap()[0].clone();
    let volume_arg = volume.to_str().unwrap();
    let device_out = path(&dir, "device/out.nii.gz");
    firmware(&[
        "run",
        "--image",
        &path(&dir, "g_ab.flash"),
        "--profile",
        "edge-8m",
        "--input",
        volume_arg,
        "--output",
        &device_out,
    ])
    .unwrap();
    let synth_dir = path(&dir, "synth");
    trainer(&[
        "synth",
        "--run",
        &run,
        "--input",
        volume_arg,
        "--out",
        &synth_dir,
        "--direction",
        "a2b",
        "--pass",
        "undeformed",
        "--device",
        "cpu",
    ])
    .unwrap();
    let on_device = read_volume(Path::new(&device_out)).unwrap();
    let name = volume.file_name().unwrap();
    let synth = read_volume(&Path::new(&synth_dir).join(name)).unwrap();
    assert_eq!(on_device.dim(), synth.dim());
    assert_eq!(on_device.header.srow_x, synth.header.srow_x);
    let rel_l2 = relative_l2(&on_device.data, &synth.data);
    eprintln!("device vs trainer synth over {name:?}: rel L2 {rel_l2:.3e}");
    assert!(
        rel_l2 <= 2e-2,
        "the device's volume differs from trainer synth's: rel L2 {rel_l2:.3e}"
    );
    // `trainer synth --weights`: the exported file through dicyc-core on the host, with the
    // device's loop and normalisation: the device's volume, up to rounding.
    let core_dir = path(&dir, "synth-core");
    trainer(&[
        "synth",
        "--weights",
        &format!("{export}/g_ab.dcw"),
        "--input",
        volume_arg,
        "--out",
        &core_dir,
        "--pass",
        "undeformed",
    ])
    .unwrap();
    let on_host = read_volume(&Path::new(&core_dir).join(name)).unwrap();
    let rel_l2 = relative_l2(&on_host.data, &on_device.data);
    assert!(
        rel_l2 <= 1e-5,
        "trainer synth --weights differs from the device: rel L2 {rel_l2:.3e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
