# shellcheck shell=bash disable=SC2034  # (the variables are for the scripts that source this file)
# Sourced by scripts/setup.sh and scripts/lock.sh: the one place naming the dev install's extras, the lock
# file and the torch CPU index.
#
# Extras of the dev install, `pip install -e ".[$HAR_DEV_EXTRAS]"`: platform: Dagster, torch, training and
# the API (its `serve` extra; the base install is the core alone); dev: test tools; e2e: Playwright (the
# browser is the OS's chromium, see .ci/run); docker: the DockerRunLauncher whose instance config
# (deploy/dagster.docker.yaml) the tests load; s3: the object store. The lock covers every extra of
# pyproject.toml (these and the ones only the image adds), so any install can take its versions from it.
HAR_DEV_EXTRAS="platform,dev,e2e,docker,s3"
# Exact versions for linux x86_64 / CPython 3.11 with the CPU torch; written by scripts/lock.sh only.
HAR_LOCK="requirements/lock-linux-x86_64-cp311.txt"
# Where torch's CPU build comes from (a mirror of it, or .../whl/cu128 for a CUDA build, if you must).
HAR_TORCH_INDEX_URL="${HAR_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"

# har_index_answers URL: true when URL's torch page answers within 5 s (an offline or registry-only
# machine fails at once on DNS, or after the timeout), so a missing index never hangs the install.
har_index_answers() {
  "${PYTHON:-python3}" - "$1" >/dev/null 2>&1 <<'PY'
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5).close()
PY
}
