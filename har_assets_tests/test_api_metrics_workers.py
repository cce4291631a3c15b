"""/metrics of the real server with several workers (`har serve --workers 2`): every scrape, whichever worker
answers it, reports the requests of all workers (prometheus-client's multiprocess mode, over a private folder
that `har serve` creates in $TMPDIR and removes when it exits); a worker that stops takes its live gauges along
but not its counts."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from har_assets.config import PreprocessConfig
from har_assets.serving.schemas import example_predict_payload
from har_assets_tests.apiserver import serving
from har_assets_tests.modelstore import MODEL_NAME
from har_assets_tests.stack import client, wait_until

WORKERS = 2
REQUESTS = 40
CLIENTS = 4  # concurrent clients, each request on a new connection: the kernel hands them to both workers
SCRAPES = 8
PREDICT = ("/predict", "POST", "200")


def predict(base: str, body: dict) -> int:
    """Windows predicted by one /predict on a connection of its own."""
    with client() as c:
        r = c.post(f"{base}/predict", json=body)
    assert r.status_code == 200, r.text[:300]
    return len(r.json()["windows"])


def scrape(base: str) -> dict[str, list]:
    """Samples of one /metrics scrape on a connection of its own, by sample name."""
    with client() as c:
        r = c.get(f"{base}/metrics")
    assert r.status_code == 200, r.text[:300]
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found.setdefault(s.name, []).append(s)
    return found


def check_scrape(base: str, predicted: int, windows: int) -> None:
    """One scrape counts all `predicted` /predict requests and their `windows`, and shows the model served."""
    found = scrape(base)
    requests = {(s.labels["endpoint"], s.labels["method"], s.labels["status"]): s.value
                for s in found["har_http_requests_total"]}
    assert requests[PREDICT] == predicted and sum(v for k, v in requests.items() if k[0] == "/predict") == predicted
    latency = {s.labels["endpoint"]: s.value for s in found["har_http_request_duration_seconds_count"]}
    assert latency["/predict"] == predicted
    assert sum(s.value for s in found["har_predicted_windows_total"]) == windows
    assert [(s.labels, s.value) for s in found["har_model_info"]] == [
        ({"name": MODEL_NAME, "version": "1", "alias": "champion"}, 1.0)]
    assert [s.value for s in found["har_model_version"]] == [1.0]
    assert found["har_model_loaded_timestamp_seconds"][0].value > 0


def worker_pids(folder: Path) -> set[str]:
    """The processes whose live gauges are in the folder (files `gauge_live<mode>_<pid>.db`)."""
    return {f.stem.rsplit("_", 1)[1] for f in folder.glob("gauge_live*_*.db")}


def file_samples(path: Path, name: str) -> list:
    """The samples named `name` in one worker's metrics file."""
    return [s for metric in MultiProcessCollector.merge([str(path)]) for s in metric.samples if s.name == name]


def predict_count(folder: Path, pid: str) -> float:
    """The /predict requests worker `pid` counted."""
    return sum(s.value for s in file_samples(folder / f"counter_{pid}.db", "har_http_requests_total")
               if s.labels["endpoint"] == "/predict")


def loaded_version(folder: Path, pid: str) -> float:
    """The version worker `pid` has loaded (0: none yet)."""
    return sum(s.value for s in file_samples(folder / f"gauge_livemax_{pid}.db", "har_model_version"))


def exited(pid: int) -> Callable[[], os.waitid_result | None]:
    """How the child `pid` ended, once it has (left unreaped: its Popen still waits for it)."""
    return lambda: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)


def predict_all(base: str, body: dict) -> int:
    """REQUESTS /predict requests from CLIENTS concurrent clients; the windows predicted."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        return sum(pool.map(lambda _: predict(base, body), range(REQUESTS)))


def test_every_scrape_counts_all_workers_and_the_metrics_folder_goes_with_the_server(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    body = example_predict_payload(PreprocessConfig())
    with serving(tmp_path_factory, "api-metrics-workers", "--workers", str(WORKERS), TMPDIR=str(tmp_path)) as (
            base, pid):
        windows = predict_all(base, body)
        for _ in range(SCRAPES):
            check_scrape(base, REQUESTS, windows)

        [folder] = tmp_path.glob("har-metrics-*")
        assert folder.stat().st_mode & 0o777 == 0o700
        pids = worker_pids(folder)
        assert len(pids) == WORKERS, sorted(p.name for p in folder.iterdir())
        by_worker = [predict_count(folder, p) for p in sorted(pids)]
        assert sum(by_worker) == REQUESTS and 0 not in by_worker, by_worker  # no worker alone saw them all

        stopped = min(pids)
        os.kill(int(stopped), signal.SIGTERM)  # uvicorn starts a new worker in its place
        wait_until("the stopped worker's live gauges to be marked dead, and a new worker",
                   lambda: stopped not in worker_pids(folder) and len(worker_pids(folder)) == WORKERS, 120)
        assert predict_count(folder, stopped) == by_worker[sorted(pids).index(stopped)]  # its counts still count
        [new] = worker_pids(folder) - pids
        wait_until("the new worker to load the model", lambda: loaded_version(folder, new) == 1, 120)
        windows += predict_all(base, body)
        for _ in range(SCRAPES):
            check_scrape(base, 2 * REQUESTS, windows)

        os.kill(pid, signal.SIGTERM)
        ended = wait_until("har serve to exit", exited(pid), 60)
        assert (ended.si_code, ended.si_status) == (os.CLD_EXITED, 0)
        assert not folder.exists() and not list(tmp_path.glob("har-metrics-*"))
