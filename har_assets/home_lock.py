"""One command at a time per home: `har pipeline` and `har dev` hold `$HAR_HOME/.har.lock` while they run.

The lock is an flock on that file, so it dies with its holder's process whatever the way it ends (SIGKILL
included); the file also records the holder (pid, purpose, host, start time) for the message a second
command gets. `har dev` keeps the lock across `os.execv` into `dagster dev`: with `keep_across_exec=True`
the descriptor is inheritable, so the exec'd program (same pid) holds the open lock until it exits; the
processes it starts with `subprocess` do not inherit it (close_fds), so the lock never outlives it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".har.lock"


class HomeBusy(RuntimeError):
    """Another process holds the home; the message names it and what to do."""


@contextmanager
def hold_home(root: Path, purpose: str, *, keep_across_exec: bool = False) -> Iterator[None]:
    """Hold `root`'s lock (non-blocking) for the block, recording who holds it; HomeBusy if another process does."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeBusy(_busy_message(root, fd, purpose)) from None
        holder = {"pid": os.getpid(), "purpose": purpose, "host": socket.gethostname(),
                  "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        os.set_inheritable(fd, keep_across_exec)
        yield
    finally:
        os.close(fd)


def _busy_message(root: Path, fd: int, purpose: str) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
    except ValueError:  # the holder has locked but not yet written its record
        return f"{root} is in use by another har command that is just starting: let it finish before {purpose}"
    return (f"{root} is in use by {holder['purpose']} (pid {holder['pid']} on {holder['host']}, started "
            f"{holder['started']}): let it finish, or stop it (Ctrl-C in its terminal, or `kill {holder['pid']}`), "
            f"then run {purpose} again")
