#!/usr/bin/env bash
# The whole test suite, set-up included: installs libtorch into the cache when it is not
# there yet (tools/setup-libtorch.sh), then runs every crate's tests.
# The core and firmware-sim need no libtorch: `cargo test -p dicyc-core -p dicyc-volume -p dicyc-firmware-sim`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup-libtorch.sh
cargo test --workspace --locked "$@"
# The core once more, built for this CPU (-C target-cpu=native), so the SIMD micro-kernel that
# benchmarks and real devices use is tested too, not only the portable one (its own target
# directory, so the regular build is not invalidated).
RUSTFLAGS="-C target-cpu=native" cargo test -p dicyc-core --locked --target-dir target/native
