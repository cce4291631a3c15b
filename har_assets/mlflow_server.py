"""`har mlflow-server`: MLflow's tracking server with its basic-auth app, configured from the environment only.

The compose deployment and the integration test start the tracking server this way, so no secret is ever on
a command line: the admin account (the platform's own service account) comes from
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which the clients read too; the backend store from
MLFLOW_BACKEND_STORE_URI (a PostgreSQL password in PGPASSWORD); MLflow's CSRF key from
MLFLOW_FLASK_SERVER_SECRET_KEY. The users database is MLFLOW_AUTH_DB (default a SQLite file).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

REQUIRED = {
    "MLFLOW_TRACKING_USERNAME": "the admin account's user name (the platform's clients use it too)",
    "MLFLOW_TRACKING_PASSWORD": "the admin account's password",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "a random secret for MLflow's CSRF protection",
    "MLFLOW_BACKEND_STORE_URI": "the runs and registry database, without a password (use PGPASSWORD)",
}
DEFAULT_AUTH_DB = "sqlite:////mlflow-auth/basic_auth.db"


class MlflowServerConfigError(ValueError):
    """A setting the authenticated tracking server needs is missing or unsafe."""


def auth_config(env: Mapping[str, str]) -> str:
    """The basic-auth app's ini file, from the environment."""
    missing = [f"{var} ({why})" for var, why in REQUIRED.items() if not env.get(var, "").strip()]
    if missing:
        raise MlflowServerConfigError("set " + "; ".join(missing))
    if "@" in env["MLFLOW_BACKEND_STORE_URI"] and ":" in env["MLFLOW_BACKEND_STORE_URI"].split("@")[0].split("//")[-1]:
        raise MlflowServerConfigError("MLFLOW_BACKEND_STORE_URI holds a password: put it in PGPASSWORD instead")
    return "\n".join([
        "[mlflow]",
        f"default_permission = {env.get('MLFLOW_DEFAULT_PERMISSION', 'READ')}",
        f"database_uri = {env.get('MLFLOW_AUTH_DB', DEFAULT_AUTH_DB)}",
        f"admin_username = {env['MLFLOW_TRACKING_USERNAME']}",
        f"admin_password = {env['MLFLOW_TRACKING_PASSWORD']}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "",
    ])


def exec_server(server_args: list[str]) -> None:
    """Write the auth config (readable by this user only) and become `mlflow server --app-name basic-auth ...`."""
    text = auth_config(os.environ)
    fd, path = tempfile.mkstemp(prefix="mlflow-auth-", suffix=".ini")
    with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600
        out.write(text)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(Path(path))
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", *server_args])
