"""Helpers for the tests that run the real services as processes on 127.0.0.1: free ports, process
groups that are always torn down, HTTP/GraphQL polling with deadlines, throw-away PostgreSQL
databases, and the folder test artifacts (logs, screenshots) are written to.

Every process is started in its own session, so stopping it signals its whole process group (the
Dagster code server's and daemon's run workers included) and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
PG = {"host": os.environ.get("HAR_TEST_PG_HOST", LOOPBACK), "port": os.environ.get("HAR_TEST_PG_PORT", "5432"),
      "user": os.environ.get("HAR_TEST_PG_USER", "postgres")}
REPOSITORY = "__repository__"  # dagster's SINGLETON_REPOSITORY_NAME
LOCATION = "har_assets"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """`$HAR_TEST_ARTIFACTS/<name>` (kept after the run, e.g. for CI), else a pytest temporary folder."""
    base = os.environ.get("HAR_TEST_ARTIFACTS")
    path = Path(base) / name if base else tmp_path_factory.mktemp(f"artifacts-{name}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process, without settings that would point it elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DAGSTER_HOME", "HAR_HOME"}
           and not k.startswith("DAGSTER_POSTGRES_")}
    env |= {"NO_PROXY": f"{LOOPBACK},localhost", "no_proxy": f"{LOOPBACK},localhost", "PYTHONUNBUFFERED": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1", "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "1"}
    return env | extra


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(lines[-n:])


@dataclass
class Processes:
    """Services started by one test; `stop()` ends each one's process group (TERM, then KILL)."""

    log_dir: Path
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: Mapping[str, str], cwd: Path | None = None) -> Service:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def check_alive(self) -> None:
        for s in self.services:
            if s.proc.poll() is not None:
                raise AssertionError(f"{s.name} exited with {s.proc.returncode}\n{s.tail()}")

    def tails(self) -> str:
        return "\n".join(s.tail() for s in self.services)

    def stop(self, grace_s: float = 20.0) -> None:
        for s in reversed(self.services):
            _signal_group(s.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for s in reversed(self.services):
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for s in self.services:
            _signal_group(s.proc, signal.SIGKILL)  # the group: children outliving a clean exit go too
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=10)
            _wait_group_gone(s.proc)


def _wait_group_gone(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Until no process of the group is left: a killed child (e.g. the server `mlflow models serve` starts) may still
    hold its listening socket for a moment after the signal is sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the child's pid


@contextlib.contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    procs = Processes(log_dir)
    try:
        yield procs
    finally:
        procs.stop()


def client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30.0)  # no proxy: traffic stays on 127.0.0.1


def wait_until(what: str, check: Callable[[], Any], timeout_s: float, procs: Processes | None = None,
               interval_s: float = 1.0) -> Any:
    """Call `check` until it returns something truthy; fail with the services' logs after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if procs is not None:
            procs.check_alive()
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}\n"
                         + (procs.tails() if procs else ""))


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        with client() as c:
            return c.get(url, timeout=5.0).status_code == 200
    return check


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    with client() as c:
        response = c.post(url, json={"query": query, "variables": variables or {}})
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


# ------------------------------------------------------------------------------------------ PostgreSQL


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", "postgres",
                           "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, text=True,
                          timeout=60)


@contextlib.contextmanager
def postgres_databases(*purposes: str) -> Iterator[dict[str, str]]:
    """Fresh databases on the local server, one per purpose, dropped afterwards; skips without a server."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed, so no PostgreSQL server can be reached")
    names = {p: f"har_test_{p}_{uuid.uuid4().hex[:8]}" for p in purposes}
    created: list[str] = []
    try:
        for name in names.values():
            try:
                _psql(f"CREATE DATABASE {name}")
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"no PostgreSQL server reachable at {PG['host']}:{PG['port']} as {PG['user']}: "
                            f"{exc.stderr.strip()}")
            created.append(name)
        yield names
    finally:
        for name in created:
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_url(db: str, driver: str = "postgresql") -> str:
    return f"{driver}://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def dagster_postgres_env(db: str) -> dict[str, str]:
    """The DAGSTER_POSTGRES_* settings the repo's dagster.yaml reads."""
    return {"DAGSTER_POSTGRES_HOST": PG["host"], "DAGSTER_POSTGRES_PORT": PG["port"],
            "DAGSTER_POSTGRES_USER": PG["user"], "DAGSTER_POSTGRES_PASSWORD": "", "DAGSTER_POSTGRES_DB": db}
