//! The pages a user opens: a run directory's `index.html` after `trainer train` (the
//! configuration, the loss curves, the sample grids newest first, the checkpoints) and after
//! `trainer eval --run` (the metrics table and the example slices), every link relative and
//! to a file that exists, everything escaped, rebuilt identically by `trainer page`; a
//! study's `index.html` linking each cell's run page. When Chromium is installed, the run
//! page is also opened in it (`tools/check-run-page.sh`: no broken images, the sections, a
//! screenshot that is not blank); `DICYC_REQUIRE_BROWSER=1` makes a missing Chromium a
//! failure instead of a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dicyc_trainer::train::html::escape;
use dicyc_trainer::train::ModelKind;
use dicyc_volume::testing::scratch_dir;

mod common;
use common::{arg as s, tiny_train_config, trainer};

/// Every `href="…"` and `src="…"` value of `html`, in order.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("a closed attribute");
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Asserts that every link of the page in `dir` is relative and names something on disk,
/// and that the page loads nothing from outside (no scripts, no stylesheets, no URLs).
fn assert_links_resolve(dir: &Path, html: &str) -> Vec<String> {
    assert!(
        !html.contains("<script") && !html.contains("<link"),
        "nothing to load"
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
    let all = links(html);
    for link in &all {
        if link.starts_with('#') {
            continue;
        }
        assert!(
            !link.contains(':') && !link.starts_with('/') && !link.contains('%'),
            "not a plain relative link: {link}"
        );
        assert!(
            dir.join(link).exists(),
            "{link} does not exist in {}",
            dir.display()
        );
    }
    all
}

fn position(html: &str, needle: &str) -> usize {
    html.find(needle)
        .unwrap_or_else(|| panic!("the page has no {needle}"))
}

/// The file names in `dir` ending in `.png`, without it.
fn pngs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".png").map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Runs `tools/check-run-page.sh` on `run` when Chromium is installed (asserting it passes);
/// otherwise says so, or fails under `DICYC_REQUIRE_BROWSER=1`.
fn check_in_browser(run: &Path, shot: &Path) {
    let installed = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !installed {
        assert!(
            std::env::var("DICYC_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "DICYC_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("note: no chromium installed, the run page was not opened in a browser");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/check-run-page.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(run)
        .arg(shot)
        .env("CHECK_PAGE_NO_INSTALL", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser check failed:\n{text}");
    assert!(text.contains("check-run-page: OK"), "{text}");
    assert!(
        std::fs::metadata(shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
}

#[test]
fn a_run_page_shows_training_then_its_evaluation_with_only_relative_links_that_exist() {
    let root: PathBuf = scratch_dir("run-page", "train-eval");
    // A name that needs escaping: it is the page's title.
    let run = root.join("tiny <run> & co");
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        tiny_train_config(ModelKind::Dicyclegan).to_toml().unwrap(),
    )
    .unwrap();
    trainer(&[
        "train",
        "--config",
        s(&config),
        "--run-dir",
        s(&run),
        "--quiet",
    ])
    .unwrap();

    let page = run.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>tiny &lt;run&gt; &amp; co — DicycleGAN run</title>"));
    assert!(!html.contains("<run>"), "the run's name is escaped");
    for id in [
        "summary",
        "samples",
        "curves",
        "epochs",
        "checkpoints",
        "configuration",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    assert!(!html.contains("id=\"evaluations\""), "no evaluation yet");
    // The whole configuration, escaped.
    let toml = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(html.contains(&escape(&toml)), "config.toml is on the page");
    assert!(toml.contains('"') && !html.contains("model = \"dicyclegan\""));
    // Every curve and every sample grid, the grids newest first.
    let curves = pngs(&run.join("curves"));
    assert!(curves.contains(&"g_total".to_string()), "{curves:?}");
    for c in &curves {
        assert!(
            html.contains(&format!("src=\"curves/{c}.png\"")),
            "curve {c}"
        );
    }
    assert_eq!(
        pngs(&run.join("samples")),
        ["epoch-0001", "epoch-0002", "epoch-0003"]
    );
    let at = |e: &str| position(&html, &format!("src=\"samples/{e}.png\""));
    assert!(at("epoch-0003") < at("epoch-0002") && at("epoch-0002") < at("epoch-0001"));
    assert!(
        html.contains("after epoch 3, step 9"),
        "captions name the step"
    );
    // The checkpoints on disk, the latest marked; the summary says where the run got to.
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let latest = latest.trim();
    assert!(html.contains(&format!("href=\"checkpoints/{latest}/\"")));
    assert!(html.contains("step 9 of 9 planned (100 %)"), "progress");
    assert!(html.contains("finished"), "the schedule ended");
    assert_links_resolve(&run, &html);

    // `trainer page` rebuilds the same page from the same files.
    trainer(&["page", "--run", s(&run)]).unwrap();
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);

    // `trainer eval --run` adds its metrics table and example figure, linked relatively.
    let (sim, def, out) = (root.join("sim"), root.join("def"), root.join("eval"));
    trainer(&["data", "simulate", "--phantom", "--small", "--out", s(&sim)]).unwrap();
    trainer(&["data", "deform", "--data", s(&sim), "--out", s(&def)]).unwrap();
    let args = [
        "eval",
        "--run",
        s(&run),
        "--data",
        s(&def),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ];
    trainer(&args).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    let evals = position(&html, "id=\"evaluations\"");
    let table = position(&html, "<th>Direction</th>");
    assert!(evals < table && table < position(&html, "id=\"samples\""));
    for direction in ["PD→T2", "T2→PD"] {
        assert!(html.contains(&format!("<tr><td>{direction}</td><td class=\"num\">2</td>")));
    }
    assert!(
        html.contains("src=\"../eval/examples.png\""),
        "examples.png, relative"
    );
    assert!(html.contains(&format!("{latest} (undeformed pass)")));
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("evals.json")).unwrap()).unwrap();
    assert_eq!(recorded[0]["out"], "../eval");
    assert_links_resolve(&run, &html);

    // The same eval again replaces its record rather than adding one.
    trainer(&args).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<th>Direction</th>").count(), 1);

    check_in_browser(&run, &root.join("page.png"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_study_page_links_every_cell_run_page() {
    let dir = scratch_dir("run-page", "study");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["study", "--scale", "tiny", "--dir"])
        .arg(&dir)
        .args(["--cells", "cyclegan.deformed.s0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "study failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let all = assert_links_resolve(&dir, &html);
    let cell = "cells/cyclegan.deformed.s0/run/index.html";
    assert!(
        all.iter().any(|l| l == cell),
        "links the cell's run page: {all:?}"
    );
    assert!(all.iter().any(|l| l == "RESULTS.md"));
    assert!(html.contains("<code>cyclegan</code>") && html.contains("done"));
    // The cell's run page is a run page.
    let run_page = std::fs::read_to_string(dir.join(cell)).unwrap();
    assert!(run_page.contains("id=\"checkpoints\""));
    assert_links_resolve(&dir.join("cells/cyclegan.deformed.s0/run"), &run_page);
    std::fs::remove_dir_all(&dir).unwrap();
}
