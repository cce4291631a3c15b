"""The stores are created whole: the local MLflow store survives a kill while it is created and names the command
that mends a broken one, one command holds a home at a time, the champion alias moves only from the champion
compared against, and an object-store write cut part-way leaves the previous object."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
from botocore.exceptions import BotoCoreError
from mlflow import MlflowClient
from upath import UPath

from har_assets.home_lock import LOCK_FILE, HomeBusy, hold_home
from har_assets.ml.mlflow_store import MlflowStoreError, ensure_local_store
from har_assets.objectstore import write_atomically
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.registry import move_alias_if_unchanged
from har_assets_tests.objectstore_server import ACCESS_KEY, SECRET_KEY, S3Server, seaweedfs

MID_MIGRATION = 100 * 1024  # bytes: a store being created has some tables (a whole one is ~950 KB)


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, text=True)


def _kill_when_grown(proc: subprocess.Popen, folder: Path, pattern: str) -> None:
    """SIGKILL `proc` as soon as a file matching `pattern` in `folder` has reached MID_MIGRATION bytes."""
    deadline = time.monotonic() + 300  # a guard against hanging, not an assertion
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if any(f.stat().st_size >= MID_MIGRATION for f in folder.glob(pattern)):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL, "the process ended before it could be killed mid-migration"


def _client(db: Path) -> MlflowClient:
    uri = f"sqlite:///{db}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _run_mend(exc: pytest.ExceptionInfo[MlflowStoreError]) -> None:
    """Run the command the message ends with."""
    command = str(exc.value).rsplit(": ", 1)[1]
    subprocess.run(shlex.split(command), check=True, capture_output=True)


def test_store_killed_while_created_leaves_no_store_and_the_next_run_creates_it(tmp_path: Path) -> None:
    db = tmp_path / "mlflow" / "mlflow.db"
    creator = _python("""
        import sys
        from pathlib import Path
        from har_assets.ml.mlflow_store import ensure_local_store
        ensure_local_store(Path(sys.argv[1]))
        """, str(db))
    _kill_when_grown(creator, db.parent, ".mlflow.db.*.creating")
    assert not db.exists(), "a killed creation must leave no store, not a half-migrated one"
    assert list(db.parent.glob(".mlflow.db.*.creating"))

    client = MlflowTracking(tracking_uri=f"sqlite:///{db}").client()  # activate() creates a missing store whole
    assert list(db.parent.glob("*.creating*")) == [], "the killed attempt's temporary file is cleaned"
    ensure_local_store(db)  # whole
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri()))
    client.log_metric(run.info.run_id, "m", 1.0)
    assert _client(db).get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_store_half_created_by_mlflow_names_the_file_and_the_move_that_mends_it(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    creator = _python("""
        import sys
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        SqlAlchemyStore("sqlite:///" + sys.argv[1], sys.argv[2])
        """, str(db), (tmp_path / "art").as_uri())  # MLflow's own creation, as before ensure_local_store
    _kill_when_grown(creator, tmp_path, "mlflow.db")

    with pytest.raises(MlflowStoreError) as exc:
        ensure_local_store(db)
    assert f"{db} is a half-created MLflow store" in str(exc.value)
    assert str(exc.value).endswith(f"mv {db} {db}.broken")
    _run_mend(exc)
    ensure_local_store(db)
    assert [e.name for e in _client(db).search_experiments()] == ["Default"]
    assert (tmp_path / "mlflow.db.broken").is_file()


def test_store_with_an_older_schema_names_the_upgrade_that_mends_it(tmp_path: Path) -> None:
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config

    db = tmp_path / "mlflow.db"
    ensure_local_store(db)
    client = _client(db)
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri()))
    client.log_metric(run.info.run_id, "m", 0.5)
    command.downgrade(_get_alembic_config(f"sqlite:///{db}"), "-1")  # the schema an older MLflow left

    with pytest.raises(MlflowStoreError) as exc:
        ensure_local_store(db)
    assert f"{db} is an MLflow store with an older schema" in str(exc.value)
    assert str(exc.value).endswith(f"-m mlflow db upgrade sqlite:///{db}")
    _run_mend(exc)
    ensure_local_store(db)
    assert _client(db).get_run(run.info.run_id).data.metrics == {"m": 0.5}


def test_store_that_is_not_sqlite_or_from_a_newer_mlflow_is_named(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database " * 100)
    with pytest.raises(MlflowStoreError, match="is not an SQLite database") as exc:
        ensure_local_store(garbage)
    assert str(exc.value).endswith(f"mv {garbage} {garbage}.broken")

    newer = tmp_path / "newer.db"
    ensure_local_store(newer)
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with pytest.raises(MlflowStoreError, match=r"this MLflow does not know \(schema revision ffffffffffff,"):
        ensure_local_store(newer)


def test_second_holder_of_a_home_is_refused_until_the_first_is_killed(tmp_path: Path) -> None:
    holder = _python("""
        import sys, time
        from pathlib import Path
        from har_assets.home_lock import hold_home
        with hold_home(Path(sys.argv[1]), "har pipeline"):
            print("held", flush=True)
            time.sleep(600)
        """, str(tmp_path))
    try:
        assert holder.stdout.readline() == "held\n"
        started = json.loads((tmp_path / LOCK_FILE).read_text())["started"]
        with pytest.raises(HomeBusy) as exc, hold_home(tmp_path, "har dev"):
            pass
        assert f"{tmp_path} is in use by har pipeline (pid {holder.pid} on " in str(exc.value)
        assert f"started {started}" in str(exc.value) and f"`kill {holder.pid}`" in str(exc.value)
        assert str(exc.value).endswith("then run har dev again")
    finally:
        holder.kill()
        holder.wait()
    with hold_home(tmp_path, "har dev"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("keep", [True, False])
def test_home_lock_is_kept_across_exec_only_when_asked(tmp_path: Path, keep: bool) -> None:
    holder = _python("""
        import os, sys
        from pathlib import Path
        from har_assets.home_lock import hold_home
        with hold_home(Path(sys.argv[1]), "har dev", keep_across_exec=sys.argv[2] == "True"):
            os.execv(sys.executable, [sys.executable, "-c", "import time; print('exec', flush=True); time.sleep(600)"])
        """, str(tmp_path), str(keep))
    try:
        assert holder.stdout.readline() == "exec\n"
        if keep:
            with pytest.raises(HomeBusy, match=f"in use by har dev \\(pid {holder.pid} "), hold_home(tmp_path, "x"):
                pass
        else:
            with hold_home(tmp_path, "har pipeline"):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_alias_moves_only_if_it_still_points_at_the_champion_compared_against(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    ensure_local_store(db)
    evaluator, other = _client(db), _client(db)  # two registrars on one store
    for name in ("har", "new"):
        evaluator.create_registered_model(name)
        for i in range(3):
            evaluator.create_model_version(name, (tmp_path / f"{name}{i}").as_uri())
    evaluator.set_registered_model_alias("har", "champion", "1")

    other.set_registered_model_alias("har", "champion", "2")  # between the evaluator's compare (v1) and its set
    assert move_alias_if_unchanged(evaluator, "har", "champion", "3", compared="1") == (False, "2")
    assert evaluator.get_model_version_by_alias("har", "champion").version == 2
    assert move_alias_if_unchanged(evaluator, "har", "champion", "3", compared="2") == (True, "3")
    assert evaluator.get_model_version_by_alias("har", "champion").version == 3

    other.set_registered_model_alias("new", "champion", "1")  # a champion appeared where none was compared
    assert move_alias_if_unchanged(evaluator, "new", "champion", "2", compared=None) == (False, "1")
    assert evaluator.get_model_version_by_alias("new", "champion").version == 1


class CuttingProxy:
    """A loopback TCP proxy to `port` that resets every connection on which the client sends more than `budget`
    bytes, as a network failure does to a large upload; smaller requests (create, abort, list) pass."""

    def __init__(self, port: int, budget: int) -> None:
        self.upstream, self.budget, self.cuts = port, budget, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client, server, self.budget), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(1 << 16):
                if budget is not None and sent + len(data) > budget:
                    dst.sendall(data[:budget - sent])
                    self.cuts += 1
                    src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, s3fs.S3FileSystem]]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        fs = s3fs.S3FileSystem(endpoint_url=server.endpoint, key=ACCESS_KEY, secret=SECRET_KEY,
                               skip_instance_cache=True)
        for _ in range(100):  # `weed mini` creates the bucket just after it starts serving
            if fs.exists(server.bucket):
                break
            time.sleep(0.2)
        yield server, fs


@pytest.mark.parametrize("mib", [3, 101], ids=["single-put", "multipart"])  # multipart from 2 x 50 MiB
def test_object_write_cut_part_way_leaves_the_previous_object(s3: tuple[S3Server, s3fs.S3FileSystem],
                                                              mib: int) -> None:
    server, fs = s3
    key = f"{server.bucket}/cut{mib}/windows/p01.npz"
    fs.pipe_file(key, b"previous version " * 1000)
    before = fs.info(key)["ETag"]
    data = os.urandom(1 << 20) * mib
    proxy = CuttingProxy(int(server.endpoint.rsplit(":", 1)[1]), budget=1 << 20)
    try:
        path = UPath(f"s3://{key}", endpoint_url=proxy.endpoint, key=ACCESS_KEY, secret=SECRET_KEY,
                     skip_instance_cache=True, config_kwargs={"retries": {"total_max_attempts": 1}})
        with pytest.raises(BotoCoreError):
            write_atomically(path, data)
    finally:
        proxy.close()
    assert proxy.cuts > 0

    fs.invalidate_cache()
    assert fs.find(f"{server.bucket}/cut{mib}") == [key]
    assert fs.info(key)["ETag"] == before and fs.cat(key) == b"previous version " * 1000
    uploads = fs.call_s3("list_multipart_uploads", Bucket=server.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"].startswith(f"cut{mib}/")] == [], "an uncompleted upload was left behind"

    write_atomically(UPath(f"s3://{key}", endpoint_url=server.endpoint, key=ACCESS_KEY, secret=SECRET_KEY), data)
    fs.invalidate_cache()
    assert fs.cat(key) == data  # without the fault the same write stores the new value whole
    fs.rm(key)  # a stored 100 MiB object makes `weed` take over 20 s to stop
