"""The inference API: `create_app(settings)` (FastAPI), served by `har serve` (uvicorn)."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from har_assets.config import PreprocessConfig
from har_assets.errors import PipelineDataError
from har_assets.inference.predictor import LoadedModel, ModelUnavailable, Predictor, request_samples
from har_assets.serving.decoding import JSON, NPY, decode_predict, decode_windows
from har_assets.serving.errors import (
    ApiError,
    BodyLimitMiddleware,
    api_error_handler,
    error_responses,
    http_error_handler,
    request_validation_handler,
)
from har_assets.serving.metrics import MetricsMiddleware, ServingMetrics, worker_metrics_dir
from har_assets.serving.schemas import (
    Decoding,
    ModelRef,
    PredictRequest,
    PredictResponse,
    Readiness,
    Reliability,
    WindowPrediction,
    WindowsRequest,
    WindowsResponse,
    example_predict_payload,
    example_windows_payload,
)
from har_assets.serving.settings import ServeSettings
from har_assets.serving.work_queue import WorkQueue

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
`X-API-Key`. Invalid input gets a 4xx response naming the field; 503 means no model is loaded, or too many
requests wait (`overloaded`: retry after the `Retry-After` header's seconds).
"""

RETRY_AFTER_S = 1  # Retry-After of a 503 from a full queue: a worker's queue of small requests drains in ~0.1 s

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


def finite_or_422(proba: np.ndarray) -> np.ndarray:
    if not np.isfinite(proba).all():
        raise ApiError(422, "non_finite", "the input produced non-finite values after preprocessing "
                       "(values far outside the sensor's range?)", ["body"])
    return proba


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The body's media type (JSON when none is given); 415 for any other than `accepted`."""
    found = request.headers.get("content-type", JSON).split(";")[0].strip().lower() or JSON
    if found not in accepted:
        raise ApiError(415, "unsupported_media_type", f"Content-Type {found!r} is not accepted here; send "
                       f"{' or '.join(accepted)}", ["header", "content-type"])
    return found


def _body_schema(media: dict[str, dict]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": media}}


PREDICT_BODY = _body_schema({JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}})
WINDOWS_BODY = _body_schema({
    JSON: {"schema": {"$ref": "#/components/schemas/WindowsRequest"}},
    NPY: {"schema": {"type": "string", "format": "binary",
                     "description": "A NumPy .npy array (n, window_size, channels) of floats, as np.save writes "
                                    "it: no JSON to parse, for large batches."}},
})


def _install_openapi(app: FastAPI, predictor: Predictor) -> None:
    """OpenAPI whose request examples are built for the model served now, so they work when pasted."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        model = predictor.model
        key = model.version if model else ""
        if key not in cache:
            cfg = model.preprocess_config if model else PreprocessConfig()
            base = cache.setdefault("base", _with_request_models(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes)))
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


def _with_request_models(schema: dict[str, Any]) -> dict[str, Any]:
    """The request models (the routes read raw bodies, so FastAPI does not see them) as components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (PredictRequest, WindowsRequest):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(found.pop("$defs", {}))
        components[model.__name__] = found
    return schema


def create_app(settings: ServeSettings, predictor: Predictor | None = None) -> FastAPI:
    """The API app; it loads the model at startup and, if poll_seconds > 0, follows the alias."""
    predictor = predictor or Predictor(settings.tracking_uri, settings.model_name, settings.alias, settings.version,
                                       settings.torch_threads)
    metrics = ServingMetrics()
    predictor.on_swap(metrics.show_model)
    # parsing, validation and the model run as jobs of this queue: in arrival order, at most
    # `settings.concurrency` at once, a large body in a worker thread (see WorkQueue)
    work = WorkQueue(settings.concurrency, settings.max_queued)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(predictor.refresh)
        predictor.start_polling(settings.poll_seconds)
        try:
            yield
        finally:
            predictor.stop_polling()
            await work.close()
            metrics.close()

    # /docs and /redoc with Swagger UI / ReDoc served by the app itself: no CDN, works offline
    app = FastAPIOffline(title="HAR inference API", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.predictor = predictor
    app.state.metrics = metrics
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)

    def check_key(key: str | None = Security(API_KEY_HEADER)) -> None:
        if settings.api_key and not (key and secrets.compare_digest(key.encode(), settings.api_key.encode())):
            raise ApiError(401, "unauthorized", "missing or wrong API key (send it in the X-API-Key header)")

    protected = [Depends(check_key)] if settings.api_key else []
    auth_statuses = (401,) if settings.api_key else ()

    @app.get("/health", tags=["status"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["status"], summary="Readiness: a model is loaded and warmed up",
             response_model=Readiness,
             responses={503: {"model": Readiness, "description": "No model is loaded (e.g. no version has the "
                                                                "alias yet)."}})
    def ready() -> JSONResponse:
        model = predictor.model
        body = Readiness(ready=model is not None, target=predictor.target,
                         model=model_ref(model) if model else None,
                         last_error=predictor.last_error or (None if model else "not loaded yet"))
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if model else 503)

    @app.get("/model", tags=["model"], dependencies=protected, summary="The model served and its configuration",
             responses=error_responses(*auth_statuses, 503))
    def model_info() -> dict[str, Any]:
        return require_model(predictor).info()

    @app.post("/model/reload", tags=["model"], dependencies=protected,
              responses=error_responses(*auth_statuses, 503),
              summary="Load the version the alias points to now (no-op if it is already served)")
    async def reload() -> dict[str, Any]:
        changed = await run_in_threadpool(predictor.refresh)
        model = require_model(predictor)
        return {"changed": changed, "model": model.info(), "last_error": predictor.last_error}

    def run_predict(body: bytes, model: LoadedModel, causal: bool) -> bytes:
        request = decode_predict(body, settings.max_samples)
        cfg = model.preprocess_config
        check_recording(request, settings, cfg)
        acc, gyr = request.accelerometer, request.gyroscope
        samples = request_samples(acc.timestamps_ms, acc.xyz(), acc.unit or cfg.accel_unit,
                                  gyr.timestamps_ms, gyr.xyz(), gyr.unit or cfg.gyro_unit)
        try:
            result = model.predict_samples(*samples, causal=causal)
        except PipelineDataError as exc:
            raise ApiError(422, "unusable_recording", str(exc), ["body"]) from exc
        proba = finite_or_422(result.proba)
        labels = result.labels
        metrics.count_predictions(labels.tolist())
        classes = model.classes
        alone = np.asarray(classes)[finite_or_422(result.window_proba).argmax(axis=1)]
        ood = result.ood_score
        ood_scores = [None] * len(labels) if ood is None else [float(v) if np.isfinite(v) else None for v in ood]
        windows = [
            WindowPrediction(start_ms=float(s), end_ms=float(e), segment=int(g), label=str(lab),
                             confidence=float(p.max()), probabilities=dict(zip(classes, p.tolist(), strict=True)),
                             window_label=str(w), ood_score=o)
            for s, e, g, lab, p, w, o in zip(result.start_ms, result.end_ms, result.windows.segment, labels, proba,
                                             alone, ood_scores, strict=True)
        ]
        assessment = result.assessment.describe()
        decoder = model.bundle.decoder
        decoding = Decoding(smoothing=decoder.config.smoothing, causal=causal,
                            orientation=decoder.config.orientation, **result.alignment.describe())
        return PredictResponse(model=model_ref(model), classes=classes, windows=windows,
                               class_shares=result.class_shares(), decoding=decoding,
                               reliability=Reliability.model_validate(
                                   {k: assessment.get(k) for k in Reliability.model_fields})).model_dump_json().encode()

    def run_predict_windows(body: bytes, media: str, model: LoadedModel) -> bytes:
        X = decode_windows(body, media, settings.max_windows, model.window_shape)
        proba = finite_or_422(model.predict_windows(X))
        labels = np.asarray(model.classes)[proba.argmax(axis=1)].tolist()
        metrics.count_predictions(labels)
        return WindowsResponse(model=model_ref(model), classes=model.classes, labels=labels,
                               probabilities=proba.tolist()).model_dump_json().encode()

    async def compute(job: Callable[..., bytes], body: bytes, *args: Any) -> Response:
        """The job's JSON answer when its turn comes; 503 with Retry-After when the queue is full."""
        try:
            return Response(await work.run(job, body, *args), media_type=JSON)
        except asyncio.QueueFull:
            raise ApiError(503, "overloaded", f"{settings.max_queued} requests already wait on this worker "
                           f"(HAR_MAX_QUEUED); retry in {RETRY_AFTER_S} s",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None

    @app.post("/predict", tags=["predict"], dependencies=protected, response_model=None,
              responses={200: {"model": PredictResponse, "description": "One prediction per window"},
                         **error_responses(400, *auth_statuses, 413, 415, 422, 503)},
              openapi_extra=PREDICT_BODY, summary="Activities of a raw recording (both sensors, watch units)")
    async def predict(request: Request, causal: Annotated[bool, Query(
            description="Decode forward-only, as a streaming client must: each window's answer uses no later "
                        "window (default: the whole recording, each window between its neighbours)")] = False
                      ) -> Response:
        model = require_model(predictor)
        media_type(request, (JSON,))
        body = await request.body()
        return await compute(run_predict, body, model, causal)

    @app.post("/predict/windows", tags=["predict"], dependencies=protected, response_model=None,
              responses={200: {"model": WindowsResponse, "description": "Probabilities per window"},
                         **error_responses(400, *auth_statuses, 413, 415, 422, 503)},
              openapi_extra=WINDOWS_BODY,
              summary="Batch: class probabilities of preprocessed, UNSCALED windows (n, window_size, channels)")
    async def predict_windows(request: Request) -> Response:
        model = require_model(predictor)
        media = media_type(request, (JSON, NPY))
        body = await request.body()
        return await compute(run_predict_windows, body, media, model)

    @app.get("/metrics", tags=["status"], summary="Prometheus metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    _install_openapi(app, predictor)
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn: settings from the environment (see ServeSettings.from_env)."""
    return create_app(ServeSettings.from_env())


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the API with uvicorn (blocking); each worker process reads its settings from the environment. Several
    workers share their metrics through a folder of their own (one process needs none)."""
    import uvicorn

    with worker_metrics_dir() if workers > 1 else nullcontext():
        uvicorn.run("har_assets.serving.api:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
