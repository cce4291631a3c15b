"""What the public endpoints say about the tracking store: the reason a model is missing, never its URI, host or
password. A real `har serve` pointed at a tracking server that does not answer (a closed port, user and password in
the URI), and `redact` on messages that MLflow, urllib3 and psycopg write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from har_assets.config import PreprocessConfig
from har_assets.redaction import redact, without_credentials
from har_assets.serving.schemas import example_predict_payload
from har_assets_tests.stack import BIN, LOOPBACK, artifacts_dir, base_env, free_port, http_ok, processes, wait_until

PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(base URL, tracking URI, the server's log) of `har serve` whose tracking server refuses connections."""
    tracking_uri = f"http://har:{PASSWORD}@{LOOPBACK}:{free_port()}"  # nothing listens there
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with processes(artifacts_dir(tmp_path_factory, "api-secrets")) as procs:
        service = procs.start("har-serve", [str(BIN / "har"), "serve", "--host", LOOPBACK, "--port", str(port),
                                            "--tracking-uri", tracking_uri, "--poll-seconds", "0"],
                              base_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"))  # refused at once, not after backoff
        wait_until("har serve to answer", http_ok(f"{base}/health"), 120, procs, interval_s=0.5)
        yield base, tracking_uri, service.log


def assert_says_why_without_secrets(text: str, tracking_uri: str) -> None:
    assert "Connection refused" in text, text
    for secret in (PASSWORD, "har:", tracking_uri, tracking_uri.split("@")[1], LOOPBACK):
        assert secret not in text, f"{secret!r} in {text!r}"


def test_ready_and_the_503s_say_why_without_the_tracking_uri(unreachable: tuple[str, str, Path]) -> None:
    base, tracking_uri, log = unreachable
    with httpx.Client(base_url=base, trust_env=False, timeout=60) as c:
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        last_error = ready.json()["last_error"]
        assert last_error.startswith("cannot read the registry at the tracking store: ")
        assert_says_why_without_secrets(last_error, tracking_uri)
        for response in (c.post("/predict", json=example_predict_payload(PreprocessConfig())), c.get("/model"),
                         c.post("/model/reload")):
            assert response.status_code == 503 and response.json()["kind"] == "no_model", response.text
            assert_says_why_without_secrets(response.text, tracking_uri)
    logged = [line for line in log.read_text().splitlines() if line.startswith("cannot read the registry")]
    assert logged and all(LOOPBACK in line and PASSWORD not in line for line in logged), logged


MLFLOW_REST = ("API request to http://har:s3cret@mlflow.internal:5000/api/2.0/mlflow/registered-models/alias failed "
               "with exception HTTPConnectionPool(host='mlflow.internal', port=5000): Max retries exceeded (Caused by "
               "NameResolutionError(\"HTTPConnection(host='mlflow.internal', port=5000): Failed to resolve "
               "'mlflow.internal' ([Errno -2] Name or service not known)\"))")
PSYCOPG = ("(psycopg.OperationalError) connection failed: connection to server at \"db\", port 5432 failed: FATAL: "
           "password authentication failed for user \"mlflow\"")


@pytest.mark.parametrize(("uri", "host", "message", "kept"), [
    ("http://har:s3cret@mlflow.internal:5000", "mlflow.internal", MLFLOW_REST, "Name or service not known"),
    ("http://har:s3cret@mlflow:5000/", "mlflow", "cannot read the registry at http://har:s3cret@mlflow:5000/: API "
     "request to http://har:s3cret@mlflow:5000/api/2.0/mlflow/registered-models/alias failed: Could not resolve "
     "host: mlflow", "Could not resolve host: the tracking store"),
    ("postgresql://mlflow:s3cret@db:5432/mlflow", "db", PSYCOPG, "password authentication failed"),
    ("sqlite:////srv/har/mlflow/mlflow.db", None, "no version of registered model 'har-activity' has the alias "
     "'champion' in sqlite:////srv/har/mlflow/mlflow.db (Registered model alias champion not found.)",
     "in the tracking store (Registered model alias champion not found.)"),
])
def test_redact_keeps_the_reason_not_the_store(uri: str, host: str | None, message: str, kept: str) -> None:
    public = redact(message, uri)
    assert kept in public, public
    for secret in (PASSWORD, uri, *([f"'{host}'", f'"{host}"', f"//{host}", f": {host}"] if host else [])):
        assert secret not in public, f"{secret!r} in {public!r}"
    logged = without_credentials(message)
    assert logged == message.replace("har:s3cret@", "") and PASSWORD not in logged
