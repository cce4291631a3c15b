#!/usr/bin/env bash
# Create .venv and install har-assets with its dev tools (CPU torch; no CUDA download).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned to the CPU build, so nothing pulls a multi-GB CUDA wheel.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# dev: test tools; e2e: Playwright (the browser is the OS's chromium, see .ci/run); docker: the
# DockerRunLauncher whose instance config (deploy/dagster.docker.yaml) the tests load; s3: the object store
.venv/bin/python -m pip install --quiet -e ".[dev,e2e,docker,s3]"
