#!/usr/bin/env bash
# Rebuild a bundle from what scripts/train_demo_bundle_gpu.sh left in its $OUT.
#
#   scripts/unpack_bundle.sh FILES_DIR BUNDLE_DIR
#
# FILES_DIR holds bundle-meta.tar.gz and the weight parts (<path with "/" as "--">.partNN);
# BUNDLE_DIR is created. The result is checked with `pancreas-node`'s bundle loader, which
# verifies every weight file against the sha256 in its bundle.json.
set -euo pipefail
FILES=${1:?FILES_DIR}
BUNDLE=${2:?BUNDLE_DIR}
mkdir -p "$BUNDLE"
tar xzf "$FILES/bundle-meta.tar.gz" -C "$BUNDLE"
for first in "$FILES"/*.safetensors.part00; do
    name=$(basename "$first" .part00)
    target="$BUNDLE/${name//--//}"
    mkdir -p "$(dirname "$target")"
    cat "$FILES/$name".part[0-9][0-9] >"$target"
done
PYTHON=${PYTHON:-.venv/bin/python}
find "$BUNDLE" -name bundle.json -print0 | while IFS= read -r -d '' meta; do
    "$PYTHON" -c 'import sys; from pathlib import Path; from inference.bundle import load_bundle
b = load_bundle(Path(sys.argv[1])); print(sys.argv[1], len(b.members), "member(s): sha256 verified")' "$meta"
done
