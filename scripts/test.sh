#!/usr/bin/env bash
# Set up (idempotent) and run the linters and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check har_assets har_assets_tests benchmarks
# Everything: unit tests, the integration test of the compose topology (PostgreSQL, mlflow server,
# Dagster code server, webserver, daemon as local processes) and the browser tests (headless
# Chromium). -rs lists why anything was skipped (no PostgreSQL server, no chromium).
# Two workers (pytest-xdist), one file at a time each, the longest files first (har_assets_tests/conftest.py):
# most of the long tests wait on daemons, servers and containers; `-n 0` runs everything in this process.
.venv/bin/python -m pytest -q -p no:cacheprovider -rs --durations=15 \
  --numprocesses 2 --dist loadfile --no-loadscope-reorder "$@"
