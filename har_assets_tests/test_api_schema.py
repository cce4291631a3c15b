"""The OpenAPI document is honest: schemathesis (every check, bounded examples) against the real server finds no
schema mismatch, undeclared status or 5xx, with the API key required as when exposed beyond loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from har_assets_tests.apiserver import serving
from har_assets_tests.stack import BIN, base_env

KEY = "schemathesis-key"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("schemathesis")  # its cache (.schemathesis/) goes there, not into the checkout
    with serving(tmp_path_factory, "api-schema", HAR_API_KEY=KEY) as (base, _):
        run = subprocess.run(
            [str(BIN / "st"), "--config-file", str(CONFIG), "run", f"{base}/openapi.json", "--checks", "all",
             "--max-examples", "10", "--workers", "1", "--header", f"X-API-Key: {KEY}", "--seed", "1"],
            capture_output=True, text=True, timeout=600, env=base_env(NO_COLOR="1"), cwd=workdir)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and "Tested: 7" in run.stdout, run.stdout[-3000:]
