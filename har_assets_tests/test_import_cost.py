"""Every Dagster process (webserver, daemon, code server, run worker) imports the code location: it must not load
the model stack, nor scipy.signal (0.6 s; only the preprocessing steps that filter need it)."""

import subprocess
import sys

HEAVY = ("torch", "mlflow", "sklearn", "fastapi", "matplotlib", "scipy.signal")


def test_code_location_import_leaves_the_model_stack_unloaded() -> None:
    probe = ("import sys, har_assets.definitions; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing har_assets.definitions loaded {out}"
