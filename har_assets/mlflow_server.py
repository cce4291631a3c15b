"""`har mlflow-server`: MLflow's tracking server with its basic-auth app, configured from the environment only.

The compose deployment and the integration test start the tracking server this way, so no secret is ever on
a command line: the admin account (the platform's own service account) comes from
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, which the clients read too; the backend store from
MLFLOW_BACKEND_STORE_URI (a PostgreSQL password in PGPASSWORD); MLflow's CSRF key from
MLFLOW_FLASK_SERVER_SECRET_KEY. The users database is MLFLOW_AUTH_DB (default a SQLite file).

A PostgreSQL backend store's database is created when it does not exist yet (the postgres image creates only
POSTGRES_DB): the server waits for PostgreSQL to answer (`MLFLOW_DB_WAIT_S`, default 120 s), so a stack started on
fresh volumes comes up in any order.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

REQUIRED = {
    "MLFLOW_TRACKING_USERNAME": "the admin account's user name (the platform's clients use it too)",
    "MLFLOW_TRACKING_PASSWORD": "the admin account's password",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "a random secret for MLflow's CSRF protection",
    "MLFLOW_BACKEND_STORE_URI": "the runs and registry database, without a password (use PGPASSWORD)",
}
DEFAULT_AUTH_DB = "sqlite:////mlflow-auth/basic_auth.db"
DEFAULT_DB_WAIT_S = 120.0


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


def ensure_database(uri: str, password: str | None, wait_s: float) -> bool:
    """Create the database a `postgresql://user@host:port/db` backend store names when it is missing (True: it
    was created); other stores are left alone. Waits up to `wait_s` for the server to accept connections."""
    parts = urlsplit(uri)
    if not parts.scheme.startswith("postgresql"):
        return False
    import psycopg
    from psycopg import sql

    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise MlflowServerConfigError(f"MLFLOW_BACKEND_STORE_URI names no database: {uri}")
    connect = {"host": parts.hostname or "localhost", "port": parts.port or 5432, "dbname": "postgres",
               "user": unquote(parts.username or "") or None, "password": password, "connect_timeout": 5,
               "autocommit": True}
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with psycopg.connect(**connect) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                    return False
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                return True
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise MlflowServerConfigError(f"PostgreSQL at {connect['host']}:{connect['port']} did not accept "
                                              f"a connection within {wait_s:.0f} s: {exc}") from exc
            print(f"har mlflow-server: waiting for PostgreSQL at {connect['host']}:{connect['port']}",
                  file=sys.stderr)
            time.sleep(2.0)


def exec_server(server_args: list[str]) -> None:
    """Write the auth config (readable by this user only), create the backend database if it is missing, and
    become `mlflow server --app-name basic-auth ...`."""
    text = auth_config(os.environ)
    backend = os.environ["MLFLOW_BACKEND_STORE_URI"]
    if ensure_database(backend, os.environ.get("PGPASSWORD"),
                       float(os.environ.get("MLFLOW_DB_WAIT_S", DEFAULT_DB_WAIT_S))):
        print(f"har mlflow-server: created the database {urlsplit(backend).path.lstrip('/')}", file=sys.stderr)
    fd, path = tempfile.mkstemp(prefix="mlflow-auth-", suffix=".ini")
    with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600
        out.write(text)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(Path(path))
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", *server_args])
