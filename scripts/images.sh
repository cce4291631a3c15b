#!/usr/bin/env bash
# Build the images docker-compose.yml runs, with the machine's container engine (podman, else docker).
#
#   bash scripts/images.sh                          # on python:3.11-slim; compose pulls postgres:16 itself
#   HAR_BASE_IMAGE=debootstrap bash scripts/images.sh
#       # no image registry: a Debian 12 base made here with debootstrap (Python 3.11 from Debian), and PostgreSQL
#       # on it (deploy/postgres); prints the POSTGRES_IMAGE to put in .env
#
# Every Python package comes from requirements/wheels/ (filled here from the lock, the CPU torch included, cached
# in $HAR_WHEEL_CACHE), so the build itself asks no index. Re-running is cheap: the base image and the wheels are
# kept, and the engine's layer cache rebuilds only what changed.
# Settings: HAR_CONTAINER_ENGINE (podman|docker), HAR_EXTRAS (default s3,docker: assets on S3, runs in their own
# containers), HAR_IMAGE (default har-assets:latest), HAR_WHEEL_CACHE, HAR_DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${HAR_CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}"
extras="${HAR_EXTRAS-s3,docker}"
image="${HAR_IMAGE:-har-assets:latest}"
base="${HAR_BASE_IMAGE:-python:3.11-slim}"
wheel_cache="${HAR_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/har-assets/wheels}"
lock=requirements/lock-linux-x86_64-cp311.txt
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
seconds() { date +%s.%N; }
phase() { awk -v s="$2" -v e="$(seconds)" -v what="$1" 'BEGIN { printf "images.sh: %-44s %6.1f s\n", what, e - s }'; }

if [ "$base" = debootstrap ]; then
  base=localhost/har-base:bookworm
  if ! "$engine" image exists "$base" 2>/dev/null && ! "$engine" image inspect "$base" >/dev/null 2>&1; then
    t=$(seconds)
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" \
      "${HAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | "$engine" import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$root"
    phase "base image $base (debootstrap)" "$t"
  fi
  if [ "$engine" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    conf="$(bash scripts/podman-conf.sh "$base")"
    if [ -n "$conf" ]; then export CONTAINERS_CONF="$conf"; echo "images.sh: CONTAINERS_CONF=$conf"; fi
  fi
  t=$(seconds)
  "$engine" build -q --build-arg BASE_IMAGE="$base" -t localhost/har-postgres:15 deploy/postgres >/dev/null
  phase "image localhost/har-postgres:15" "$t"
  echo "images.sh: POSTGRES_IMAGE=localhost/har-postgres:15"
fi

t=$(seconds)
# the wheels are what the lock, the project's dependencies and the extras resolve to: skipped when those are unchanged
stamp="$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)-${extras}"
if [ "$(cat requirements/wheels/.stamp 2>/dev/null)" != "$stamp" ]; then
  mkdir -p "$wheel_cache"
  "$python" -m pip download --quiet --disable-pip-version-check -d "$wheel_cache" \
    ".[platform${extras:+,$extras}]" setuptools -c "$lock"
  rm -rf requirements/wheels
  mkdir -p requirements/wheels
  # exactly the wheels this build needs (the cache may hold other versions)
  "$python" -m pip download --quiet --disable-pip-version-check --no-index --find-links "$wheel_cache" \
    -d requirements/wheels ".[platform${extras:+,$extras}]" setuptools -c "$lock"
  echo "$stamp" > requirements/wheels/.stamp
fi
phase "wheels ($(ls requirements/wheels/*.whl | wc -l) in requirements/wheels)" "$t"

t=$(seconds)
"$engine" build --build-arg BASE_IMAGE="$base" --build-arg HAR_EXTRAS="$extras" -t "$image" . >/dev/null
phase "image $image" "$t"
