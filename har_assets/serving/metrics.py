"""Prometheus metrics of the inference service (one registry per app, so apps never share counters).

With several worker processes (`har serve --workers N`) each worker writes its values to files in
$PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and /metrics shows the sum over all of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from har_assets.inference.predictor import LoadedModel

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# status code -> error kind (a handler may name a finer kind in scope["state"]["error_kind"])
ERROR_KINDS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 422: "validation", 503: "no_model"}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process's metrics go to $PROMETHEUS_MULTIPROC_DIR, to be summed with other workers'."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextmanager
def worker_metrics_dir() -> Iterator[Path]:
    """A new, empty, private folder in $PROMETHEUS_MULTIPROC_DIR for the worker processes started in the block
    (they inherit it), removed at its end. A folder set before is not used: files another server left there
    would add to the counts."""
    previous = os.environ.get(MULTIPROC_ENV)
    folder = Path(tempfile.mkdtemp(prefix="har-metrics-"))  # mode 0700
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous


class ServingMetrics:
    """Requests, latency, errors by kind, predicted windows per class, and the model version served.

    The model gauges are set when a model is swapped in (`show_model`). With several workers a gauge shows the
    highest value over the live workers: `har_model_info` is 1 for each version some worker serves (and, like
    in one process, 0 for one served before: a worker's file cannot drop a label set)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # where the metrics are registered; not what /metrics shows if
        # multiprocess(): that is a fresh registry collecting every worker's files
        self.exposed = self.registry
        if multiprocess():
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed)
        self._shown: tuple[str, str, str] | None = None  # model_info's labels of the model shown
        self.requests = Counter("har_http_requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("har_http_request_duration_seconds", "Request latency by endpoint.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("har_errors", "Failed requests by kind.", ["kind"], registry=self.registry)
        self.predictions = Counter("har_predicted_windows", "Windows predicted, by predicted class.",
                                   ["label"], registry=self.registry)
        self.model_info = Gauge("har_model_info", "The model version served (1 for the one served).",
                                ["name", "version", "alias"], registry=self.registry, multiprocess_mode="livemax")
        self.model_version = Gauge("har_model_version", "Version number of the model served (0: none).",
                                   registry=self.registry, multiprocess_mode="livemax")
        self.model_loaded_at = Gauge("har_model_loaded_timestamp_seconds", "When the served model was loaded.",
                                     registry=self.registry, multiprocess_mode="livemax")

    def count_predictions(self, labels: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self.predictions.labels(label=label).inc(n)

    def show_model(self, model: LoadedModel) -> None:
        """Set the model gauges to `model`, served from now on."""
        if self._shown is not None:
            self.model_info.labels(*self._shown).set(0)
        self._shown = (model.name, model.version, model.alias or "")
        self.model_info.labels(*self._shown).set(1)
        self.model_version.set(float(model.version) if model.version.isdigit() else 0)
        self.model_loaded_at.set(model.loaded_at)

    def close(self) -> None:
        """At the worker's exit: drop its live gauges from the sums (its counts stay in them)."""
        if multiprocess():
            mark_process_dead(os.getpid())

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.exposed)


class MetricsMiddleware:
    """Counts every request by its route template (not its raw path) and times it."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # the route template; plain Starlette routes (/docs, /openapi.json) set none, but a path answered
            # without an error matched one of those fixed routes, so the label set stays bounded
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or (scope["path"] if status < 400 else "unmatched")
            m = self.metrics
            m.requests.labels(endpoint=endpoint, method=scope["method"], status=str(status)).inc()
            m.latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)
            if status >= 400:
                kind = scope.get("state", {}).get("error_kind") or ERROR_KINDS.get(status)
                m.errors.labels(kind=kind or ("internal" if status >= 500 else f"http_{status}")).inc()
