#!/usr/bin/env bash
# The main job, end to end, set-up included (Rust toolchain and Python 3 are all it needs):
#   1. libtorch into the cache (once), release build of `trainer` and `firmware-sim`;
#   2. a small IXI-like PD/T2 benchmark simulated from the MNI ICBM152 2009a anatomy
#      (template fetched from PyPI's nilearn wheel into the cache, once), and the paper's
#      deformation experiment: one shared smooth deformation of every T2 volume;
#   3. a short DicycleGAN training run (small CPU preset) on PD -> deformed T2;
#   4. export to the core's fp16 weight files plus golden bundles;
#   5. a device flash image, and `firmware-sim verify`: the heap-free core on the device
#      against libtorch, both passes, within the tolerances of docs/DESIGN.md §3.3;
#   6. `firmware-sim run`: the device synthesises a whole test PD volume (T2 units);
#   7. synthesis of the test volumes and the paper-style evaluation table.
# Everything lands in $DICYC_OUT (default out/demo). DEMO_STEPS sets the training length.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${DICYC_OUT:-out/demo}"
steps="${DEMO_STEPS:-300}"
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

say "simulating a small PD/T2 benchmark from the MNI ICBM152 2009a anatomy"
"$trainer" data simulate --small --out "$out/data"
say "deforming every T2 volume with one shared smooth field (the paper's Table 2 setting)"
"$trainer" data deform --data "$out/data" --out "$out/data-deformed"

say "training DicycleGAN (small preset, $steps steps) on PD -> deformed T2"
"$trainer" train --preset small --model dicyclegan \
    --data-a "$out/data-deformed/train/pd" --data-b "$out/data-deformed/train/t2" \
    --max-steps "$steps" --run-dir "$out/run" --quiet

say "exporting fp16 weight files and golden bundles"
"$trainer" export --run "$out/run" --out "$out/export" \
    --golden-a "$out/data-deformed/test/pd" --golden-b "$out/data-deformed/test/t2"

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
test_pd=$(ls "$out/data-deformed/test/pd/"*.nii* | head -1)
"$firmware" run --image "$out/g_ab.flash" --profile edge-8m --input "$test_pd" \
    --output "$out/device/$(basename "$test_pd")"

say "synthesizing the test volumes and evaluating against the source-aligned ground truth"
"$trainer" eval --run "$out/run" --data "$out/data-deformed" --out "$out/eval"
say "done: outputs in $out"
