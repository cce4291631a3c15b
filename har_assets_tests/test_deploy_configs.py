"""The scale-out configs in deploy/ and the configuration reference are real, not prose.

- deploy/docker-compose.docker-runs.yml follows the Compose spec, and deploy/dagster.docker.yaml
  opens a PostgreSQL instance whose run launcher is dagster-docker's DockerRunLauncher, forwarding
  every setting a run container needs, on the network and volumes the override names;
- deploy/dagster.k8s-values.yaml starts this package's code location and launches runs as Jobs;
- every environment variable the code reads is in the README's configuration reference;
- the image's Python requirements (pyproject dependencies and the extras the Dockerfile can add)
  are satisfied together by the installed environment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import dagster as dg
import pytest
import yaml
from packaging.requirements import Requirement

from har_assets.settings import HarSettings
from har_assets_tests.stack import dagster_postgres_env, postgres_databases

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
IMAGE_DAGSTER_YAML = "/opt/dagster/dagster_home/dagster.yaml"  # DAGSTER_HOME in the Dockerfile


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_docker_runs_override_follows_the_compose_spec() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec",
                             str(DEPLOY / "docker-compose.docker-runs.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_run_launcher_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_docker", reason="dagster-docker is not installed (pip install -e '.[docker]')")
    image_home = re.search(r"^ENV .*\bDAGSTER_HOME=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert image_home and image_home.group(1) == str(Path(IMAGE_DAGSTER_YAML).parent)
    override = _yaml(DEPLOY / "docker-compose.docker-runs.yml")
    network = override["networks"]["default"]["name"]
    for service in ("code", "daemon", "webserver"):
        mounts = override["services"][service]["volumes"]
        assert f"./deploy/dagster.docker.yaml:{IMAGE_DAGSTER_YAML}:ro" in mounts, service
        assert override["services"][service]["environment"]["HAR_DOCKER_NETWORK"] == network
    assert "${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock" in override["services"]["daemon"]["volumes"]
    # runs share no writable disk: the assets must be on an object store, the artifacts behind the MLflow server too
    assert ":?" in override["x-run-launcher-env"]["HAR_ASSETS_URI"]
    assert ":?" in override["services"]["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"]
    fixed_volumes = {spec["name"] for spec in override["volumes"].values()}

    shutil.copy(DEPLOY / "dagster.docker.yaml", tmp_path / "dagster.yaml")
    with postgres_databases("docker") as dbs:
        for key, value in {**dagster_postgres_env(dbs["docker"]), "HAR_DOCKER_NETWORK": network}.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            launcher = instance.run_launcher
            assert type(launcher).__name__ == "DockerRunLauncher"
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert set(launcher.env_vars) >= {*dagster_postgres_env("x"), "MLFLOW_TRACKING_URI", "HAR_HOME",
                                              "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                                              "HAR_SETTINGS_DIR", "HAR_ASSETS_URI", "AWS_ACCESS_KEY_ID",
                                              "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"}
            assert launcher.networks == [network]
            mounted = {v.split(":")[0] for v in launcher.container_kwargs["volumes"]}
            assert mounted <= fixed_volumes, (mounted, fixed_volumes)
            assert {v.split(":", 1)[1] for v in launcher.container_kwargs["volumes"]} == {
                "/har/raw:ro", "/har/settings:ro"}  # read-only inputs only
            instance.add_dynamic_partitions("participants", ["p001"])  # the storage really works
            assert instance.get_dynamic_partitions("participants") == ["p001"]


def test_k8s_values_start_this_code_location() -> None:
    values = _yaml(DEPLOY / "dagster.k8s-values.yaml")
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == module
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["HAR_HOME"] == deployment["volumeMounts"][0]["mountPath"]
    assert env["MLFLOW_TRACKING_URI"].startswith("http")
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods get the volume and env
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["postgresql"]["enabled"] is False


ENV_READ = [
    re.compile(r"""os\.environ(?:\.get)?[\[(]\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""EnvVar\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""^[A-Z_]*ENV[A-Z_]*\s*=\s*["']([A-Z][A-Z0-9_]+)["']""", re.MULTILINE),
    re.compile(r"""^\s+"[a-z_]+":\s*"((?:HAR|MLFLOW|DAGSTER)_[A-Z0-9_]+)",""", re.MULTILINE),  # ENV_VARS tables
    re.compile(r"""["'](HAR_[A-Z0-9_]+)["']"""),  # any HAR_* name in the code is a setting (e.g. default_status("..."))
]


def test_every_env_var_the_code_reads_is_documented() -> None:
    read: set[str] = set()
    for path in (ROOT / "har_assets").rglob("*.py"):
        text = path.read_text()
        for pattern in ENV_READ:
            read |= set(pattern.findall(text))
    assert {"HAR_HOME", "MLFLOW_TRACKING_URI", "HAR_AUTOSTART_SENSOR"} <= read  # the scan finds them at all
    read |= set(HarSettings.env_vars().values())  # every setting, whatever the scan finds
    reference = (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    undocumented = sorted(v for v in read if f"`{v}`" not in reference and not _grouped(v, reference))
    assert not undocumented, f"add these to the README's Configuration section: {undocumented}"


def _grouped(variable: str, reference: str) -> bool:
    """`DAGSTER_POSTGRES_HOST` is documented by a row naming `DAGSTER_POSTGRES_HOST`, `_PORT`, ..."""
    prefix, _, suffix = variable.rpartition("_")
    return f"`{prefix}_" in reference and f"`_{suffix}`" in reference


def test_the_image_requirements_are_satisfied_together() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    # the default image installs the platform (its serve extra with it), the `api` target serve alone
    assert re.search(r'pip install (\$offline )?"\.\[platform\$\{HAR_EXTRAS:\+,\$HAR_EXTRAS\}\]"', dockerfile)
    assert re.search(r'pip install (\$offline )?"\.\[serve\]"', dockerfile)
    extras = ["platform", "serve"] + (["docker"] if "HAR_EXTRAS" in dockerfile else [])
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    problems = []
    for req in requirements:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req}: not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{req}: {installed} installed")
    assert not problems, problems
    assert 'pip install "torch==2.13.0"' in dockerfile and Requirement("torch==2.13.0") in requirements
