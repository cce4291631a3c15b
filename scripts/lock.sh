#!/usr/bin/env bash
# Refresh the dependency lock ($HAR_LOCK in scripts/deps.sh) from pyproject.toml: every package of
# `pip install -e ".[every extra]"` at an exact version, for linux x86_64 / CPython 3.11 with torch's
# CPU build. Run it after any change to pyproject.toml's dependencies or extras (scripts/setup.sh refuses
# a stale lock), or to take newer releases; commit the lock with pyproject.toml.
#
# Why pip's own resolver (`pip install --dry-run --ignore-installed --report`, turned into pins by
# scripts/lockfile.py) rather than pip-tools or uv: it is the same resolver, and the same pip configuration
# (indexes, find-links, constraints), that scripts/setup.sh and the Dockerfile install with, so the lock
# holds what they would pick, and refreshing it needs nothing but Python 3.11. pip-compile drives pip's
# internals and breaks with new pip releases; uv ignores pip's configuration and takes every package it
# finds on the torch index unless given an index strategy. The price: a resolve takes a few minutes
# (metadata only, nothing is installed) and runs on the lock's platform, which this script checks.
#
# torch: resolved alone first (the CPU index when it answers, else pip's configured sources must hold
# the CPU wheel), then held at that exact +cpu build for the whole resolve, since pip's resolver may
# otherwise backtrack onto the registry's CUDA build; a result with nvidia-* packages is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

platform="$(uname -s)-$(uname -m)-$("$PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
if [ "$platform" != "Linux-x86_64-cp311" ]; then
  echo "error: the lock is for Linux-x86_64-cp311, this is $platform (set PYTHON=python3.11, or run it in a python:3.11 container)" >&2
  exit 1
fi

extras="$("$PYTHON" scripts/lockfile.py extras --require "$HAR_DEV_EXTRAS")"
torch_req="$("$PYTHON" scripts/lockfile.py requirement torch)"
work="$(mktemp -d "${TMPDIR:-/tmp}/har-lock.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip   # the newest pip resolves, and the lock pins it for setup.sh

index=()
if PYTHON="$work/venv/bin/python" har_index_answers "$HAR_TORCH_INDEX_URL"; then
  index=(--extra-index-url "$HAR_TORCH_INDEX_URL")
else
  echo "lock.sh: $HAR_TORCH_INDEX_URL does not answer: the CPU torch must come from pip's configured indexes/find-links" >&2
fi

echo "lock.sh: resolving $torch_req (CPU build), then .[$extras] (a few minutes)" >&2
"${pip[@]}" install --dry-run --ignore-installed --no-deps --quiet --report "$work/torch.json" "${index[@]}" "$torch_req"
torch_version="$("$PYTHON" scripts/lockfile.py version "$work/torch.json" torch)"
case "$torch_version" in
  *+cpu) ;;
  *) echo "error: $torch_req resolved to torch $torch_version, not a CPU (+cpu) build: make $HAR_TORCH_INDEX_URL reachable (or set HAR_TORCH_INDEX_URL to a mirror of it)" >&2
     exit 1 ;;
esac
echo "torch==$torch_version" >"$work/torch-cpu.txt"
"${pip[@]}" install --dry-run --ignore-installed --quiet --report "$work/report.json" "${index[@]}" \
  -c "$work/torch-cpu.txt" -e ".[$extras]"

"$PYTHON" scripts/lockfile.py write "$work/report.json" "$HAR_LOCK" --extras "$extras"
"$PYTHON" scripts/lockfile.py check "$HAR_LOCK" --extras "$HAR_DEV_EXTRAS"
