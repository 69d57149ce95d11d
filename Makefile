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
# More options for `pancreas-node demo`, e.g. DEMO_ARGS='--node-port 11113' when a port is taken.
DEMO_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers (2: the CI machine's cores; `auto`: one per core; 0: serial, in-process).
# --dist loadfile keeps a test file on one worker, so a module's servers start once.
PYTEST_WORKERS ?= 2
# The bench-* targets write to bench/results/local/ (untracked, in .gitignore) so a run on a
# developer machine does not rewrite the committed reference results; PUBLISH=1 writes those
# (bench/results/*.md), for a deliberate update of the published numbers.
PUBLISH ?=
BENCH_RESULTS := $(CURDIR)/bench/results$(if $(PUBLISH),,/local)

# Debian packages the node, its tests and the demo need; installed only where missing.
APT_PACKAGES := orthanc orthanc-dicomweb orthanc-python dcmtk dicom3tools python3-venv chromium poppler-utils rabbitmq-server docker-compose
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The OHIF extension (npm) and the viewer folder Orthanc serves at /ohif/ (see ohif-extension/README.md).
OHIF_EXT := ohif-extension
NPM_STAMP := $(OHIF_EXT)/node_modules/.installed
# scripts/prepare-viewer.mjs writes the viewer to build/ohif (its --out default). The stamp lies
# inside it, so deleting build/ohif rebuilds it; it is newer than every input of the build.
VIEWER_DIR := build/ohif
VIEWER_STAMP := $(VIEWER_DIR)/.viewer-built
VIEWER_INPUTS := $(shell find $(OHIF_EXT)/src $(OHIF_EXT)/scripts -type f 2>/dev/null) \
  $(OHIF_EXT)/package.json $(OHIF_EXT)/package-lock.json $(OHIF_EXT)/vite.config.ts \
  $(OHIF_EXT)/tsconfig.json deploy/ohif/app-config.js.in

.PHONY: help demo test lint typecheck pytest install install-dev system-deps clean ohif-deps ohif-test viewer bench-phantom bench-intake bench-measurements bench-inference bench-inference-gpu bench-seg bench-packet bench-robustness bench-scale deploy-check deploy-smoke

help:
	@echo "make demo   install what is missing, then run the phantom study end to end (KEEP=1 keeps servers up)"
	@echo "make test   install dev deps, then ruff, mypy (strict) and pytest"

# Node.js and npm (the OHIF extension's build) come from Debian only when no `npm` is on PATH:
# a Node.js installed otherwise (e.g. NodeSource's, which bundles npm) is left alone.
# Debian's orthanc package enables its own systemd service, which takes ports 8042 and 4242 that
# the demo and the tests start their own Orthanc on; when this step has just installed orthanc on
# a machine running systemd, that service is stopped and disabled (an Orthanc installed before is
# someone's, and left as it is). Without systemd (containers) there is no service to stop.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	  case " $$missing " in *" orthanc "*) \
	    if [ -d /run/systemd/system ]; then \
	      echo "stopping and disabling the orthanc systemd service (it would hold ports 8042 and 4242)"; \
	      $(SUDO) systemctl disable --now orthanc || true; \
	    fi;; \
	  esac; \
	fi

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch==2.13.0
	# PyRadiomics 3.0.1 has no wheel for Python 3.11 and its sdist imports numpy and versioneer
	# at build time, so it is built without build isolation once those are present.
	$(BIN)/pip install -q numpy versioneer setuptools wheel
	$(BIN)/pip install -q --no-build-isolation pyradiomics==3.0.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: system-deps $(VENV)/.installed

install-dev: install

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# npm ci only when package-lock.json changes (idempotent, CI-friendly).
# The build tools (vite 8) need Node.js 20 or newer; Debian 12's own nodejs is 18.
$(NPM_STAMP): $(OHIF_EXT)/package-lock.json $(OHIF_EXT)/package.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ and npm (make system-deps)" >&2; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || \
	  { echo "Node.js $$(node --version) is too old: the OHIF extension's build needs Node.js 20+" >&2; exit 1; }
	cd $(OHIF_EXT) && npm ci --no-audit --no-fund
	touch $@

ohif-deps: $(NPM_STAMP)

# TypeScript (strict) and the vitest unit tests of the extension.
ohif-test: install-dev ohif-deps
	cd $(OHIF_EXT) && npm run --silent typecheck
	cd $(OHIF_EXT) && npm test

# The extension's build and the prebuilt OHIF app, re-based for /ohif/, in build/ohif; rebuilt
# only when one of its inputs changed (a second `make demo` does not rebuild it).
$(VIEWER_STAMP): $(VIEWER_INPUTS) $(NPM_STAMP)
	cd $(OHIF_EXT) && npm run --silent build
	cd $(OHIF_EXT) && npm run --silent viewer
	touch $@

viewer: $(VIEWER_STAMP)

test: lint typecheck ohif-test viewer pytest

demo: install viewer
	$(BIN)/pancreas-node demo --workdir $(DEMO_DIR) $(if $(KEEP),--keep) $(DEMO_ARGS)

# Each writes <name>.md to $(BENCH_RESULTS) (bench/results/local/, or bench/results/ with PUBLISH=1).
bench-phantom: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/phantom_bench.py

bench-intake: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/intake_bench.py

bench-measurements: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/measurements_bench.py

# kill -9, fuzzing, malformed PDUs, half-open connections and bombs against a real node (issue 22).
bench-robustness: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python -m bench.robustness_bench

bench-seg: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/seg_write_bench.py

bench-packet: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/packet_bench.py

bench-inference: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/inference_bench.py

# Distributed workers (issue 27): 40 phantom studies with 1 and 2 `pancreas-node worker`
# processes, and a worker killed mid-job; a private RabbitMQ, PostgreSQL at
# $$PANCREAS_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432). Writes scale.md.
bench-scale: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python -m bench.scale_bench

# On a machine with an NVIDIA GPU and CUDA torch: writes inference-gpu.md.
bench-inference-gpu: install
	BENCH_RESULTS_DIR=$(BENCH_RESULTS) $(BIN)/python bench/inference_bench.py --device cuda

# Deployment files (issue 27): systemd-analyze verify and security on the units, the compose
# file through `docker-compose config` (Debian's docker-compose, installed here when missing:
# the compose tool needs no Docker daemon), the Kubernetes manifests against the API schemas,
# and every PANCREAS_AI_* variable in deploy/ a setting (docs/deployment.md).
deploy-check: install-dev
	@command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose; }
	$(BIN)/pytest -q tests/deploy $(PYTEST_ARGS)

# The compose stack started for real (needs a running Docker daemon): builds the images, sends
# a phantom CT end to end, removes the stack. SMOKE_ARGS e.g. '--keep' or '--workers 1'.
SMOKE_ARGS ?=
deploy-smoke: install viewer
	$(BIN)/python deploy/compose/smoke/smoke.py --build $(SMOKE_ARGS)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
