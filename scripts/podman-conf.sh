#!/usr/bin/env bash
# Print the path of a containers.conf that lets podman start containers on this machine (nothing: its defaults do).
#
# Podman gives each container open-file and process limits above what a host that is itself a container may
# allow ("error setting rlimit ...: operation not permitted"); the first limits that a probe container accepts,
# at or below this shell's own hard limits, are written to $HAR_PODMAN_CONF (default ~/.cache/har-assets/
# containers.conf) with the runc runtime (crun refuses a hybrid cgroup layout). Use it as
#   export CONTAINERS_CONF="$(bash scripts/podman-conf.sh)"
# Needs an image to probe with: $1 (default localhost/har-base:bookworm, made by scripts/images.sh).
set -euo pipefail
probe="${1:-localhost/har-base:bookworm}"
conf="${HAR_PODMAN_CONF:-${XDG_CACHE_HOME:-$HOME/.cache}/har-assets/containers.conf}"
if CONTAINERS_CONF=/dev/null podman run --rm "$probe" true >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$(dirname "$conf")"
nofile="$(ulimit -Hn)"
for nproc in "$(ulimit -Hu)" 32768 16384 4096 1024; do
  [ "$nproc" = unlimited ] && continue
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n' \
    "$nofile" "$nofile" "$nproc" "$nproc" > "$conf"
  if CONTAINERS_CONF="$conf" podman run --rm "$probe" true >/dev/null 2>&1; then
    echo "$conf"
    exit 0
  fi
done
echo "podman-conf.sh: no container starts on this machine, even with the limits in $conf" >&2
exit 1
