"""Every Dagster run process imports the code location; a preprocessing run must not load torch or MLflow."""

import subprocess
import sys

HEAVY = ("torch", "mlflow", "sklearn", "fastapi", "matplotlib")


def test_code_location_import_leaves_the_model_stack_unloaded() -> None:
    probe = ("import sys, har_assets.definitions; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing har_assets.definitions loaded {out}"
