#!/usr/bin/env bash
# Set up (idempotent) and run the linters and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check har_assets har_assets_tests benchmarks
# Everything: unit tests, the integration test of the compose topology (PostgreSQL, mlflow server,
# Dagster code server, webserver, daemon as local processes) and the browser tests (headless
# Chromium). -rs lists why anything was skipped (no PostgreSQL server, no chromium).
.venv/bin/python -m pytest -q -p no:cacheprovider -rs --durations=15 "$@"
