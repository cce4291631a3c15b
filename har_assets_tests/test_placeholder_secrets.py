"""The images' entry point refuses the example's placeholder secrets, naming the .env variable, and otherwise
becomes the command (a real process: exec'd, its exit status passed through)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from har_assets.placeholder_secrets import problems

ROOT = Path(__file__).resolve().parents[1]


def _example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_every_secret_of_the_example_is_refused_by_name() -> None:
    example = _example()
    env = {"HAR_API_KEY": example["HAR_API_KEY"], "MLFLOW_TRACKING_PASSWORD": example["MLFLOW_ADMIN_PASSWORD"],
           "MLFLOW_FLASK_SERVER_SECRET_KEY": example["MLFLOW_SECRET_KEY"],
           "DAGSTER_POSTGRES_PASSWORD": example["POSTGRES_PASSWORD"], "PGPASSWORD": example["POSTGRES_PASSWORD"]}
    found = problems(env)
    assert len(found) == 5, found
    for dotenv in ("HAR_API_KEY", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert any(dotenv in line and "placeholder" in line for line in found), (dotenv, found)


def test_real_secrets_pass_and_short_ones_do_not() -> None:
    assert problems({"HAR_API_KEY": "9f86d081884c7d659a2feaa0c55ad015", "AWS_SECRET_ACCESS_KEY": "",
                     "UNRELATED": "change-me"}) == []  # an empty optional secret is unused, not a placeholder
    assert problems({"MLFLOW_TRACKING_PASSWORD": "hunter2"}) == [
        "MLFLOW_TRACKING_PASSWORD (MLFLOW_ADMIN_PASSWORD in .env) is shorter than 12 characters"]


def _entrypoint(*argv: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"HAR_API_KEY", "PGPASSWORD"}}
    return subprocess.run([sys.executable, "-m", "har_assets.placeholder_secrets", *argv], env=clean | env,
                          capture_output=True, text=True, timeout=60)


def test_the_entry_point_stops_before_the_command_or_becomes_it() -> None:
    refused = _entrypoint(sys.executable, "-c", "print('started')", HAR_API_KEY="change-me-again")
    assert refused.returncode == 78 and "started" not in refused.stdout
    assert "HAR_API_KEY is the example's placeholder" in refused.stderr
    assert "set a secret of your own in .env" in refused.stderr
    ran = _entrypoint(sys.executable, "-c", "import os, sys; print(os.getpid()); sys.exit(3)",
                      HAR_API_KEY="9f86d081884c7d659a2feaa0c55ad015")
    assert ran.returncode == 3 and ran.stdout.strip().isdigit(), ran  # exec'd: the command's own status
