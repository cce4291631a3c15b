#!/usr/bin/env bash
# Set up (idempotent) and start the Dagster UI + daemon on HAR_HOME (default ./data) with demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/har dev "$@"
