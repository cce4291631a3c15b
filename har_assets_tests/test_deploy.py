"""The deployment files: compose validates against the Compose specification, and the repo's
`dagster.yaml` really opens a Dagster instance on PostgreSQL from environment settings alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

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
    for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MLFLOW_DB"):
        assert f"{variable}=" in example


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
