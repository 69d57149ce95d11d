#!/usr/bin/env bash
# Download, into .whl/, the wheels that the GPU machine's image lacks, for its Python 3.12
# (torch, numpy, scipy, typer, rich and einops are already there). scripts/train_demo_bundle_gpu.sh
# installs them with pip --no-index; the folder travels with the run (carry [".whl"]).
# Versions are those of the project's .venv, so both machines run the same library code.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PACKAGES=(monai pydantic pydantic_core pydantic-settings pydicom highdicom nibabel sqlalchemy
    pynetdicom alembic mako python-dotenv typing-inspection annotated-types)
pins=()
for name in "${PACKAGES[@]}"; do
    version=$("$PIP" show "$name" | sed -n 's/^Version: //p')
    pins+=("$name==$version")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
ls .whl
