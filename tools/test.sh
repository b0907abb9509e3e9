#!/usr/bin/env bash
# The whole test suite, set-up included: installs libtorch into the cache when it is not
# there yet (tools/setup-libtorch.sh), then runs every crate's tests.
# The core and firmware-sim need no libtorch: `cargo test -p dicyc-core -p dicyc-volume -p dicyc-firmware-sim`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup-libtorch.sh
cargo test --workspace --locked "$@"
