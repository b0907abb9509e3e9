#!/usr/bin/env bash
# Fetches the MNI ICBM152 2009a (symmetric, non-linear) template that PyPI's nilearn wheel
# ships, and extracts the T1, GM and WM maps into the dicyc data cache:
#
#   ${DICYC_CACHE:-~/.cache/dicyc}/mni_icbm152_2009a/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz
#
# `trainer data simulate` finds them there by itself. Re-running is cheap: a present, verified
# template is reused. Needs python3 with pip (only to download the wheel; nothing is installed).
# Template credit: McConnell Brain Imaging Centre, Montreal Neurological Institute (ICBM 2009a);
# see docs/DATA.md.
set -euo pipefail

NILEARN_VERSION="${NILEARN_VERSION:-0.14.1}"
CACHE="${DICYC_CACHE:-$HOME/.cache/dicyc}"
WHEELS="$CACHE/wheels"
OUT="$CACHE/mni_icbm152_2009a"
FILES=(t1 gm wm)
PREFIX="nilearn/datasets/data/mni_icbm152_"
SUFFIX="_tal_nlin_sym_09a_converted.nii.gz"

verify() {
    python3 - "$OUT" <<'PY'
import gzip, struct, sys, os
out = sys.argv[1]
for kind in ("t1", "gm", "wm"):
    p = os.path.join(out, f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")
    with gzip.open(p, "rb") as f:
        hdr = f.read(348)
        if len(hdr) != 348 or struct.unpack("<i", hdr[:4])[0] != 348:
            sys.exit(f"{p}: not a NIfTI-1 file")
        dim = struct.unpack("<8h", hdr[40:56])
        if dim[1:4] != (197, 233, 189):
            sys.exit(f"{p}: unexpected dimensions {dim[1:4]}, expected (197, 233, 189)")
        n = 0
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
        bpv = struct.unpack("<h", hdr[72:74])[0] // 8
        need = 197 * 233 * 189 * bpv
        vox_offset = struct.unpack("<f", hdr[108:112])[0]
        if n + 348 < vox_offset + need:
            sys.exit(f"{p}: truncated ({n + 348} bytes, need {int(vox_offset) + need})")
print("template verified")
PY
}

if [ -d "$OUT" ] && verify >/dev/null 2>&1; then
    echo "template already present and verified: $OUT"
    exit 0
fi

mkdir -p "$WHEELS" "$OUT"
WHEEL="$(ls "$WHEELS"/nilearn-"$NILEARN_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
    echo "downloading nilearn $NILEARN_VERSION wheel into $WHEELS ..."
    python3 -m pip download "nilearn==$NILEARN_VERSION" --no-deps --only-binary=:all: -d "$WHEELS" -q
    WHEEL="$(ls "$WHEELS"/nilearn-"$NILEARN_VERSION"-*.whl | head -n1)"
fi
echo "extracting template from $WHEEL ..."
python3 - "$WHEEL" "$OUT" "$PREFIX" "$SUFFIX" "${FILES[@]}" <<'PY'
import os, sys, zipfile, tempfile
wheel, out, prefix, suffix, *kinds = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for kind in kinds:
        name = f"{prefix}{kind}{suffix}"
        data = z.read(name)
        dest = os.path.join(out, os.path.basename(name))
        fd, tmp = tempfile.mkstemp(dir=out, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
        print(f"  {dest} ({len(data)} bytes)")
PY
verify
echo "template ready: $OUT"
