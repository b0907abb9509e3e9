#!/usr/bin/env bash
# Installs the libtorch that `tch` 0.26 builds against (PyTorch 2.13.0 from PyPI) into a
# cache directory outside the repository, and points the build at it.
#
# Why PyPI: libtorch's own download site is not reachable from our machines; the PyPI wheel
# ships the same shared libraries (plus the CUDA runtime as nvidia-* wheels, so the same
# install trains on a GPU when one is present).
#
# Idempotent: reuses a complete install of the right version; re-creates a broken or
# partial one. Afterwards `<repo>/.libtorch` is a symlink to the install's `torch/`
# directory, which `.cargo/config.toml` hands to torch-sys as LIBTORCH.
#
#   DICYC_CACHE   cache root (default: $XDG_CACHE_HOME/dicyc or ~/.cache/dicyc)
set -euo pipefail

TORCH_VERSION="2.13.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${DICYC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dicyc}"
install_dir="$cache_root/torch-$TORCH_VERSION"
marker="$install_dir/.dicyc-complete"
link="$repo_root/.libtorch"

is_complete() {
    [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "torch==$TORCH_VERSION" ]] &&
        [[ -f "$install_dir/torch/lib/libtorch.so" ]] &&
        [[ -f "$install_dir/torch/lib/libtorch_cpu.so" ]] &&
        [[ -d "$install_dir/torch/include/torch" ]]
}

if is_complete; then
    echo "setup-libtorch: reusing torch $TORCH_VERSION at $install_dir"
else
    if [[ -e "$install_dir" ]]; then
        echo "setup-libtorch: $install_dir is incomplete or of another version; re-creating it"
        rm -rf "$install_dir"
    fi
    command -v python3 >/dev/null || { echo "setup-libtorch: python3 is required" >&2; exit 1; }
    mkdir -p "$cache_root"
    tmp_dir="$(mktemp -d "$cache_root/.torch-install.XXXXXX")"
    trap 'rm -rf "$tmp_dir"' EXIT
    echo "setup-libtorch: installing torch==$TORCH_VERSION from PyPI into $install_dir (~4.7 GB, once)"
    python3 -m pip install --quiet --no-input --root-user-action=ignore --target "$tmp_dir" "torch==$TORCH_VERSION"
    echo "torch==$TORCH_VERSION" >"$tmp_dir/.dicyc-complete"
    # Atomic from the point of view of the next run: the directory appears complete or not at all.
    mv "$tmp_dir" "$install_dir"
    trap - EXIT
    is_complete || { echo "setup-libtorch: install finished but libtorch files are missing in $install_dir/torch" >&2; exit 1; }
fi

ln -sfn "$install_dir/torch" "$link"
echo "setup-libtorch: $link -> $install_dir/torch"
