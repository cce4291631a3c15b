"""A worker's queue is bounded: on the real server (`har serve`, one worker, HAR_MAX_QUEUED=1), a burst of the
largest valid /predict requests gets 200 or, once one computes and one waits, 503 `overloaded` with Retry-After;
afterwards the server answers 200 again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from har_assets.serving.schemas import EXAMPLE_START_MS
from har_assets_tests.apiserver import serving

BURST = 12  # concurrent requests; with one computing and one waiting, the others find the queue full
BURSTS = 5  # bursts tried until one overflows (a busy machine computes slower, which overflows sooner)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory, "api-overload", HAR_MAX_QUEUED="1") as found:
        yield found


def largest_predict(samples: int = 90_000) -> bytes:
    """A valid /predict body at the default sample limit (15 min at 100 Hz): ~0.2 s of preprocessing per request."""
    t = EXAMPLE_START_MS + np.arange(samples) * 10.0
    wave = np.round(300 * np.sin(np.arange(samples) / 20.0), 1)

    def sensor(offset: float, unit: str, base: float) -> dict:
        return {"timestamps_ms": (t + offset).tolist(), "x": wave.tolist(), "y": (wave / 2).tolist(),
                "z": (wave / 4 + base).tolist(), "unit": unit}

    return json.dumps({"accelerometer": sensor(0, "milli-g", 980.0), "gyroscope": sensor(3, "deg/s", 0.0)}).encode()


async def burst(base: str, body: bytes) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=120, limits=limits) as c:
        return await asyncio.gather(*(c.post("/predict", content=body, headers={"content-type": "application/json"})
                                      for _ in range(BURST)))


def test_a_full_queue_answers_503_with_retry_after_and_the_server_recovers(server: tuple[str, int]) -> None:
    base, _ = server
    body = largest_predict()
    for _ in range(BURSTS):
        responses = asyncio.run(burst(base, body))
        assert {r.status_code for r in responses} <= {200, 503}, [r.text[:300] for r in responses]
        refused = [r for r in responses if r.status_code == 503]
        if refused:
            break
    assert refused, f"{BURSTS} bursts of {BURST} never filled a queue of 1"
    assert any(r.status_code == 200 for r in responses)  # the first ones computed
    for r in refused:
        error = r.json()
        assert r.headers["retry-after"] == "1"
        assert set(error) == {"detail", "kind", "error_count", "errors"} and error["kind"] == "overloaded", error
        assert "HAR_MAX_QUEUED" in error["detail"] and error["errors"][0]["type"] == "overloaded"
    with httpx.Client(base_url=base, trust_env=False, timeout=120) as c:  # the burst is over: served again
        again = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert again.status_code == 200 and again.json()["windows"], again.text[:300]
        metrics = {s.labels.get("kind"): s.value for f in text_string_to_metric_families(c.get("/metrics").text)
                   for s in f.samples if s.name == "har_errors_total"}
        assert metrics.get("overloaded", 0) >= len(refused)
