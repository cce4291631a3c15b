"""`har serve` as a real process on 127.0.0.1, serving a tiny champion trained in a second on generated data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from har_assets.config import PreprocessConfig
from har_assets.raw.reader import read_participant
from har_assets_tests.modelstore import ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant
from har_assets_tests.stack import BIN, LOOPBACK, artifacts_dir, base_env, free_port, http_ok, processes, wait_until


@contextlib.contextmanager
def serving(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str, **env: str
            ) -> Iterator[tuple[str, int]]:
    """(base URL, server pid) of `har serve` with the production defaults (and `args`, `env`) until the block
    ends."""
    cfg = PreprocessConfig()
    folder: Path = tmp_path_factory.mktemp(name)
    recs = [read_participant(write_participant(folder / "raw" / p, seconds=s), cfg) for p, s in (("p01", 30),
                                                                                              ("p02", 25))]
    store = ModelStore(folder / "mlflow")
    bundle, X = train_bundle(recs, cfg)
    store.register(bundle, X, {"macro_f1": 0.5})
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with processes(artifacts_dir(tmp_path_factory, name)) as procs:
        service = procs.start("har-serve", [str(BIN / "har"), "serve", "--host", LOOPBACK, "--port", str(port),
                                            "--tracking-uri", store.uri, "--poll-seconds", "0", *args], base_env(**env))
        wait_until("har serve to be ready", http_ok(f"{base}/ready"), 120, procs, interval_s=0.5)
        yield base, service.proc.pid
