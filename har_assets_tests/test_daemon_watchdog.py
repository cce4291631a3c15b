"""`har daemon`'s watchdog on real processes: a child that keeps heartbeating runs on; one stopped with SIGSTOP
(alive, hung) is stopped after the tolerance and the watchdog exits non-zero for its supervisor; a child's own
exit status passes through. The heartbeats here are a file the child touches (the compose stack test runs it on
the real Dagster daemon and its instance's heartbeats)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from har_assets.orchestration.daemon_watchdog import HUNG_EXIT, watch

BEAT = "import pathlib, sys, time\nwhile True:\n    pathlib.Path(sys.argv[1]).touch()\n    time.sleep(0.2)\n"


TOLERANCE_S = 3.0  # well above a child's start on a loaded machine: it must beat before its first check


def _live(beat: Path, tolerance: float):
    return lambda: beat.exists() and time.time() - beat.stat().st_mtime < tolerance


def test_a_hung_child_is_stopped_and_reported(tmp_path: Path) -> None:
    beat, pid_file = tmp_path / "beat", tmp_path / "pid"
    command = [sys.executable, "-c", f"import os, pathlib; pathlib.Path({str(pid_file)!r}).write_text("
               f"str(os.getpid())); exec({BEAT!r})", str(beat)]
    stopped: list[float] = []

    def hang() -> None:
        deadline = time.monotonic() + 60
        while not beat.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # beating, checked, live
        os.kill(int(pid_file.read_text()), signal.SIGSTOP)
        stopped.append(time.monotonic())

    threading.Thread(target=hang, daemon=True).start()
    assert watch(command, _live(beat, TOLERANCE_S), tolerance=TOLERANCE_S, check_every_s=0.25) == HUNG_EXIT
    ended = time.monotonic()
    assert stopped, "stopped as hung before it was ever live"
    assert ended - stopped[0] >= TOLERANCE_S  # once its heartbeat was stale, not before
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_live_child_runs_on_and_its_exit_status_passes_through(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    child = ("import pathlib, sys, time\nt0 = time.monotonic()\nwhile time.monotonic() - t0 < 6.0:\n"
             "    pathlib.Path(sys.argv[1]).touch()\n    time.sleep(0.2)\nraise SystemExit(4)\n")
    t0 = time.monotonic()
    assert watch([sys.executable, "-c", child, str(beat)], _live(beat, TOLERANCE_S), tolerance=TOLERANCE_S,
                 check_every_s=0.25) == 4
    assert time.monotonic() - t0 >= 6.0  # checked a dozen times while it beat, never stopped
