"""The layers hold: import-linter's contracts (pyproject.toml), and Dagster's private API only in its adapter."""

import ast
import subprocess
import sys
from pathlib import Path

import har_assets

PACKAGE = Path(har_assets.__file__).parent
ADAPTER = PACKAGE / "orchestration" / "dagster_internals.py"


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def private_dagster_imports(path: Path) -> list[str]:
    """`module:line name` of each import of a private Dagster module (dagster._…, dagster_shared._…)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {n}" for n in names
                  if n.split(".")[0].startswith("dagster") and any(p.startswith("_") for p in n.split(".")[1:])]
    return found


def test_private_dagster_api_only_in_its_adapter() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != ADAPTER
                 for hit in private_dagster_imports(path)]
    assert offenders == [], "import these from har_assets.orchestration.dagster_internals:\n" + "\n".join(offenders)
    assert private_dagster_imports(ADAPTER), "the adapter no longer needs Dagster's private API: delete it"


def test_dg_loads_the_project(tmp_path: Path) -> None:
    """`dg check defs` finds the code location through `[tool.dg]` and loads it, built from the settings."""
    venv = Path(sys.executable).parent.parent
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv), "HOME": str(tmp_path),
           "HAR_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path), "HAR_RETRAIN_CRON": "*/10 * * * *"}
    (tmp_path / "dagster.yaml").write_text("")
    done = subprocess.run([str(venv / "bin" / "dg"), "check", "defs"], capture_output=True, text=True,
                          cwd=PACKAGE.parent, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr
    listed = subprocess.run([str(venv / "bin" / "dg"), "list", "defs", "--json"], capture_output=True, text=True,
                            cwd=PACKAGE.parent, env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "re-split on new windows, at most once per '*/10 * * * *'" in listed.stdout  # HAR_RETRAIN_CRON, at load
