//! `trainer export` through the real binary on a tiny run: one report entry per tensor of
//! both generators, the per-tensor table, a warning when no golden bundle can be written,
//! and a value outside fp16's range that fails the export before any weight file is
//! written (never a silent clamp).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dicyc_trainer::export::{core_config, export_generator, quantize_generator};
use dicyc_trainer::model::{Generator, GeneratorConfig, OffsetForm, OffsetSite};
use dicyc_trainer::train::TrainConfig;
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn tiny_config() -> TrainConfig {
    let mut c = TrainConfig::small();
    c.generator = GeneratorConfig {
        ngf: 2,
        n_blocks: 1,
        offset_layers: OffsetSite::ALL.to_vec(),
        ..c.generator
    };
    c.device = dicyc_trainer::device::DeviceChoice::Cpu;
    c
}

fn scratch_dir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("export", name)
}

/// A freshly initialised generator of the tiny run in one direction.
fn generator(config: &GeneratorConfig) -> (VarStore, Generator) {
    let vs = VarStore::new(Device::Cpu);
    let g = Generator::new(&vs.root(), config, &tiny_config().init).unwrap();
    (vs, g)
}

/// A run directory as training leaves it (config.toml, a checkpoint, `latest`), with
/// `edit(direction, vs)` applied to the generators before they are saved.
fn tiny_run(dir: &Path, edit: impl Fn(&str, &VarStore)) -> PathBuf {
    tch::manual_seed(5);
    let config = tiny_config();
    let run = dir.join("run");
    let step = run.join("checkpoints").join("step-000000001");
    std::fs::create_dir_all(&step).unwrap();
    std::fs::write(run.join("config.toml"), config.to_toml().unwrap()).unwrap();
    for (tag, gcfg) in [
        ("ab", config.effective_generator()),
        ("ba", config.effective_generator_ba()),
    ] {
        let (vs, _) = generator(&gcfg);
        edit(tag, &vs);
        vs.save(step.join(format!("g_{tag}.safetensors"))).unwrap();
    }
    std::fs::write(run.join("checkpoints").join("latest"), "step-000000001\n").unwrap();
    run
}

/// Sets the first value of tensor `name` to `value`.
fn set_first(vs: &VarStore, name: &str, value: f64) {
    let variables = vs.variables();
    let tensor = &variables[name];
    tch::no_grad(|| {
        let _ = tensor.view([-1]).get(0).fill_(value);
    });
}

fn export(run: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export", "--device", "cpu", "--run"])
        .arg(run)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("export.json")).unwrap()).unwrap()
}

#[test]
fn export_json_has_one_entry_per_tensor_and_warns_without_a_golden_bundle() {
    let dir = scratch_dir("ok");
    let run = tiny_run(&dir, |_, _| {});
    let out = dir.join("export");
    let result = export(&run, &out);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr),
    );
    assert!(result.status.success(), "{stdout}\n{stderr}");

    let json = report(&out);
    assert_eq!(json["status"], "ok");
    assert_eq!(json["unrepresentable"].as_array().unwrap().len(), 0);
    let directions = json["directions"].as_array().unwrap();
    assert_eq!(directions.len(), 2);
    let config = tiny_config();
    for (entry, gcfg) in directions.iter().zip([
        config.effective_generator(),
        config.effective_generator_ba(),
    ]) {
        let core = core_config(&gcfg).unwrap();
        let names: Vec<String> = core.tensors().map(|s| s.id.to_string()).collect();
        let quantization = entry["quantization"].as_array().unwrap();
        let reported: Vec<&str> = quantization
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        assert_eq!(reported, names, "{}", entry["direction"]);
        for q in quantization {
            assert_eq!(q["out_of_range"], 0);
            assert_eq!(q["non_finite"], 0);
            assert!(q["rel_l2_error"].as_f64().unwrap() < 1e-3, "{q}");
        }
        let path = PathBuf::from(entry["weight_file"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(entry["bytes"].as_u64().unwrap(), bytes.len() as u64);
        assert!(dicyc_core::WeightFile::new_checked(&bytes).is_ok());
        // Synthetic training data: no volumes recorded, so no bundle, said out loud.
        assert!(entry["golden_bundle"].is_null());
        assert_eq!(entry["golden_slices"], 0);
    }
    assert!(!out.join("golden-ab").exists());
    assert!(
        stderr.contains("warning: export g_ab: no golden bundle written")
            && stderr.contains("--golden-a")
            && stderr.contains("--golden-b"),
        "{stderr}"
    );
    // The per-tensor table names every tensor with its shape.
    assert!(
        stdout.contains("max|w|") && stdout.contains("rel L2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("blocks.0.conv1.weight") && stdout.contains("8x8x3x3"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_value_outside_fp16_range_fails_the_export_and_writes_no_weight_file() {
    let dir = scratch_dir("range");
    // Only the second direction is bad: the first must not be written either.
    let run = tiny_run(&dir, |tag, vs| {
        if tag == "ba" {
            set_first(vs, "blocks.0.conv1.weight", 7e4);
        }
    });
    let out = dir.join("export");
    let result = export(&run, &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success(),
        "an out-of-range value was exported"
    );
    assert!(
        stderr.contains("g_ba blocks.0.conv1.weight")
            && stderr.contains("outside fp16's range")
            && stderr.contains("no weight file was written"),
        "{stderr}"
    );
    assert!(!out.join("g_ab.dcw").exists() && !out.join("g_ba.dcw").exists());
    assert!(!out.join("golden-ab").exists());

    let json = report(&out);
    assert_eq!(json["status"], "failed");
    let bad = json["unrepresentable"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["direction"], "b2a");
    assert_eq!(bad[0]["tensor"], "blocks.0.conv1.weight");
    assert_eq!(bad[0]["out_of_range"], 1);
    assert_eq!(bad[0]["max_abs_value"].as_f64().unwrap(), 7e4);
    // Both directions are still reported tensor by tensor, without files.
    for entry in json["directions"].as_array().unwrap() {
        assert!(entry.get("weight_file").is_none(), "{entry}");
        assert!(!entry["quantization"].as_array().unwrap().is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_range_check_matches_the_core_writer_and_counts_non_finite_values() {
    let gcfg = tiny_config().effective_generator();
    let core = core_config(&gcfg).unwrap();
    let (vs, _) = generator(&gcfg);
    // 65519 still rounds to fp16's largest finite value (65504); 65520 overflows.
    set_first(&vs, "stem.weight", 65519.0);
    set_first(&vs, "blocks.0.conv0.weight", -65520.0);
    set_first(&vs, "head.bias", f64::NAN);
    let quantized = quantize_generator(&vs.variables(), "", &core).unwrap();
    let bad: Vec<(&str, usize, usize)> = quantized
        .unrepresentable()
        .map(|q| (q.name.as_str(), q.out_of_range, q.non_finite))
        .collect();
    assert_eq!(bad, [("blocks.0.conv0.weight", 1, 0), ("head.bias", 0, 1)]);
    let stem = &quantized.quantization[quantized
        .quantization
        .iter()
        .position(|q| q.name == "stem.weight")
        .unwrap()];
    assert_eq!(stem.max_abs_value, 65519.0);
    assert_eq!(stem.max_abs_error, 15.0);
    let err = quantized
        .write(&dicyc_core::Normalization::IDENTITY)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 tensor(s)")
            && err.contains("blocks.0.conv0.weight")
            && err.contains("head.bias"),
        "{err}"
    );
}

#[test]
fn unreadable_golden_inputs_of_one_direction_leave_no_weight_file_behind() {
    let dir = scratch_dir("golden");
    let run = tiny_run(&dir, |_, _| {});
    let out = dir.join("export");
    // g_ab's golden inputs are fine (a phantom folder); g_ba's folder holds no volumes.
    let good = dir.join("pd");
    std::fs::create_dir_all(&good).unwrap();
    dicyc_volume::testing::write_phantom_folder(&good, 1, 100.0).unwrap();
    let empty = dir.join("t2-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export", "--device", "cpu", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .arg("--golden-a")
        .arg(&good)
        .arg("--golden-b")
        .arg(&empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("g_ba") && stderr.contains("--golden-b"),
        "{stderr}"
    );
    // Checked before anything was written: neither direction, no bundle, no report.
    for file in ["g_ab.dcw", "g_ba.dcw", "golden-ab", "export.json"] {
        assert!(!out.join(file).exists(), "{file} was written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file of `dir` and below with its bytes, sorted: a folder's whole state.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// A full disk during `trainer export` (writes limited per file with `ulimit -f`, which fails
/// them with EFBIG as a full disk fails them with ENOSPC) leaves the output folder exactly as
/// it was: an earlier complete export stays whole, nothing of the new one and no staging
/// folder appears. With room enough, the new export replaces the old one whole.
#[test]
fn a_full_disk_during_export_leaves_the_earlier_export_whole() {
    let dir = scratch_dir("full-disk");
    let run = tiny_run(&dir, |_, _| {});
    let volumes = dir.join("pd");
    std::fs::create_dir_all(&volumes).unwrap();
    dicyc_volume::testing::write_phantom_folder(&volumes, 1, 100.0).unwrap();
    let out = dir.join("export");
    let export_limited = |blocks: Option<u64>, slices: &str| {
        let limit = blocks.map_or("unlimited".to_string(), |b| b.to_string());
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ && ulimit -f {limit} && exec \"$0\" \"$@\""
            ))
            .arg(env!("CARGO_BIN_EXE_trainer"))
            .args(["export", "--device", "cpu", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&out)
            .arg("--golden-a")
            .arg(&volumes)
            .arg("--golden-b")
            .arg(&volumes)
            .args(["--golden-slices", slices])
            .output()
            .unwrap()
    };
    // A first, complete export (one golden slice per direction).
    let first = export_limited(None, "1");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = snapshot(&out);
    assert!(before
        .iter()
        .any(|(p, _)| p.ends_with("golden-ab/golden.json")));
    // A second one with two slices, onto a disk that fills up at various points.
    let mut failed = 0;
    for blocks in [1u64, 4, 8, 16, 24, 32] {
        let second = export_limited(Some(blocks), "2");
        if second.status.success() {
            continue;
        }
        failed += 1;
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(stderr.contains("free space"), "limit {blocks}: {stderr}");
        let now = snapshot(&out);
        assert!(
            now == before,
            "limit {blocks}: the folder changed: {:?}",
            now.iter().map(|(p, b)| (p, b.len())).collect::<Vec<_>>()
        );
        let hidden = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(
            hidden, 0,
            "limit {blocks}: a staging folder or temporary was left"
        );
    }
    assert!(failed > 0, "no limit made the export fail");
    // With room, the two-slice export replaces the first whole.
    let second = export_limited(None, "2");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(report(&out)["directions"][0]["golden_slices"], 2);
    assert!(out.join("golden-ba").join("slice-001.input.f32").exists());

    // An export cut short by Ctrl-C (no cleanup runs) leaves its staging folder; the next
    // export into the folder removes it. `--golden-slices 0` asks for no bundle: the older
    // bundles go with the set they belonged to.
    let mut child = Command::new("true").spawn().unwrap();
    let ended = child.id();
    child.wait().unwrap();
    let interrupted = out.join(format!(".staged-{ended}-0"));
    std::fs::create_dir_all(interrupted.join("golden-ab")).unwrap();
    std::fs::write(interrupted.join("g_ab.dcw"), b"cut short").unwrap();
    let none = export_limited(None, "0");
    let stdout = String::from_utf8_lossy(&none.stdout);
    assert!(
        none.status.success(),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    assert!(
        stdout.contains("no golden bundle (--golden-slices 0)"),
        "{stdout}"
    );
    assert!(
        !interrupted.exists(),
        "the interrupted export's staging folder is left"
    );
    assert!(!out.join("golden-ab").exists() && !out.join("golden-ba").exists());
    assert_eq!(report(&out)["directions"][0]["golden_slices"], 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The deployment contract, for both offset forms: a generator exported into the core's
/// format runs on the core as libtorch runs it, in both passes, within the tolerance the
/// device verification holds it to (docs/DESIGN.md §3.3).
#[test]
fn an_exported_generator_runs_on_the_core_like_libtorch_in_both_offset_forms() {
    use dicyc_core::{required_scratch_bytes, synthesize, Normalization, Pass, WeightFile};
    use dicyc_volume::golden::{MAX_ABS_TOLERANCE, REL_L2_TOLERANCE};
    let (h, w) = (24, 32);
    for form in [OffsetForm::PerChannel, OffsetForm::Shared] {
        tch::manual_seed(11);
        let config = GeneratorConfig {
            ngf: 4,
            n_blocks: 2,
            offset_layers: OffsetSite::ALL.to_vec(),
            offset_form: form,
            ..GeneratorConfig::default()
        };
        let (vs, g) = generator(&config);
        // Offsets of about a pixel (the initial ones are tiny), so the deformed pass moves:
        // weights of sd 1/√fan-in on inputs of about unit size.
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.starts_with("offset.") {
                    let fan_in = t.size()[1..].iter().product::<i64>().max(1);
                    t.copy_(&(Tensor::randn_like(&t) / (fan_in as f64).sqrt()));
                }
            }
        });
        let core = core_config(&config).unwrap();
        assert_eq!(core.offset_layers.form(), form);
        let exported =
            export_generator(&vs.variables(), "", &core, &Normalization::IDENTITY).unwrap();
        let file = WeightFile::new_checked(&exported.bytes).unwrap();
        assert_eq!(file.config(), core);
        let x = Tensor::rand([1, 1, h, w], (tch::Kind::Float, Device::Cpu)) * 1.8 - 0.9;
        let input = Vec::<f32>::try_from(x.view([-1])).unwrap();
        let mut outputs = Vec::new();
        for pass in [Pass::Deformed, Pass::Undeformed] {
            let torch =
                Vec::<f32>::try_from(tch::no_grad(|| g.forward(&x, pass)).view([-1])).unwrap();
            let mut scratch =
                vec![0u8; required_scratch_bytes(&core, h as usize, w as usize).unwrap()];
            let mut out = vec![0f32; torch.len()];
            synthesize(
                &file,
                &input,
                h as usize,
                w as usize,
                pass,
                &mut scratch,
                &mut out,
            )
            .unwrap();
            let (mut diff, mut norm, mut max_abs) = (0f64, 0f64, 0f64);
            for (&a, &b) in out.iter().zip(&torch) {
                let d = f64::from(a) - f64::from(b);
                diff += d * d;
                norm += f64::from(b) * f64::from(b);
                max_abs = max_abs.max(d.abs());
            }
            let rel_l2 = (diff / norm).sqrt();
            assert!(
                rel_l2 <= REL_L2_TOLERANCE && max_abs <= MAX_ABS_TOLERANCE,
                "{form:?} {pass:?}: rel L2 {rel_l2:.2e}, max abs {max_abs:.2e}"
            );
            outputs.push(out);
        }
        // The offsets really act: the passes differ by far more than the core's error.
        let moved = outputs[0]
            .iter()
            .zip(&outputs[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            f64::from(moved) > 10.0 * MAX_ABS_TOLERANCE,
            "{form:?}: passes differ by {moved}"
        );
    }
}
