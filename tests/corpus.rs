//! The corpus of bad and odd NIfTI files (`dicyc_volume::testing::corpus`, issue 11) through
//! every consumer of volumes, driven through the real command lines in-process:
//! `firmware-sim run`, `trainer synth --weights`, `trainer synth --run`, `trainer eval` with
//! the file as the prediction and as the ground truth, and `trainer train` with it as domain
//! A's data.
//!
//! A file the reader must refuse is, for every consumer: no panic, an error, a message that
//! names the file (and says what was wrong), and nothing left in the consumer's output folder.
//! A file the reader must accept gives every consumer the result of a clean file holding the
//! same voxels: the same output volume (finite), a zero error in `eval`, and in `train` the
//! domain statistics of those voxels. Two accepted files are refused by some consumers, by
//! those consumers' own rules, again with an error naming the file: slices of 4 × 4 voxels
//! (the generator needs 8 × 8; `eval` and `train`, which crops and pads, take them) and a
//! constant volume in `train` (no slice has foreground).

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{firmware, trainer};
use dicyc_trainer::data::nifti_io::read_volume;
use dicyc_volume::preprocess::{Normalization, PreprocessOptions};
use dicyc_volume::testing::corpus::{sample, write_corpus, CorpusFile, Expect, SHAPE};
use dicyc_volume::testing::{scratch_dir, write_phantom_folder};
use dicyc_volume::Volume;
use ndarray::Array3;

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// The consumers of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Consumer {
    FirmwareRun,
    SynthWeights,
    SynthRun,
    EvalPred,
    EvalTruth,
    Train,
}

impl Consumer {
    const ALL: [Consumer; 6] = [
        Consumer::FirmwareRun,
        Consumer::SynthWeights,
        Consumer::SynthRun,
        Consumer::EvalPred,
        Consumer::EvalTruth,
        Consumer::Train,
    ];

    fn name(self) -> &'static str {
        match self {
            Consumer::FirmwareRun => "firmware-sim run",
            Consumer::SynthWeights => "synth --weights",
            Consumer::SynthRun => "synth --run",
            Consumer::EvalPred => "eval (prediction)",
            Consumer::EvalTruth => "eval (truth)",
            Consumer::Train => "train (data)",
        }
    }

    /// Whether this consumer refuses a volume the reader accepts, by its own rule; the
    /// words its error must contain.
    fn own_refusal(self, class: &str) -> Option<&'static [&'static str]> {
        match (class, self) {
            // One check and one wording for every whole-volume command, with what to do.
            ("slice-4x4", Consumer::FirmwareRun | Consumer::SynthWeights | Consumer::SynthRun) => {
                Some(&["4×4", "at least 8×8", "pad or resample"])
            }
            ("constant", Consumer::Train) => Some(&["foreground"]),
            _ => None,
        }
    }
}

/// What the corpus test runs every file against: a tiny trained run, its exported weight
/// file, that file flashed onto a device, and domain B's training volumes.
struct Fixture {
    run: PathBuf,
    weights: PathBuf,
    image: PathBuf,
    data_b: PathBuf,
}

impl Fixture {
    fn build(root: &Path) -> Fixture {
        let (a, b) = (root.join("train-a"), root.join("train-b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        write_phantom_folder(&a, 2, 100.0).unwrap();
        write_phantom_folder(&b, 2, 7.0).unwrap();
        let run = root.join("run");
        trainer(&train_args(&a, &b, &run)).unwrap();
        let export = root.join("export");
        trainer(&[
            "export",
            "--run",
            s(&run),
            "--out",
            s(&export),
            "--golden-slices",
            "1",
        ])
        .unwrap();
        let weights = export.join("g_ab.dcw");
        let image = root.join("g_ab.flash");
        firmware(&[
            "flash",
            s(&weights),
            "--profile",
            "edge-8m",
            "--height",
            "16",
            "--width",
            "16",
            "-o",
            s(&image),
        ])
        .unwrap();
        Fixture {
            run,
            weights,
            image,
            data_b: b,
        }
    }

    /// Runs `consumer` on `input` with everything it writes under `work` (an empty folder);
    /// for `eval`, `other` is the other side of the comparison (same file stem). Returns the
    /// result and, on success, what it produced: the output volume (`synth`, `firmware-sim
    /// run`), results.json (`eval`) or data-stats.json (`train`).
    fn consume(
        &self,
        consumer: Consumer,
        input: &Path,
        other: &Path,
        work: &Path,
    ) -> (anyhow::Result<()>, PathBuf) {
        let out = work.join("out");
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let result = match consumer {
            Consumer::FirmwareRun => {
                let output = out.join("volume.nii.gz");
                let r = firmware(&[
                    "run",
                    "--image",
                    s(&self.image),
                    "--profile",
                    "edge-8m",
                    "--input",
                    s(input),
                    "--output",
                    s(&output),
                ]);
                return (r, output);
            }
            Consumer::SynthWeights | Consumer::SynthRun => {
                let mut args = match consumer {
                    Consumer::SynthWeights => vec!["synth", "--weights", s(&self.weights)],
                    _ => vec!["synth", "--run", s(&self.run), "--device", "cpu"],
                };
                args.extend(["--input", s(input), "--out", s(&out)]);
                trainer(&args)
            }
            Consumer::EvalPred | Consumer::EvalTruth => {
                let (pred, truth) = if consumer == Consumer::EvalPred {
                    (input, other)
                } else {
                    (other, input)
                };
                let r = trainer(&[
                    "eval",
                    "--name",
                    "corpus",
                    "--pred",
                    s(pred),
                    "--truth",
                    s(truth),
                    "--out",
                    s(&out),
                ]);
                return (r, out.join("results.json"));
            }
            Consumer::Train => {
                let r = trainer(&train_args(input, &self.data_b, &out));
                return (r, out.join("data-stats.json"));
            }
        };
        (result, out.join(name))
    }
}

/// `trainer train` of the tiniest model for one step on CPU, domain A `a`, domain B `b`.
fn train_args<'a>(a: &'a Path, b: &'a Path, run: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--preset",
        "small",
        "--ngf",
        "2",
        "--blocks",
        "1",
        "--size",
        "32",
        "--batch-size",
        "1",
        "--max-steps",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--data-a",
        s(a),
        "--data-b",
        s(b),
        "--run-dir",
        s(run),
    ]
}

/// The names left in `dir` (empty when the folder is gone).
fn left_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Checks one refusal: an error (not a panic), naming `input`, with `words`, and nothing
/// left in `work`. Returns the problems found.
fn check_refused(
    outcome: &std::thread::Result<(anyhow::Result<()>, PathBuf)>,
    input: &Path,
    words: &[&str],
    work: &Path,
) -> Vec<String> {
    let mut problems = Vec::new();
    match outcome {
        Err(_) => problems.push("panicked".to_string()),
        Ok((Ok(()), _)) => problems.push("accepted a file it must refuse".to_string()),
        Ok((Err(e), _)) => {
            let message = format!("{e:#}");
            if !message.contains(&input.display().to_string()) {
                problems.push(format!("the error does not name the file: {message}"));
            }
            for w in words {
                if !message.contains(w) {
                    problems.push(format!("no `{w}` in the error: {message}"));
                }
            }
        }
    }
    let left = left_in(work);
    if !left.is_empty() {
        problems.push(format!("left {left:?} behind"));
    }
    problems
}

/// What `consumer` must have produced from a file that reads as `data`, given what it
/// produced from a clean file of the same voxels (`reference`, for the volume outputs).
fn check_accepted(
    consumer: Consumer,
    produced: &Path,
    reference: Option<&Path>,
    data: &Array3<f32>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !produced.exists() {
        return vec![format!("succeeded without writing {}", produced.display())];
    }
    match consumer {
        Consumer::FirmwareRun | Consumer::SynthWeights | Consumer::SynthRun => {
            let got = read_volume(produced).unwrap().data;
            let want = read_volume(reference.expect("a reference output"))
                .unwrap()
                .data;
            if got.dim() != data.dim() {
                problems.push(format!("output is {:?}, input {:?}", got.dim(), data.dim()));
            } else if got.iter().any(|v| !v.is_finite()) {
                problems.push("the output holds non-finite values".to_string());
            } else if got != want {
                problems.push("output differs from the clean file's output".to_string());
            }
        }
        Consumer::EvalPred | Consumer::EvalTruth => {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(produced).unwrap()).unwrap();
            let mse = json[0]["volumes"][0][1]["mse"].as_f64();
            if mse != Some(0.0) {
                problems.push(format!(
                    "MSE against the clean file is {mse:?}, not 0: {json}"
                ));
            }
        }
        Consumer::Train => {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(produced).unwrap()).unwrap();
            let opts: PreprocessOptions =
                serde_json::from_value(json["preprocess"].clone()).unwrap();
            let want = Normalization::of(data, opts.norm_region, opts.sd_range);
            let got: Normalization = serde_json::from_value(json["a"].clone()).unwrap();
            if got != want {
                problems.push(format!(
                    "domain A's statistics are {got:?}, the voxels' are {want:?}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_consumer_refuses_bad_volumes_cleanly_and_reads_odd_legal_ones_right() {
    let t0 = Instant::now();
    let root = scratch_dir("corpus", "consumers");
    let fixture = Fixture::build(&root);
    let corpus = write_corpus(&root.join("corpus")).unwrap();
    assert!(corpus.len() >= 40, "{} files", corpus.len());
    eprintln!("fixture and corpus in {:.1} s", t0.elapsed().as_secs_f64());

    // The other side of `eval` (and the clean twin of an accepted file): a plain float32
    // file of the same stem, holding the voxels an accepted file reads as (or the usual
    // volume).
    let clean = root.join("clean");
    let usual = sample(SHAPE);
    let mut twins = BTreeMap::new();
    for f in &corpus {
        let data = match &f.expect {
            Expect::Reads(data) => data,
            Expect::Refused(_) => &usual,
        };
        let twin = clean.join(f.class).join(f.path.file_name().unwrap());
        dicyc_volume::nifti_io::write(&twin, &Volume::new(data.clone(), [1.0; 3], [0.0; 3]))
            .unwrap();
        twins.insert(f.class, twin);
    }

    let mut table: BTreeMap<(&str, Consumer), String> = BTreeMap::new();
    let mut problems = Vec::new();
    for CorpusFile {
        class,
        path,
        expect,
    } in &corpus
    {
        let twin = &twins[class];
        for consumer in Consumer::ALL {
            let work = root.join("work").join(format!("{consumer:?}")).join(class);
            std::fs::create_dir_all(&work).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                fixture.consume(consumer, path, twin, &work)
            }));
            let (found, verdict) = match (expect, consumer.own_refusal(class)) {
                (Expect::Refused(words), _) => {
                    (check_refused(&outcome, path, words, &work), "refused")
                }
                (Expect::Reads(_), Some(words)) => (
                    check_refused(&outcome, path, words, &work),
                    "refused (consumer's rule)",
                ),
                (Expect::Reads(data), None) => {
                    let found = match &outcome {
                        Err(_) => vec!["panicked".to_string()],
                        Ok((Err(e), _)) => vec![format!("refused a legal file: {e:#}")],
                        Ok((Ok(()), produced)) => {
                            let reference = match consumer {
                                Consumer::FirmwareRun
                                | Consumer::SynthWeights
                                | Consumer::SynthRun => {
                                    let rwork = work.join("clean");
                                    let (r, produced) =
                                        fixture.consume(consumer, twin, twin, &rwork);
                                    r.unwrap_or_else(|e| {
                                        panic!("{class}: the clean twin failed: {e:#}")
                                    });
                                    Some(produced)
                                }
                                _ => None,
                            };
                            check_accepted(consumer, produced, reference.as_deref(), data)
                        }
                    };
                    (found, "accepted, same result as the clean file")
                }
            };
            let cell = if found.is_empty() {
                verdict.to_string()
            } else {
                format!("FAILED: {}", found.join("; "))
            };
            for p in found {
                problems.push(format!("{class} × {}: {p}", consumer.name()));
            }
            table.insert((class, consumer), cell);
        }
    }

    eprintln!(
        "| input | {} |",
        Consumer::ALL.map(Consumer::name).join(" | ")
    );
    eprintln!("|---|{}", "---|".repeat(Consumer::ALL.len()));
    for f in &corpus {
        let cells: Vec<&str> = Consumer::ALL
            .iter()
            .map(|c| table[&(f.class, *c)].as_str())
            .collect();
        eprintln!("| {} | {} |", f.class, cells.join(" | "));
    }
    eprintln!(
        "{} files × {} consumers in {:.1} s",
        corpus.len(),
        Consumer::ALL.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    std::fs::remove_dir_all(&root).unwrap();
}

/// `trainer synth --weights /dev/zero` read without end until memory ran out; a device, a
/// pipe or a folder is now refused from its metadata, naming it, with nothing written.
#[test]
fn synth_weights_refuses_a_device_or_folder_instead_of_reading_it() {
    let root = scratch_dir("corpus", "weights-device");
    let input = root.join("v.nii");
    dicyc_volume::nifti_io::write(&input, &Volume::new(sample(SHAPE), [1.0; 3], [0.0; 3])).unwrap();
    let out = root.join("out");
    for weights in [Path::new("/dev/zero"), root.as_path()] {
        if !weights.exists() {
            continue;
        }
        let err = trainer(&[
            "synth",
            "--weights",
            s(weights),
            "--input",
            s(&input),
            "--out",
            s(&out),
        ])
        .expect_err("not a weight file");
        let message = format!("{err:#}");
        assert!(
            message.contains(s(weights)) && message.contains("not a regular file"),
            "{message}"
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&root).unwrap();
}
