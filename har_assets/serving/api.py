"""The inference API: `create_app(settings)` (FastAPI), served by `har serve` (uvicorn)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import torch
from fastapi import Depends, FastAPI, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError
from har_assets.serving.errors import ApiError, BodyLimitMiddleware, api_error_handler, validation_error_handler
from har_assets.serving.metrics import MetricsMiddleware, ServingMetrics
from har_assets.serving.predictor import LoadedModel, ModelUnavailable, Predictor, recording_from_samples
from har_assets.serving.schemas import (
    ModelRef,
    PredictRequest,
    PredictResponse,
    WindowPrediction,
    WindowsRequest,
    WindowsResponse,
    example_predict_payload,
    example_windows_payload,
)
from har_assets.serving.settings import ServeSettings

DESCRIPTION = """\
Human-activity recognition from smartwatch accelerometer + gyroscope samples, served by the
registered model version that the alias (default `champion`) points to.

* **POST /predict** takes *raw* samples as the watch gives them (each sensor with its own epoch-ms
  timestamps and unit) and runs exactly the preprocessing the model was trained with (fusion onto
  one clock, gap splitting, gravity handling, windowing) before the model. The recording must
  cover at least one window (window_size / target_hz, 4 s by default) where both sensors record.
* **POST /predict/windows** takes windows that are already *preprocessed but not scaled* (the
  output of the preprocessing, shape (n, window_size, channels)); the service applies the model's
  scaler. Channel order and window size: **GET /model**.
* **GET /health** (process alive), **GET /ready** (a model is loaded), **GET /model**,
  **POST /model/reload** (load the version the alias points to now), **GET /metrics** (Prometheus).

If `HAR_API_KEY` is set, /predict, /predict/windows, /model and /model/reload need the header
`X-API-Key`. Invalid input gets a 4xx response naming the field; 503 means no model is loaded.
"""

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Required only when the service runs with HAR_API_KEY set.")


def model_ref(model: LoadedModel) -> ModelRef:
    return ModelRef(name=model.name, version=model.version, alias=model.alias)


def require_model(predictor: Predictor) -> LoadedModel:
    try:
        return predictor.require()
    except ModelUnavailable as exc:
        raise ApiError(503, "no_model", f"no model to serve yet: {predictor.last_error or exc}. Register a "
                       f"version and point the alias at it; the service picks it up on its next poll or on "
                       f"POST /model/reload.") from exc


def check_recording(body: PredictRequest, settings: ServeSettings, cfg: PreprocessConfig) -> None:
    """Limits and the one-window minimum, which depend on settings and on the model's config."""
    sensors = {"accelerometer": body.accelerometer.timestamps_ms, "gyroscope": body.gyroscope.timestamps_ms}
    for name, t in sensors.items():
        loc = ["body", name, "timestamps_ms"]
        if len(t) > settings.max_samples:
            raise ApiError(413, "too_large", f"{len(t)} {name} samples; the limit is {settings.max_samples} per "
                           "sensor (HAR_MAX_SAMPLES)", loc)
        span_s = (t[-1] - t[0]) / 1000.0
        if span_s > settings.max_duration_s:
            raise ApiError(413, "too_large", f"the {name} samples span {span_s:g} s; the limit is "
                           f"{settings.max_duration_s:g} s (HAR_MAX_DURATION_S)", loc)
    overlap_s = (min(t[-1] for t in sensors.values()) - max(t[0] for t in sensors.values())) / 1000.0
    needed_s = (cfg.window_size - 1) / cfg.target_hz
    if overlap_s < needed_s:
        raise ApiError(422, "too_short", f"too short for one window: accelerometer and gyroscope overlap for "
                       f"{max(overlap_s, 0.0):g} s, the model needs at least {needed_s:g} s "
                       f"({cfg.window_size} samples at {cfg.target_hz:g} Hz)", ["body", "accelerometer",
                                                                                "timestamps_ms"])


def check_windows(body: WindowsRequest, settings: ServeSettings, model: LoadedModel) -> np.ndarray:
    n = len(body.windows)
    if n > settings.max_windows:
        raise ApiError(413, "too_large", f"{n} windows; the limit is {settings.max_windows} per request "
                       "(HAR_MAX_WINDOWS)", ["body", "windows"])
    size, channels = model.window_shape
    for i, window in enumerate(body.windows):
        if len(window) != size:
            raise ApiError(422, "validation", f"window {i} has {len(window)} samples; the model takes {size} "
                           "(window_size)", ["body", "windows", i])
        for j, sample in enumerate(window):
            if len(sample) != channels:
                raise ApiError(422, "validation", f"sample {j} of window {i} has {len(sample)} channels; the model "
                               f"takes {channels}: {', '.join(model.preprocess_config.channels)}",
                               ["body", "windows", i, j])
    return np.asarray(body.windows, dtype=np.float32)


def finite_or_422(proba: np.ndarray) -> np.ndarray:
    if not np.isfinite(proba).all():
        raise ApiError(422, "non_finite", "the input produced non-finite values after preprocessing "
                       "(values far outside the sensor's range?)", ["body"])
    return proba


def _install_openapi(app: FastAPI, predictor: Predictor) -> None:
    """OpenAPI whose request examples are built for the model served now, so they work when pasted."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        model = predictor.model
        key = model.version if model else ""
        if key not in cache:
            cfg = model.preprocess_config if model else PreprocessConfig()
            base = cache.setdefault("base", get_openapi(title=app.title, version=app.version,
                                                        description=app.description, routes=app.routes))
            schema = copy.deepcopy(base)
            for path, model_name, payload, summary in (
                ("/predict", "PredictRequest", example_predict_payload(cfg),
                 "both sensors at 100 Hz for one window"),
                ("/predict/windows", "WindowsRequest", example_windows_payload(cfg),
                 "one preprocessed, unscaled window"),
            ):
                schema["components"]["schemas"][model_name]["examples"] = [payload]
                media = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
                media["examples"] = {"example": {"summary": summary, "value": payload}}
            cache[key] = schema
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ServeSettings, predictor: Predictor | None = None) -> FastAPI:
    """The API app; it loads the model at startup and, if poll_seconds > 0, follows the alias."""
    predictor = predictor or Predictor(settings.tracking_uri, settings.model_name, settings.alias, settings.version)
    metrics = ServingMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        await run_in_threadpool(predictor.refresh)
        predictor.start_polling(settings.poll_seconds)
        try:
            yield
        finally:
            predictor.stop_polling()

    # /docs and /redoc with Swagger UI / ReDoc served by the app itself: no CDN, works offline
    app = FastAPIOffline(title="HAR inference API", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.predictor = predictor
    app.state.metrics = metrics
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)

    def check_key(key: str | None = Security(API_KEY_HEADER)) -> None:
        if settings.api_key and not (key and secrets.compare_digest(key.encode(), settings.api_key.encode())):
            raise ApiError(401, "unauthorized", "missing or wrong API key (send it in the X-API-Key header)")

    protected = [Depends(check_key)] if settings.api_key else []

    @app.get("/health", tags=["status"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["status"], summary="Readiness: a model is loaded",
             responses={503: {"description": "No model is loaded (e.g. no version has the alias yet)."}})
    def ready() -> JSONResponse:
        model = predictor.model
        if model is None:
            return JSONResponse({"ready": False, "target": predictor.target,
                                 "reason": predictor.last_error or "not loaded yet"}, status_code=503)
        body = {"ready": True, "target": predictor.target, "model": model_ref(model).model_dump(),
                "last_error": predictor.last_error}
        return JSONResponse(body)

    @app.get("/model", tags=["model"], dependencies=protected, summary="The model served and its configuration")
    def model_info() -> dict[str, Any]:
        return require_model(predictor).info()

    @app.post("/model/reload", tags=["model"], dependencies=protected,
              summary="Load the version the alias points to now (no-op if it is already served)")
    async def reload() -> dict[str, Any]:
        changed = await run_in_threadpool(predictor.refresh)
        model = require_model(predictor)
        return {"changed": changed, "model": model.info(), "last_error": predictor.last_error}

    @app.post("/predict", tags=["predict"], dependencies=protected, response_model=PredictResponse,
              summary="Activities of a raw recording (both sensors, watch units)")
    def predict(body: PredictRequest) -> PredictResponse:
        model = require_model(predictor)
        cfg = model.preprocess_config
        check_recording(body, settings, cfg)
        acc, gyro = body.accelerometer, body.gyroscope
        raw = recording_from_samples(np.asarray(acc.timestamps_ms), acc.xyz(), acc.unit or cfg.accel_unit,
                                     np.asarray(gyro.timestamps_ms), gyro.xyz(), gyro.unit or cfg.gyro_unit)
        try:
            result = model.predict_recording(raw)
        except PipelineDataError as exc:
            raise ApiError(422, "unusable_recording", str(exc), ["body"]) from exc
        proba = finite_or_422(result.proba)
        labels = result.labels
        metrics.count_predictions(labels.tolist())
        classes = model.classes
        windows = [
            WindowPrediction(start_ms=float(s), end_ms=float(e), segment=int(g), label=str(lab),
                             confidence=float(p.max()), probabilities=dict(zip(classes, p.tolist(), strict=True)))
            for s, e, g, lab, p in zip(result.start_ms, result.end_ms, result.windows.segment, labels, proba,
                                       strict=True)
        ]
        return PredictResponse(model=model_ref(model), classes=classes, windows=windows,
                               class_shares=result.class_shares())

    @app.post("/predict/windows", tags=["predict"], dependencies=protected, response_model=WindowsResponse,
              summary="Batch: class probabilities of preprocessed, UNSCALED windows (n, window_size, channels)")
    def predict_windows(body: WindowsRequest) -> WindowsResponse:
        model = require_model(predictor)
        X = check_windows(body, settings, model)
        proba = finite_or_422(model.predict_windows(X))
        labels = np.asarray(model.classes)[proba.argmax(axis=1)].tolist()
        metrics.count_predictions(labels)
        return WindowsResponse(model=model_ref(model), classes=model.classes, labels=labels,
                               probabilities=proba.tolist())

    @app.get("/metrics", tags=["status"], summary="Prometheus metrics", response_class=Response)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(predictor), media_type=CONTENT_TYPE_LATEST)

    _install_openapi(app, predictor)
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn: settings from the environment (see ServeSettings.from_env)."""
    return create_app(ServeSettings.from_env())


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the API with uvicorn (blocking); each worker process reads its settings from the environment."""
    import uvicorn

    uvicorn.run("har_assets.serving.api:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)
