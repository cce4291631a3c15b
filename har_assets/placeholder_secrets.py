"""The images' entry point: refuse to start on a secret left as `.env.example` has it, then become the command.

`cp .env.example .env` and `docker compose up` must not deploy the example's placeholders: every secret a
service receives is checked before its program starts, and a placeholder (or an empty or too short value) stops
the container with the `.env` variable to set (an empty one is an unused option: compose refuses a required one
left empty itself), e.g.

    har: HAR_API_KEY (HAR_API_KEY in .env) is the example's placeholder "change-me-…": set a secret of your
    own in .env, e.g. `openssl rand -hex 24`

    python -m har_assets.placeholder_secrets har serve --host 0.0.0.0   # checks, then execs `har serve ...`
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping

PLACEHOLDER_PREFIX = "change-me"  # every secret in .env.example starts so
MIN_LENGTH = 12
# the secrets a container can receive -> the .env variable they come from (docker-compose.yml)
SECRETS = {
    "HAR_API_KEY": "HAR_API_KEY",
    "MLFLOW_TRACKING_PASSWORD": "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "MLFLOW_SECRET_KEY",
    "DAGSTER_POSTGRES_PASSWORD": "POSTGRES_PASSWORD",
    "PGPASSWORD": "POSTGRES_PASSWORD",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
}


def problems(env: Mapping[str, str]) -> list[str]:
    """One line per secret set in `env` that is a placeholder or too short to be a secret."""
    found = []
    for var, dotenv in SECRETS.items():
        value = env.get(var, "").strip()
        if not value:
            continue
        where = var if var == dotenv else f"{var} ({dotenv} in .env)"
        if value.lower().startswith(PLACEHOLDER_PREFIX):
            found.append(f"{where} is the example's placeholder {value[:len(PLACEHOLDER_PREFIX)]!r}…")
        elif len(value) < MIN_LENGTH:
            found.append(f"{where} is shorter than {MIN_LENGTH} characters")
    return found


def main(argv: list[str]) -> int:
    found = problems(os.environ)
    if found:
        for line in found:
            print(f"har: {line}: set a secret of your own in .env, e.g. `openssl rand -hex 24`", file=sys.stderr)
        return 78  # EX_CONFIG
    if not argv:
        print("har: no command to start", file=sys.stderr)
        return 64
    program = shutil.which(argv[0]) or argv[0]
    os.execv(program, argv)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
