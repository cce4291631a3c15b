"""The deployment files: compose validates against the Compose specification, and the repo's
`dagster.yaml` really opens a Dagster instance on PostgreSQL from environment settings alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from har_assets_tests.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
PG = {"host": os.environ.get("HAR_TEST_PG_HOST", "127.0.0.1"), "port": os.environ.get("HAR_TEST_PG_PORT", "5432"),
      "user": os.environ.get("HAR_TEST_PG_USER", "postgres")}


def test_compose_file_follows_the_compose_spec() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_topology() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "code", "webserver", "daemon", "api"}
    for name, service in services.items():
        assert "restart" in service, name
        env = service.get("environment", {})
        for key, value in env.items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}: {key} must come from the environment"
    assert any(v.endswith(":/har/raw:ro") for v in services["code"]["volumes"]), "raw data must be read-only"
    for name in ("postgres", "mlflow", "code", "api"):
        assert "healthcheck" in services[name], name
    example = (ROOT / ".env.example").read_text()
    for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MLFLOW_DB", "MLFLOW_ADMIN_PASSWORD",
                     "MLFLOW_SECRET_KEY", "HAR_API_KEY", "HAR_PUBLISH_ADDRESS"):
        assert f"{variable}=" in example


def test_compose_is_safe_by_default() -> None:
    """Ports on loopback unless told otherwise, MLflow behind its basic-auth app, the API's key required, and no
    secret on any command line."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert set(published) == {"mlflow", "webserver", "api"}
    for name, ports in published.items():
        assert all(p.startswith("${HAR_PUBLISH_ADDRESS:-127.0.0.1}:") for p in ports), (name, ports)
    for name, service in services.items():
        command = " ".join(service.get("command") or []) if isinstance(service.get("command"), list) \
            else str(service.get("command", ""))
        assert "PASSWORD" not in command and not re.search(r"://[^/@\s]*:[^/@\s]*@", command), (name, command)
    mlflow = services["mlflow"]
    assert mlflow["command"].startswith("har mlflow-server ")
    assert "@" in mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]  # user@host, the password in PGPASSWORD
    assert mlflow["environment"]["PGPASSWORD"] == "${POSTGRES_PASSWORD}"
    for name in ("mlflow", "api"):
        assert ":?" in mlflow["environment"]["MLFLOW_TRACKING_PASSWORD"], "the MLflow password is required"
        assert "MLFLOW_TRACKING_USERNAME" in services[name]["environment"], name
    assert ":?" in services["api"]["environment"]["HAR_API_KEY"], "the API key is required"


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("::", False), ("10.0.0.5", False), ("api.example.org", False)])
def test_the_api_needs_a_key_beyond_loopback(host: str, loopback: bool, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from har_assets.cli import main
    from har_assets.serving.settings import ServeSettings, is_loopback, key_required_but_missing

    assert is_loopback(host) is loopback
    settings = ServeSettings(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert (key_required_but_missing(host, settings) is None) is loopback
    assert key_required_but_missing(host, settings.model_copy(update={"api_key": "k"})) is None
    if not loopback:
        assert main(["serve", "--home", str(tmp_path), "--host", host]) == 2
        assert f"refusing to listen on {host} without an API key" in capsys.readouterr().err


def test_the_mlflow_server_takes_its_secrets_from_the_environment() -> None:
    from har_assets.mlflow_server import MlflowServerConfigError, auth_config

    env = {"MLFLOW_TRACKING_USERNAME": "har", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
           "MLFLOW_BACKEND_STORE_URI": "postgresql://har@postgres:5432/mlflow"}
    text = auth_config(env)
    assert "admin_username = har" in text and "admin_password = pw" in text and "basic_auth" in text
    with pytest.raises(MlflowServerConfigError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        auth_config({k: v for k, v in env.items() if k != "MLFLOW_FLASK_SERVER_SECRET_KEY"})
    with pytest.raises(MlflowServerConfigError, match="holds a password"):
        auth_config({**env, "MLFLOW_BACKEND_STORE_URI": "postgresql://har:secret@postgres:5432/mlflow"})


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", "postgres", "-c", sql],
                   check=True, capture_output=True)


@pytest.fixture
def postgres_db() -> str:
    if shutil.which("psql") is None:
        pytest.skip("psql not installed")
    name = f"har_test_{uuid.uuid4().hex[:8]}"
    try:
        _psql(f"CREATE DATABASE {name}")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no PostgreSQL server reachable: {exc.stderr.decode().strip()}")
    yield name
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_repo_dagster_yaml_opens_a_postgres_instance(tmp_path: Path, postgres_db: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    for key, value in {"DAGSTER_POSTGRES_HOST": PG["host"], "DAGSTER_POSTGRES_PORT": PG["port"],
                       "DAGSTER_POSTGRES_USER": PG["user"], "DAGSTER_POSTGRES_PASSWORD": "",
                       "DAGSTER_POSTGRES_DB": postgres_db}.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        instance.add_dynamic_partitions("participants", ["p001"])
        assert instance.get_dynamic_partitions("participants") == ["p001"]


def test_the_mlflow_server_creates_its_database_once(postgres_db: str) -> None:
    """The postgres image creates only POSTGRES_DB: `har mlflow-server` creates the MLflow database itself, on a
    real server, and finds it there the next time; a server that never answers is named after the wait."""
    from har_assets.mlflow_server import MlflowServerConfigError, ensure_database

    name = f"{postgres_db}_mlflow"
    uri = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    try:
        assert ensure_database(uri, None, wait_s=10) is True
        assert ensure_database(uri, None, wait_s=10) is False  # there already: a restart changes nothing
        subprocess.run(["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", name, "-c", "SELECT 1"],
                       check=True, capture_output=True)
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert ensure_database("sqlite:////tmp/mlflow.db", None, wait_s=1) is False  # not PostgreSQL: left alone
    closed = free_port()
    with pytest.raises(MlflowServerConfigError, match=f"127.0.0.1:{closed} did not accept a connection within 2 s"):
        ensure_database(f"postgresql://har@127.0.0.1:{closed}/mlflow", None, wait_s=2)
