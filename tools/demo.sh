#!/usr/bin/env bash
# The main job, end to end, set-up included (Rust toolchain and Python 3 are all it needs):
#   1. libtorch into the cache (once), release build of `trainer` and `firmware-sim`;
#   2. `trainer study --scale demo`: the simulated PD/T2 benchmark (MNI ICBM152 2009a
#      anatomy, template fetched from PyPI's nilearn wheel into the cache, once) with every
#      T2 volume warped by one shared smooth field (the paper's Table 2 setting), CycleGAN
#      and DicycleGAN (the defaults) trained side by side, 400 steps each, both evaluated
#      against the source-aligned ground truth: a table and a labelled figure in which the
#      source's outline shows which model's output is aligned;
#   3. export of the DicycleGAN generator to the core's fp16 weight files plus golden
#      bundles;
#   4. a device flash image, and `firmware-sim verify`: the heap-free core on the device
#      against libtorch, both passes, within the tolerances of docs/DESIGN.md §3.3; a
#      corrupted image is refused;
#   5. `firmware-sim run`: the device synthesises a whole test PD volume (T2 units);
#   6. `trainer eval --run`: the DicycleGAN run's own evaluation on its run page.
# Everything lands in $DICYC_OUT (default out/demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${DICYC_OUT:-out/demo}"
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
say() { echo "demo [$(( $(date +%s) - start )) s]: $*"; }

tools/setup-libtorch.sh
say "building release binaries"
cargo build --release --locked -p dicyc-trainer -p dicyc-firmware-sim
trainer=target/release/trainer
firmware=target/release/firmware-sim
"$trainer" info

study="$out/study"
say "CycleGAN and DicycleGAN side by side on the domain-deformed PD/T2 benchmark (trainer study --scale demo)"
"$trainer" study --scale demo --dir "$study" --jobs 2
run="$study/cells/dicyc-shared.deformed.s0/run"
data="$study/data-deformed"

say "exporting DicycleGAN's fp16 weight files and golden bundles"
"$trainer" export --run "$run" --out "$out/export" \
    --golden-a "$data/test/pd" --golden-b "$data/test/t2"

say "flashing the PD->T2 generator onto an edge-8m device and verifying it against libtorch"
read -r height width < <(python3 -c "import json;s=json.load(open('$out/export/golden-ab/golden.json'))['slices'][0];print(s['height'],s['width'])")
"$firmware" flash "$out/export/g_ab.dcw" --profile edge-8m --height "$height" --width "$width" -o "$out/g_ab.flash"
"$firmware" inspect "$out/g_ab.flash" | head -4
"$firmware" verify --image "$out/g_ab.flash" --golden "$out/export/golden-ab" --profile edge-8m --json "$out/verify-ab.json"
say "a corrupted image is refused:"
if "$firmware" verify --image "$out/g_ab.flash" --golden "$out/export/golden-ab" --profile edge-8m --flip-bits 1 --seed 7; then
    echo "demo: a corrupted image was accepted" >&2
    exit 1
fi

say "running the device on a whole test PD volume, slice by slice"
test_pd=$(ls "$data/test/pd/"*.nii* | head -1)
"$firmware" run --image "$out/g_ab.flash" --profile edge-8m --input "$test_pd" \
    --output "$out/device/$(basename "$test_pd")"

say "evaluating the DicycleGAN run on its own (its run page gets the table and example slices)"
"$trainer" eval --run "$run" --data "$data" --out "$out/eval"

if command -v chromium >/dev/null || [ "$(id -u)" = 0 ]; then
    say "opening the run page in headless Chromium (installed from Debian when missing)"
    tools/check-run-page.sh "$run" "$out/run-page.png"
fi

say "DicycleGAN against CycleGAN, same seed, same test volumes ($study/RESULTS.md):"
awk '/^### Paired with CycleGAN/{p=1} p&&/^$/&&n++>=1{exit} p' "$study/RESULTS.md"
say "done. What to look at:"
cat <<EOF
  $study/fig4-deformed.png   source | CycleGAN | DicycleGAN | aligned truth | deformed target,
                             the source's outline over each: DicycleGAN's output stays inside it
  $study/index.html          the comparison page (tables, figures, both runs' pages)
  $study/RESULTS.md          the same as Markdown
  $run/index.html
                             DicycleGAN's run page: curves, samples, checkpoints, evaluation
  $out/export, $out/g_ab.flash, $out/verify-ab.json, $out/device/
                             the weight files, the device image, its verification, a device run
EOF
