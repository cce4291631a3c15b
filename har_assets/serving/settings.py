"""Settings of the inference service, read from environment variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from har_assets.home import HarHome
from har_assets.inference.names import ALIAS_VAR, DEFAULT_ALIAS, DEFAULT_MODEL_NAME, MODEL_NAME_VAR
from har_assets.serving.schemas import MAX_SAMPLES_CAP, MAX_WINDOWS_CAP
from har_assets.settings import HarSettings

# setting -> environment variable
ENV_VARS = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "model_name": MODEL_NAME_VAR,
    "alias": ALIAS_VAR,
    "version": "HAR_MODEL_VERSION",
    "poll_seconds": "HAR_MODEL_POLL_SECONDS",
    "api_key": "HAR_API_KEY",
    "max_body_bytes": "HAR_MAX_BODY_BYTES",
    "max_samples": "HAR_MAX_SAMPLES",
    "max_duration_s": "HAR_MAX_DURATION_S",
    "max_windows": "HAR_MAX_WINDOWS",
    "torch_threads": "HAR_TORCH_THREADS",
    "concurrency": "HAR_CONCURRENT_REQUESTS",
    "max_queued": "HAR_MAX_QUEUED",
}


class ServeSettings(BaseModel):
    """Which model to serve and the service's limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI.")
    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, description="Registered model name.")
    alias: str = Field(DEFAULT_ALIAS, min_length=1, description="Alias to follow (ignored when version is set).")
    version: str | None = Field(None, description="Serve exactly this version instead of following the alias.")
    poll_seconds: float = Field(30.0, ge=0, description="How often to check whether the alias moved (0: never; "
                                "POST /model/reload still works).")
    api_key: str | None = Field(None, description="If set, /predict*, /model and /model/reload need header X-API-Key.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest accepted request body (bytes).")
    max_samples: int = Field(90_000, ge=2, le=MAX_SAMPLES_CAP, description="Most samples per sensor in one "
                             "/predict request (15 min at 100 Hz; bounds the parsing work, checked before it).")
    max_duration_s: float = Field(900.0, gt=0, description="Longest recording span accepted by /predict (s).")
    max_windows: int = Field(1024, ge=1, le=MAX_WINDOWS_CAP, description="Most windows in one /predict/windows "
                             "request.")
    concurrency: int = Field(1, ge=1, description="Predict requests computed at once per worker process; more "
                             "wait their turn in arrival order (1: measured fastest, and bounds a worker's memory).")
    max_queued: int = Field(64, ge=1, description="Predict requests waiting their turn per worker process (besides "
                            "those computing); more get 503 with Retry-After.")
    torch_threads: int | None = Field(1, ge=1, description="Intra-op threads of the model per worker process "
                                      "(ONNX Runtime, and torch; 1: measured fastest under concurrent requests; "
                                      "None: the runtimes' default, every core).")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, home: HarHome | None = None) -> ServeSettings:
        """Settings from environment variables (see ENV_VARS); the tracking URI defaults to HAR_HOME's store."""
        env = os.environ if env is None else env
        values: dict[str, str] = {name: env[var] for name, var in ENV_VARS.items() if env.get(var, "").strip()}
        values.setdefault("tracking_uri", (home or HarSettings().har_home()).local_mlflow_uri())
        return cls.model_validate(values)


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the service on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def key_required_but_missing(host: str, settings: ServeSettings) -> str | None:
    """Why the API must not start on `host` with these settings: beyond loopback it needs HAR_API_KEY."""
    if is_loopback(host) or settings.api_key:
        return None
    return (f"refusing to listen on {host} without an API key: anyone who reaches the port could use the API. "
            f"Set {ENV_VARS['api_key']}, or listen on 127.0.0.1 behind a proxy that authenticates.")
