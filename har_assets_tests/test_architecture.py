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
