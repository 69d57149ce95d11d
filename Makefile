# PancreasAI Node — the two commands: `make demo` and `make test` (see README.md).
# Every install step lives here so a fresh Debian 12 machine needs nothing done by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Optional pip index for torch (e.g. PyTorch's CPU or CUDA wheel index); see README "CUDA".
TORCH_INDEX_URL ?=
KEEP ?=
DEMO_DIR ?= .demo
PYTEST_ARGS ?=
# The bench-* targets write to bench/results/local/ (untracked, in .gitignore) so a run on a
# developer machine does not rewrite the committed reference results; PUBLISH=1 writes those
# (bench/results/*.md), for a deliberate update of the published numbers.
PUBLISH ?=
BENCH_RESULTS := $(CURDIR)/bench/results$(if $(PUBLISH),,/local)

# Debian packages the node, its tests and the demo need; installed only where missing.
APT_PACKAGES := orthanc orthanc-dicomweb orthanc-python dcmtk dicom3tools python3-venv chromium poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The OHIF extension (npm) and the viewer folder Orthanc serves at /ohif/ (see ohif-extension/README.md).
OHIF_EXT := ohif-extension
NPM_STAMP := $(OHIF_EXT)/node_modules/.installed

.PHONY: help demo test lint typecheck pytest install install-dev system-deps clean ohif-deps ohif-test viewer bench-phantom bench-intake bench-measurements bench-inference bench-inference-gpu

help:
	@echo "make demo   install what is missing, then run the phantom study end to end (KEEP=1 keeps servers up)"
	@echo "make test   install dev deps, then ruff, mypy (strict) and pytest"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: system-deps $(VENV)/.installed

install-dev: install

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# npm ci only when package-lock.json changes (idempotent, CI-friendly).
$(NPM_STAMP): $(OHIF_EXT)/package-lock.json $(OHIF_EXT)/package.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ and npm" >&2; exit 1; }
	cd $(OHIF_EXT) && npm ci --no-audit --no-fund
	touch $@

ohif-deps: $(NPM_STAMP)

# TypeScript (strict) and the vitest unit tests of the extension.
ohif-test: install-dev ohif-deps
	cd $(OHIF_EXT) && npm run --silent typecheck
	cd $(OHIF_EXT) && npm test

# The extension's build and the prebuilt OHIF app, re-based for /ohif/, in build/ohif.
viewer: ohif-deps
	cd $(OHIF_EXT) && npm run --silent build
	cd $(OHIF_EXT) && npm run --silent viewer

test: lint typecheck ohif-test viewer pytest

demo: install viewer
	$(BIN)/pancreas-node demo --workdir $(DEMO_DIR) $(if $(KEEP),--keep)

# Each writes <name>.md to $(BENCH_RESULTS) (bench/results/local/, or bench/results/ with PUBLISH=1).
bench-phantom: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/phantom_bench.py

bench-intake: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/intake_bench.py

bench-measurements: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/measurements_bench.py

bench-inference: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/inference_bench.py

# On a machine with an NVIDIA GPU and CUDA torch: writes inference-gpu.md.
bench-inference-gpu: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/inference_bench.py --device cuda

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
