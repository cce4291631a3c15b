"""The inference API over HTTP (TestClient) with real models in a temporary MLflow registry."""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from har_assets.config import PreprocessConfig
from har_assets.home import HarHome
from har_assets.inference.predictor import Predictor
from har_assets.ml.inference_bundle import InferenceBundle
from har_assets.ml.mlflow_model import DIGEST_TAG
from har_assets.raw.reader import read_participant
from har_assets.serving.api import create_app
from har_assets.serving.settings import ServeSettings
from har_assets_tests.modelstore import MODEL_NAME, ModelStore, train_bundle
from har_assets_tests.rawfiles import write_participant

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two tiny models (different seeds) trained on two generated participants."""
    raw = tmp_path_factory.mktemp("raw")
    recs = [read_participant(write_participant(raw / pid, seconds=s), CFG) for pid, s in (("p01", 30), ("p02", 25))]
    first, X = train_bundle(recs, CFG, seed=0)
    second, _ = train_bundle(recs, CFG, seed=1, epochs=3)
    return {"first": first, "second": second, "X": X}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, models: dict) -> ModelStore:
    """Registry with version 1 of MODEL_NAME as champion."""
    store = ModelStore(tmp_path_factory.mktemp("mlflow"))
    store.register(models["first"], models["X"], {"macro_f1": 0.61, "accuracy": 0.7})
    return store


def settings_for(store: ModelStore, **overrides) -> ServeSettings:
    return ServeSettings(tracking_uri=store.uri, poll_seconds=0, **overrides)


@pytest.fixture(scope="module")
def client(store: ModelStore) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(store))) as c:
        yield c


@pytest.fixture(scope="module")
def example(client: TestClient) -> dict:
    """The /predict example exactly as /docs shows it."""
    schema = client.get("/openapi.json").json()
    return schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"][
        "example"]["value"]


def windows_example(client: TestClient) -> dict:
    schema = client.get("/openapi.json").json()
    return schema["components"]["schemas"]["WindowsRequest"]["examples"][0]


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        assert urls and all(u.startswith("/") for u in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url
    assert "SwaggerUIBundle" in client.get("/docs").text


def test_docs_examples_work_when_pasted(client: TestClient, example: dict, models: dict) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["PredictRequest"]["examples"][0] == example
    acc = example["accelerometer"]
    assert (acc["timestamps_ms"][-1] - acc["timestamps_ms"][0]) >= 4200 and example["gyroscope"]["unit"] == "deg/s"

    r = client.post("/predict", json=example)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": MODEL_NAME, "version": "1", "alias": "champion"}
    assert body["classes"] == models["first"].classes and len(body["windows"]) == 1
    w = body["windows"][0]
    assert w["end_ms"] - w["start_ms"] == pytest.approx(199 * 20)
    assert set(w["probabilities"]) == set(body["classes"])
    assert sum(w["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert w["label"] == max(w["probabilities"], key=w["probabilities"].get)
    assert w["confidence"] == pytest.approx(max(w["probabilities"].values()))

    windows = windows_example(client)
    assert np.asarray(windows["windows"]).shape == (1, CFG.window_size, len(CFG.channels))
    r = client.post("/predict/windows", json=windows)
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["labels"] == [w["label"]]
    # the example window is /predict's window rounded to 5 decimals: same probabilities to float tolerance
    assert batch["probabilities"][0] == pytest.approx([w["probabilities"][c] for c in batch["classes"]], abs=1e-3)


def test_predict_matches_the_bundle(client: TestClient, models: dict, tmp_path: Path) -> None:
    """/predict on a participant's raw samples = preprocess + bundle.predict_windows in-process."""
    folder = write_participant(tmp_path / "p09", seconds=20)
    watch = read_participant(folder, PreprocessConfig(accel_unit="m/s^2", gyro_unit="rad/s"))  # file numbers as is
    payload = {sensor: {"timestamps_ms": frame["t_ms"].to_list(), "x": frame["x"].to_list(),
                        "y": frame["y"].to_list(), "z": frame["z"].to_list(), "unit": unit}
               for sensor, frame, unit in (("accelerometer", watch.accel, "milli-g"),
                                           ("gyroscope", watch.gyro, "deg/s"))}
    r = client.post("/predict", json=payload)
    assert r.status_code == 200, r.text
    from har_assets.signal.pipeline import preprocess

    ws, _ = preprocess(read_participant(folder, CFG), CFG)
    expected = models["first"].predict_windows(ws.X)
    got = np.array([[w["probabilities"][c] for c in r.json()["classes"]] for w in r.json()["windows"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert [w["start_ms"] for w in r.json()["windows"]] == ws.start_ms.tolist()
    assert r.json()["class_shares"] == pytest.approx(
        {c: float(np.mean(expected.argmax(1) == i)) for i, c in enumerate(r.json()["classes"])})


def test_status_and_model_endpoints(client: TestClient, models: dict) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model"]["version"] == "1"
    info = client.get("/model").json()
    assert info["name"] == MODEL_NAME and info["alias"] == "champion" and info["version"] == "1"
    assert info["metrics"] == {"macro_f1": 0.61, "accuracy": 0.7}
    assert info["classes"] == models["first"].classes
    assert info["preprocess_config"] == CFG.model_dump(mode="json")
    assert info["channels"] == list(CFG.channels) and info["window_size"] == 200
    assert info["runtime"] == "onnxruntime" and info["runtime_note"] is None  # the bundle's own graph


def _sensor(example: dict, sensor: str, **changes) -> dict:
    body = copy.deepcopy(example)
    body[sensor].update(changes)
    return body


def bad_inputs(example: dict) -> list[tuple[str, dict | str, int, str]]:
    """(case, body, expected status, text the response must contain)."""
    acc = example["accelerometer"]
    n = len(acc["x"])
    t = acc["timestamps_ms"]
    nan_body = json.dumps(example).replace(f'"x": [{acc["x"][0]}', '"x": [NaN', 1)
    inf_body = json.dumps(example).replace(f'"z": [{acc["z"][0]}', '"z": [Infinity', 1)
    gap = [v + (5000 if i >= n // 2 else 0) for i, v in enumerate(t)]
    return [
        ("NaN value", nan_body, 422, "body.accelerometer.x[0]"),
        ("infinite value", inf_body, 422, "body.accelerometer.z[0]"),
        ("mismatched lengths", _sensor(example, "accelerometer", y=acc["y"][:-1]), 422,
         f"y has {n - 1} values but timestamps_ms has {n}"),
        ("unsorted timestamps", _sensor(example, "gyroscope", timestamps_ms=[*t[:5], t[6], t[5], *t[7:]]), 422,
         "body.gyroscope.timestamps_ms"),
        ("duplicated timestamps", _sensor(example, "accelerometer", timestamps_ms=[*t[:5], t[4], *t[6:]]), 422,
         "duplicated timestamp"),
        ("too short for one window", {s: {k: (v[:250] if isinstance(v, list) else v) for k, v in example[s].items()}
                                      for s in example}, 422, "too short for one window"),
        ("sensors do not overlap", _sensor(example, "gyroscope", timestamps_ms=[v + 60_000 for v in t]), 422,
         "too short for one window"),
        ("gap leaves no window", _sensor(_sensor(example, "accelerometer", timestamps_ms=gap), "gyroscope",
                                         timestamps_ms=gap), 422, "no segment is long enough"),
        ("unknown unit", _sensor(example, "accelerometer", unit="furlongs/s^2"), 422, "body.accelerometer.unit"),
        ("string value", _sensor(example, "gyroscope", x=["1.0", *example["gyroscope"]["x"][1:]]), 422,
         "body.gyroscope.x[0]"),
        ("missing sensor", {"accelerometer": acc}, 422, "body.gyroscope"),
        ("unknown field", {**example, "magnetometer": {}}, 422, "body.magnetometer"),
        ("absurd value", _sensor(example, "accelerometer", x=[1e300] * n), 422, "body.accelerometer.x[0]"),
        ("wrong shape", _sensor(example, "accelerometer", x=[[1.0, 2.0]] * n), 422, "body.accelerometer.x[0]"),
        ("single sample", _sensor(example, "accelerometer", timestamps_ms=t[:1], x=[1.0], y=[1.0], z=[1.0]), 422,
         "body.accelerometer.timestamps_ms"),
        ("not JSON", "{accelerometer: [", 400, "key must be a string at line 1 column 2"),
    ]


def described(r) -> str:
    """An error response's sentence and the fields it names."""
    body = r.json()
    assert set(body) == {"detail", "kind", "error_count", "errors"} and body["error_count"] >= len(body["errors"])
    return " ".join([body["detail"], *(e["field"] or "" for e in body["errors"])])


def test_every_bad_input_gets_a_4xx_naming_the_problem(client: TestClient, example: dict) -> None:
    for case, body, status, text in bad_inputs(example):
        r = (client.post("/predict", content=body, headers={"content-type": "application/json"})
             if isinstance(body, str) else client.post("/predict", json=body))
        assert r.status_code == status, f"{case}: {r.status_code} {r.text[:300]}"
        assert text in described(r), f"{case}: {r.json()}"


def test_bad_windows(client: TestClient) -> None:
    good = windows_example(client)["windows"][0]
    n = len(CFG.channels)
    cases = [
        ({"windows": []}, 422, "body.windows"),
        ({"windows": [good[:150]]}, 422, "window 0 has 150 samples; the model takes 200"),
        ({"windows": [good, [row[:-1] for row in good]]}, 422,
         f"sample 0 of window 1 has {n - 1} channels; the model takes {n}"),
        ({"windows": good}, 422, "window 0 has 6 samples"),  # (window, channels): one dimension short
        ({"windows": [[[*good[0][:-1], "1.5"], *good[1:]]]}, 422, f"body.windows[0][0][{n - 1}]"),
        ({"windows": [[[*good[0][:-1], 1e7], *good[1:]]]}, 422, f"body.windows[0][0][{n - 1}]"),
        ({"windows": [good], "model": "x"}, 422, "body.model"),
        ({"windows": [[[*good[0][:-1], float("nan")], *good[1:]]]}, 400,  # NaN is not JSON
         "not valid JSON: Invalid JSON: expected value at line 1 column"),
    ]
    for body, status, text in cases:
        content = json.dumps(body)  # NaN written as the JSON extension NaN
        r = client.post("/predict/windows", content=content, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text[:300]
        assert text in described(r), r.json()


def test_size_limits(store: ModelStore, example: dict) -> None:
    settings = settings_for(store, max_body_bytes=20_000, max_samples=400)
    with TestClient(create_app(settings)) as small:
        r = small.post("/predict", json=example)  # ~31 kB of JSON
        assert r.status_code == 413 and "exceeds the limit of 20000 bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            data = json.dumps(example).encode()
            yield from (data[i:i + 4096] for i in range(0, len(data), 4096))

        r = small.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["errors"][0]["field"] == "body"
    with TestClient(create_app(settings_for(store, max_samples=400, max_windows=2))) as few:
        r = few.post("/predict", json=example)  # 8 lists of 430: refused by counting, before parsing
        assert r.status_code == 413 and r.json()["errors"][0]["field"] == "body"
        assert "values or more; at most 3216 are accepted (8 lists of at most 400 samples" in r.json()["detail"]
        window = windows_example(few)["windows"][0]
        r = few.post("/predict/windows", json={"windows": [window] * 3})
        assert r.status_code == 413 and "at most 2416 are accepted (2 windows of 200 × 6 values" in r.json()["detail"]
        assert few.post("/predict/windows", json={"windows": [window] * 2}).status_code == 200
    with TestClient(create_app(settings_for(store, max_samples=429))) as just:  # counted fine, then one too many
        r = just.post("/predict", json=example)
        assert r.status_code == 413 and r.json()["errors"][0]["field"] == "body.accelerometer.timestamps_ms"
        assert "430 accelerometer samples; the limit is 429" in r.json()["detail"]


def mutations(example: dict, rng: random.Random) -> Iterator[object]:
    """Malformed bodies: structural damage, wrong types and absurd values at random places."""
    junk = [None, True, -1, 0, 1e308, -1e308, "", "x", [], {}, [[]], [None], ["1"], {"a": 1}, 2**70]
    for _ in range(120):
        body = copy.deepcopy(example)
        sensor = rng.choice(["accelerometer", "gyroscope"])
        key = rng.choice(["timestamps_ms", "x", "y", "z", "unit"])
        action = rng.randrange(6)
        if action == 0:
            body[sensor][key] = rng.choice(junk)
        elif action == 1 and key != "unit":
            body[sensor][key][rng.randrange(len(body[sensor][key]))] = rng.choice(junk)
        elif action == 2 and key != "unit":
            body[sensor][key] = body[sensor][key][: rng.randrange(0, 300)]
        elif action == 3:
            del body[sensor][key]
        elif action == 4 and key != "unit":
            body[sensor][key] = [-v for v in body[sensor][key]] if key == "timestamps_ms" else \
                [v * rng.choice([1e5, -1e9, 0.0]) for v in body[sensor][key]]
        else:
            body[sensor] = rng.choice(junk)
        yield body
    yield from (None, [], "text", 1, [example], {"accelerometer": None, "gyroscope": None})


def test_malformed_payloads_never_cause_a_5xx(client: TestClient, example: dict) -> None:
    rng = random.Random(4)
    statuses = []
    for body in mutations(example, rng):
        r = client.post("/predict", json=body)
        assert r.status_code < 500, f"{r.status_code} for {json.dumps(body)[:200]}: {r.text[:300]}"
        statuses.append(r.status_code)
    for raw in (b"", b"\x00\xff", b"[" * 5000, b'{"windows": ' + b"[" * 3000 + b"]" * 3000 + b"}"):
        for path in ("/predict", "/predict/windows"):
            r = client.post(path, content=raw, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (path, raw[:20], r.status_code)
    assert statuses.count(422) > len(statuses) // 2


def test_api_key(store: ModelStore, example: dict) -> None:
    with TestClient(create_app(settings_for(store, api_key="s3cret"))) as c:
        assert c.post("/predict", json=example).status_code == 401
        assert c.post("/predict", json=example, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/model").status_code == 401 and c.post("/model/reload").status_code == 401
        assert c.post("/predict", json=example, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        for open_path in ("/health", "/ready", "/metrics", "/openapi.json"):
            assert c.get(open_path).status_code == 200, open_path
        errors = {(m.labels["kind"]): m.value for m in samples(c, "har_errors_total")}
        assert errors["unauthorized"] == 4


def samples(c: TestClient, name: str) -> list:
    families = text_string_to_metric_families(c.get("/metrics").text)
    return [s for f in families for s in f.samples if s.name == name]


def test_metrics(store: ModelStore, example: dict) -> None:
    with TestClient(create_app(settings_for(store))) as c:
        for _ in range(3):
            assert c.post("/predict", json=example).status_code == 200
        bad = _sensor(example, "accelerometer", unit="furlongs")
        assert c.post("/predict", json=bad).status_code == 422
        assert c.post("/predict", json=_sensor(example, "accelerometer", x=[0.0] * 9)).status_code == 422
        assert c.get("/nowhere").status_code == 404
        assert c.get("/openapi.json").status_code == 200
        label = c.post("/predict", json=example).json()["windows"][0]["label"]

        requests = {(s.labels["endpoint"], s.labels["status"]): s.value for s in samples(c, "har_http_requests_total")}
        assert requests[("/predict", "200")] == 4 and requests[("/predict", "422")] == 2
        assert requests[("unmatched", "404")] == 1 and requests[("/openapi.json", "200")] == 1
        latency = {s.labels["endpoint"]: s.value for s in samples(c, "har_http_request_duration_seconds_count")}
        assert latency["/predict"] == 6
        errors = {s.labels["kind"]: s.value for s in samples(c, "har_errors_total")}
        assert errors == {"validation": 2, "not_found": 1}
        assert {s.labels["label"]: s.value for s in samples(c, "har_predicted_windows_total")} == {label: 4}
        [info] = samples(c, "har_model_info")
        assert info.labels == {"name": MODEL_NAME, "version": "1", "alias": "champion"} and info.value == 1
        assert samples(c, "har_model_version")[0].value == 1


def test_no_champion_then_one_appears(store: ModelStore, example: dict) -> None:
    """503 with a clear message until the alias exists; the poller then starts serving it."""
    name = "har-activity-later"
    with TestClient(create_app(ServeSettings(tracking_uri=store.uri, model_name=name, poll_seconds=0.2))) as c:
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert f"no version of registered model '{name}' has the alias 'champion'" in ready.json()["last_error"]
        r = c.post("/predict", json=example)
        assert r.status_code == 503 and "no model to serve yet" in r.json()["detail"]
        assert c.get("/model").status_code == 503
        assert samples(c, "har_model_version")[0].value == 0

        ModelStore(store.folder, name=name).set_alias("champion", store.register_copy("1", name))
        deadline = time.monotonic() + 30
        while c.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/ready").json()["model"] == {"name": name, "version": "1", "alias": "champion"}
        assert c.post("/predict", json=example).status_code == 200


@pytest.fixture(scope="module")
def moving(store: ModelStore, models: dict) -> ModelStore:
    """A second registered model: version 1 = the first model, version 2 = the second one (no alias yet)."""
    moving = ModelStore(store.folder, name="har-activity-moving")
    assert store.register_copy("1", moving.name) == "1"
    assert moving.register(models["second"], models["X"], {"macro_f1": 0.7}, alias=None) == "2"
    return moving


def wait_for(condition, what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_alias_move_is_picked_up_without_failing_requests(moving: ModelStore, models: dict) -> None:
    moving.set_alias("champion", "1")
    settings = ServeSettings(tracking_uri=moving.uri, model_name=moving.name, poll_seconds=0)
    with TestClient(create_app(settings)) as c:
        windows = {"windows": models["X"][:8].tolist()}
        first = c.post("/predict/windows", json=windows).json()
        assert first["model"]["version"] == "1"
        seen: dict[int, list[tuple[int, str]]] = {i: [] for i in range(3)}
        stop = threading.Event()

        def hammer(i: int) -> None:
            while not stop.is_set():
                r = c.post("/predict/windows", json=windows)
                seen[i].append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text))

        def versions() -> list[str]:
            return [v for results in seen.values() for _, v in list(results)]

        threads = [threading.Thread(target=hammer, args=(i,)) for i in seen]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: versions().count("1") >= 3, "requests served by version 1")
            moving.set_alias("champion", "2")
            r = c.post("/model/reload")
            assert r.status_code == 200 and r.json()["changed"] is True and r.json()["model"]["version"] == "2"
            wait_for(lambda: versions().count("2") >= 3, "requests served by version 2")
        finally:
            stop.set()
            for t in threads:
                t.join()
        for results in seen.values():  # nothing failed, and no thread went back to version 1
            assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
            got = [v for _, v in results]
            assert got == sorted(got)
        info = c.get("/model").json()
        assert info["version"] == "2" and info["metrics"] == {"macro_f1": 0.7}
        second = c.post("/predict/windows", json=windows).json()
        np.testing.assert_allclose(second["probabilities"], models["second"].predict_windows(models["X"][:8]),
                                   atol=1e-6)
        assert not np.allclose(first["probabilities"], second["probabilities"], atol=1e-4)
        assert c.post("/model/reload").json()["changed"] is False


def test_a_request_keeps_the_model_it_started_with(moving: ModelStore, models: dict) -> None:
    predictor = Predictor(moving.uri, name=moving.name, version="1")
    assert predictor.refresh() and not predictor.refresh()
    held = predictor.require()
    predictor.version = "2"  # the target moves (as an alias would)
    assert predictor.refresh()
    assert held.version == "1" and predictor.require().version == "2"
    X = models["X"][:4]
    np.testing.assert_allclose(held.predict_windows(X), models["first"].predict_windows(X), atol=1e-6)
    assert isinstance(held.bundle, InferenceBundle) and held.bundle is not predictor.require().bundle


def test_concurrent_model_calls_are_safe(store: ModelStore, models: dict) -> None:
    """Without LoadedModel's lock, predict_proba's per-call `.to()` races with a forward pass in another
    thread (ValueError: zip() argument 2 is longer than argument 1 inside the LSTM)."""
    predictor = Predictor(store.uri)
    assert predictor.refresh()
    model = predictor.require()
    X = models["X"][:1]
    expected = models["first"].predict_windows(X)
    errors: list[str] = []

    def work() -> None:
        for _ in range(150):
            try:
                np.testing.assert_allclose(model.predict_windows(X), expected, atol=1e-6)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_settings_from_env(tmp_path: Path) -> None:
    env = {"HAR_MODEL_POLL_SECONDS": "2.5", "HAR_API_KEY": "k", "HAR_MODEL_ALIAS": "staging", "HAR_MAX_WINDOWS": "64",
           "HAR_MODEL_VERSION": " ", "HAR_MAX_QUEUED": "8"}
    s = ServeSettings.from_env(env, home=HarHome(tmp_path))
    assert s.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert (s.poll_seconds, s.api_key, s.alias, s.max_windows, s.version, s.max_queued) == (2.5, "k", "staging", 64,
                                                                                            None, 8)
    assert ServeSettings.from_env({}, home=HarHome(tmp_path)).max_queued == 64
    assert ServeSettings.from_env({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).tracking_uri == "http://mlflow:5000"
    with pytest.raises(ValueError, match="poll_seconds"):
        ServeSettings.from_env({"HAR_MODEL_POLL_SECONDS": "-1"}, home=HarHome(tmp_path))


def test_a_model_saved_before_antialiasing_is_served_as_it_was_trained(tmp_path: Path, models: dict) -> None:
    """A bundle whose stored preprocessing config lacks `antialias_cutoff_ratio` (written before the field
    existed) is served with the old preprocessing (no low-pass before resampling), not today's default."""
    from har_assets.config import AccelUnit, GyroUnit
    from har_assets.inference.predictor import request_samples
    from har_assets.signal.pipeline import preprocess_samples

    old = ModelStore(tmp_path / "mlflow")
    version = old.register(models["first"], models["X"], {"macro_f1": 0.5})
    (config_file,) = [p for p in (tmp_path / "mlflow").rglob("preprocess_config.json")]
    stored = json.loads(config_file.read_text())
    del stored["antialias_cutoff_ratio"]
    config_file.write_text(json.dumps(stored))
    old.client().delete_model_version_tag(old.name, version, DIGEST_TAG)  # registered before hashes were recorded

    t = np.arange(0, 12_000, 10.0)  # 100 Hz, with a 35 Hz tap tone that folds to 15 Hz without anti-aliasing
    tone = np.sin(2 * np.pi * 35 * t / 1000)
    acc = np.column_stack([300 * tone, 50 * np.sin(2 * np.pi * 2 * t / 1000), np.full_like(t, 1000.0)])
    gyro = np.column_stack([40 * tone, np.zeros_like(t), np.zeros_like(t)])
    start = 1_742_802_739_120
    payload = {"accelerometer": {"timestamps_ms": (start + t).tolist(), "x": acc[:, 0].tolist(),
                                 "y": acc[:, 1].tolist(), "z": acc[:, 2].tolist(), "unit": "milli-g"},
               "gyroscope": {"timestamps_ms": (start + 7 + t).tolist(), "x": gyro[:, 0].tolist(),
                             "y": gyro[:, 1].tolist(), "z": gyro[:, 2].tolist(), "unit": "deg/s"}}
    with TestClient(create_app(settings_for(old, version=version))) as c:
        r = c.post("/predict", json=payload)
        assert c.get("/model").json()["verified"] is False  # served, and said to be unverified
    assert r.status_code == 200, r.text
    got = np.array([[w["probabilities"][k] for k in r.json()["classes"]] for w in r.json()["windows"]])
    samples = request_samples(start + t, acc, AccelUnit.MILLI_G, start + 7 + t, gyro, GyroUnit.DEG_PER_S)
    as_trained = CFG.model_copy(update={"antialias_cutoff_ratio": None})
    expected = models["first"].predict_windows(preprocess_samples("p", *samples, None, as_trained)[0].X)
    today = models["first"].predict_windows(preprocess_samples("p", *samples, None, CFG)[0].X)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.abs(today - expected).max() > 1e-3, "the two preprocessings must differ on this signal"
