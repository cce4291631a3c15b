"""The real compose stack for the tests: images built by scripts/images.sh, brought up by podman-compose, driven
through the published ports and `podman` itself, brought down with its volumes.

Podman is the engine (no Docker engine runs on these machines; the compose file is the same for both). Its
containers get limits this machine allows (scripts/podman-conf.sh). Podman without systemd runs no healthcheck by
itself: `healthy()` runs each service's own healthcheck command, as an engine would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from har_assets_tests.stack import BIN, ROOT

SERVICES = ("postgres", "mlflow", "code", "webserver", "daemon", "api")
PODMAN_COMPOSE = BIN / "podman-compose"


def missing_engine() -> str | None:
    """Why the compose stack cannot run here (None: it can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (.ci/run installs it from the OS packages)"
    if not PODMAN_COMPOSE.is_file():
        return "podman-compose is not installed (the dev extra)"
    if os.environ.get("HAR_BASE_IMAGE", "debootstrap") == "debootstrap" and shutil.which("debootstrap") is None:
        return "debootstrap is not installed and HAR_BASE_IMAGE names no base image"
    return None


@contextlib.contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record how long the block took as `phases[name]`, and print it."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        phases[name] = time.monotonic() - t0
        print(f"compose stack: {name}: {phases[name]:.1f} s", file=sys.stderr, flush=True)


def build_images(phases: dict[str, float]) -> dict[str, str]:
    """scripts/images.sh on the debootstrap base (or HAR_BASE_IMAGE); returns the environment podman needs."""
    env = os.environ | {"HAR_BASE_IMAGE": os.environ.get("HAR_BASE_IMAGE", "debootstrap"),
                        "PYTHON": sys.executable}
    with timed(phases, "images (scripts/images.sh)"):
        out = subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=1500)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("images.sh:")]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    for line in lines:
        print(line, file=sys.stderr)
    found = dict(line.removeprefix("images.sh: ").split("=", 1) for line in lines if "=" in line)
    podman_env = {k: v for k, v in found.items() if k == "CONTAINERS_CONF"}
    return {"postgres_image": found.get("POSTGRES_IMAGE", "postgres:16"), **podman_env}


@dataclass
class ComposeStack:
    project: str
    env_file: Path
    files: list[Path]
    podman_env: dict[str, str]
    logs: Path
    phases: dict[str, float] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        return os.environ | self.podman_env

    def compose(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
        files = [a for f in self.files for a in ("-f", str(f))]
        return subprocess.run([str(PODMAN_COMPOSE), "--env-file", str(self.env_file), "-p", self.project, *files,
                               *args], env=self._env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)

    def podman(self, *args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(["podman", *args], env=self._env(), capture_output=True, text=True, timeout=timeout_s)
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}")
        return out

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def up(self) -> None:
        out = self.compose("up", "-d")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    def down(self) -> None:
        self.save_logs()
        self.compose("down", "-v", "-t", "20")

    def healthy(self, service: str) -> bool:
        """The service's own compose healthcheck passes now (run as an engine runs it)."""
        return self.podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def restart_count(self, service: str) -> int:
        return int(self.podman("inspect", "--format", "{{.RestartCount}}", self.container(service)).stdout.strip())

    def state(self, service: str) -> dict:
        return json.loads(self.podman("inspect", "--format", "{{json .State}}", self.container(service)).stdout)

    def exec_python(self, service: str, code: str) -> str:
        return self.podman("exec", self.container(service), "python", "-c", code).stdout

    def log(self, service: str, tail: int = 80) -> str:
        out = self.podman("logs", "--tail", str(tail), self.container(service), check=False)
        return out.stdout + out.stderr

    def tails(self, services: tuple[str, ...] = SERVICES) -> str:
        return "\n".join(f"--- {s} ---\n{self.log(s)}" for s in services)

    def save_logs(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for s in SERVICES:
            (self.logs / f"{self.project}-{s}.log").write_text(self.log(s, tail=5000))

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 3.0) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except Exception as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval_s)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}\n{self.tails()}")


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path
