//! End to end on the phantom: `trainer data simulate --phantom --small`, `trainer data
//! deform`, `trainer eval` (table, JSON, figure); the deformation is shared by the domain.

use std::path::PathBuf;

use dicyc_trainer::data::deform::SmoothField;
use dicyc_trainer::data::nifti_io::read_volume;
use dicyc_trainer::data::resample::Outside;

mod common;
use common::{arg as s, trainer as run};

#[test]
fn simulate_deform_eval_end_to_end() {
    let root: PathBuf = dicyc_volume::testing::scratch_dir("eval", "end-to-end");
    let (sim, def, out) = (root.join("sim"), root.join("def"), root.join("eval"));
    run(&["data", "simulate", "--phantom", "--small", "--out", s(&sim)]).unwrap();
    for split in ["train", "test"] {
        for dom in ["pd", "t2", "mask"] {
            assert!(sim.join(split).join(dom).is_dir(), "{split}/{dom}");
        }
    }
    assert!(sim.join("test/pd/subject-004.nii.gz").exists());
    assert!(sim.join("benchmark.json").exists());
    // A second run refuses to overwrite.
    assert!(run(&["data", "simulate", "--phantom", "--small", "--out", s(&sim)]).is_err());

    run(&[
        "data",
        "deform",
        "--data",
        s(&sim),
        "--out",
        s(&def),
        "--seed",
        "5",
        "--max-displacement-mm",
        "6",
    ])
    .unwrap();
    assert!(
        run(&["data", "deform", "--data", s(&sim), "--out", s(&sim)]).is_err(),
        "never writes into its input"
    );
    // One field for the whole domain: re-warping any input T2 with the recorded field
    // reproduces the output.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(def.join("deformation.json")).unwrap())
            .unwrap();
    let field: SmoothField = serde_json::from_value(manifest["field"].clone()).unwrap();
    for name in ["train/t2/subject-000.nii.gz", "test/t2/subject-005.nii.gz"] {
        let src = read_volume(&sim.join(name)).unwrap();
        let got = read_volume(&def.join(name)).unwrap();
        let d = src.dim();
        let f = SmoothField {
            dims: [d.0, d.1, d.2],
            comp: field.comp.clone(),
        };
        assert_eq!(
            got.data,
            f.warp(&src.data.view(), Outside::Value(0.0)),
            "{name}"
        );
        assert_ne!(got.data, src.data);
        assert_eq!(got.header.srow_x, src.header.srow_x, "geometry kept");
    }
    // Ground truths: gt-t2 = undeformed T2 (for PD→T2), gt-pd = warped PD (for T2→PD).
    assert_eq!(
        read_volume(&def.join("test/gt-t2/subject-004.nii.gz"))
            .unwrap()
            .data,
        read_volume(&sim.join("test/t2/subject-004.nii.gz"))
            .unwrap()
            .data
    );
    assert_eq!(
        read_volume(&def.join("test/pd/subject-004.nii.gz"))
            .unwrap()
            .data,
        read_volume(&sim.join("test/pd/subject-004.nii.gz"))
            .unwrap()
            .data
    );
    assert!(def.join("test/gt-pd/subject-004.nii.gz").exists());
    assert!(def.join("test/mask-t2/subject-004.nii.gz").exists());

    // Eval: the deformed T2 as a "prediction" of the PD-aligned T2 is imperfect; the truth
    // itself is perfect (PSNR ∞).
    run(&[
        "eval",
        "--out",
        s(&out),
        "--title",
        "phantom",
        "--name",
        "PD→T2 (deformed copy)",
        "--pred",
        s(&def.join("test/t2")),
        "--truth",
        s(&def.join("test/gt-t2")),
        "--source",
        s(&def.join("test/pd")),
        "--mask",
        s(&def.join("test/mask")),
        "--name",
        "identity",
        "--pred",
        s(&def.join("test/gt-t2")),
        "--truth",
        s(&def.join("test/gt-t2")),
        "--source",
        s(&def.join("test/pd")),
        "--mask",
        s(&def.join("test/mask")),
    ])
    .unwrap();
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| PD→T2 (deformed copy) | 2 |") && md.contains("∞"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let ssim = json[0]["ssim_global"]["mean"].as_f64().unwrap();
    assert!(ssim < 0.99 && ssim > 0.0, "{ssim}");
    assert_eq!(json[1]["psnr"]["mean"], "inf");
    let png = std::fs::read(out.join("examples.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A missing prediction is an error naming the folder.
    let e = run(&[
        "eval",
        "--out",
        s(&out),
        "--name",
        "x",
        "--pred",
        s(&def.join("train/t2")),
        "--truth",
        s(&def.join("test/gt-t2")),
    ])
    .unwrap_err();
    assert!(format!("{e:#}").contains("no prediction"), "{e:#}");
    std::fs::remove_dir_all(&root).unwrap();
}
