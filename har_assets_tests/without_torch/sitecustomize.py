"""On PYTHONPATH, this folder makes a process and every Python process it starts a serving install's: `torch`, `onnx`,
`dagster` and `optuna` cannot be imported (ModuleNotFoundError, as when they are not installed), though they are in
the venv.

Python imports `sitecustomize` at start-up, before any other module, so the refusal is in place before the API,
MLflow or uvicorn's workers import anything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

REFUSED = frozenset({"torch", "onnx", "dagster", "optuna"})  # none is in `har-assets[serve]`


class RefuseImports(MetaPathFinder):
    """Refuses the packages of REFUSED and their submodules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (refused: not in a serving install)",
                                      name=fullname)
        return None


sys.meta_path.insert(0, RefuseImports())
