#!/usr/bin/env bash
# Create .venv and install har-assets with its dev tools at the lock's exact versions (CPU torch; no CUDA
# download). The extras, the lock and the torch index are named in scripts/deps.sh; `bash scripts/lock.sh`
# refreshes the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
# A lock that pyproject.toml's dependencies have moved past is an error, not a silent unlocked install.
"$PYTHON" scripts/lockfile.py check "$HAR_LOCK" --extras "$HAR_DEV_EXTRAS"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip)
"${pip[@]}" install --quiet pip -c "$HAR_LOCK"

# torch first, the CPU build at the locked version and without its dependencies (they come from the
# registry at their locked versions below), so nothing pulls a multi-GB CUDA wheel. Skipped when the
# locked version is installed already.
torch_locked="$(sed -n 's/^torch==//p' "$HAR_LOCK")"
torch_installed() { .venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true; }
installed="$(torch_installed)"
if [ "${installed%%+*}" != "$torch_locked" ]; then
  if har_index_answers "$HAR_TORCH_INDEX_URL"; then
    "${pip[@]}" install --quiet --no-deps torch -c "$HAR_LOCK" --index-url "$HAR_TORCH_INDEX_URL"
  else
    echo "setup.sh: torch index $HAR_TORCH_INDEX_URL does not answer: torch comes from the package registry (a CUDA build unless pip's find-links hold the CPU wheel)" >&2
    "${pip[@]}" install --quiet --no-deps torch -c "$HAR_LOCK"
  fi
fi

"${pip[@]}" install --quiet -e ".[$HAR_DEV_EXTRAS]" -c "$HAR_LOCK"

cuda="$("${pip[@]}" list --format=freeze 2>/dev/null | grep -i -E '^(nvidia-|cuda-|triton=)' || true)"
if [ -n "$cuda" ]; then
  {
    echo "setup.sh: WARNING: .venv holds nvidia-*/CUDA packages, several GB that a CUDA torch build pulls (torch here: $(torch_installed)):"
    echo "  ${cuda//$'\n'/$'\n'  }"
    echo "  for the CPU build: make $HAR_TORCH_INDEX_URL reachable (or set HAR_TORCH_INDEX_URL to a mirror), then"
    echo "  rm -rf .venv && bash scripts/setup.sh"
  } >&2
fi
