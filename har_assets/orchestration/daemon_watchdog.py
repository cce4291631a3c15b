"""`har daemon`: `dagster-daemon run` under a watchdog that stops it when it hangs, so its supervisor restarts it.

A container's restart policy acts only when its program exits, and an engine acts on a failing healthcheck only
where it runs healthchecks at all (Docker does not restart an unhealthy container; Podman without systemd never
runs them). A daemon that hangs (deadlocked, stopped, starved) keeps its process alive and stops every sensor,
backfill and the run queue. The watchdog reads the daemons' heartbeats from the instance, as `dagster-daemon
liveness-check` does and with the same tolerance (`DAGSTER_DAEMON_HEARTBEAT_TOLERANCE`), and when they are older
than that it stops the daemon's process group and exits non-zero: the container's restart policy (or systemd, or
Kubernetes) starts a fresh one. It forwards SIGTERM/SIGINT to the daemon and exits with its status otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

TOLERANCE_VAR = "DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"  # dagster-daemon liveness-check reads the same variable
DEFAULT_TOLERANCE_S = 150.0  # daemons heartbeat every 30 s; Dagster's own default (1800 s) notices after half an hour
STOP_GRACE_S = 20.0
HUNG_EXIT = 70  # EX_SOFTWARE: the supervisor should start a fresh daemon


def tolerance_s() -> float:
    return float(os.environ.get(TOLERANCE_VAR) or DEFAULT_TOLERANCE_S)


def _stop(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the child's process group (SIGCONT first: a stopped process cannot act on it), SIGKILL after
    `grace_s`."""
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def watch(command: list[str], live: Callable[[], bool], tolerance: float, check_every_s: float,
          misses_to_stop: int = 2) -> int:
    """Run `command` in its own process group; every `check_every_s` after the first `tolerance` seconds ask
    `live()` (the heartbeats are at most `tolerance` old); after `misses_to_stop` noes on end, stop the command and
    return HUNG_EXIT. An unreadable instance (its database down) is no answer: it neither counts nor resets."""
    child = subprocess.Popen(command, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    started, misses = time.monotonic(), 0
    while True:
        try:
            return child.wait(timeout=check_every_s)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() - started < tolerance:
            continue  # a starting daemon has not heartbeated yet
        try:
            misses = 0 if live() else misses + 1
        except Exception as exc:
            print(f"har daemon: could not read the daemons' heartbeats: {exc}", file=sys.stderr, flush=True)
            continue
        if misses >= misses_to_stop:
            print(f"har daemon: no daemon heartbeat within {tolerance:.0f} s at {misses} checks on end: stopping "
                  f"dagster-daemon (pid {child.pid}) so that its supervisor starts a fresh one",
                  file=sys.stderr, flush=True)
            _stop(child, STOP_GRACE_S)
            return HUNG_EXIT


def main(daemon_args: list[str]) -> int:
    """`dagster-daemon run <daemon_args>` under the watchdog, on the instance $DAGSTER_HOME names."""
    from dagster import DagsterInstance

    from har_assets.orchestration.dagster_internals import all_daemons_live

    tolerance = tolerance_s()
    with DagsterInstance.get() as instance:
        return watch(["dagster-daemon", "run", *daemon_args],
                     lambda: all_daemons_live(instance, heartbeat_tolerance_seconds=tolerance),
                     tolerance, check_every_s=min(30.0, tolerance / 3))
