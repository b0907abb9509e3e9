#!/usr/bin/env bash
# The main job, end to end, set-up included. Grows with the project; today it:
#   1. installs libtorch into the cache (once) and builds the release binaries,
#   2. shows what libtorch offers here (CUDA or CPU),
#   3. runs one Adam step through an offset layer (conv + grid_sampler_2d) on libtorch,
#   4. runs the heap-free core through firmware-sim's weight-file inspection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${DICYC_OUT:-out/demo}"
mkdir -p "$out"
tools/setup-libtorch.sh
echo "demo: building release binaries"
cargo build --release --locked -p dicyc-trainer -p dicyc-firmware-sim
trainer=target/release/trainer
firmware=target/release/firmware-sim
echo "demo: step 1/2: libtorch"
"$trainer" info
"$trainer" smoke
echo "demo: done; outputs in $out"
