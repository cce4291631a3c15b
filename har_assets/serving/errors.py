"""Errors of the inference API: one JSON shape for every 4xx/5xx (`ErrorResponse`), and the request-size limit."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ERRORS_LISTED = 20
_POSITION = re.compile(r"at line (\d+) column (\d+)")


class ErrorDetail(BaseModel):
    """One problem: where (field path, and line/column in the body for malformed JSON) and what."""

    field: str | None = Field(None, description="Path of the offending field, e.g. body.accelerometer.x[5].")
    loc: list[str | int] = Field(default_factory=list, description="The same path as a list.")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="Machine-readable reason, e.g. float_type, too_long, json_invalid.")
    line: int | None = Field(None, description="Line of the body where JSON parsing failed (1-based).")
    column: int | None = Field(None, description="Column of the body where JSON parsing failed (1-based).")


class ErrorResponse(BaseModel):
    """Every error the API answers with (400, 401, 404, 405, 413, 415, 422, 503)."""

    detail: str = Field(description="A sentence for people: what is wrong and where.")
    kind: str = Field(description="Error class: invalid_json, validation, too_large, too_short, unusable_recording, "
                      "invalid_npy, non_finite, unauthorized, not_found, method_not_allowed, unsupported_media_type, "
                      "no_model, overloaded.")
    error_count: int = Field(description="How many problems were found (at most 20 are listed).")
    errors: list[ErrorDetail] = Field(description="The problems, each with its field or position.")


def field_path(loc: Sequence[str | int]) -> str:
    """('body', 'accelerometer', 'x', 5) -> 'body.accelerometer.x[5]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def detail(loc: Sequence[str | int] | None, msg: str, type_: str) -> ErrorDetail:
    """One problem; for malformed JSON, the line and column the parser's message names."""
    position = _POSITION.search(msg)
    return ErrorDetail(field=field_path(loc) if loc else None, loc=list(loc or []), msg=msg, type=type_,
                       line=int(position[1]) if position else None, column=int(position[2]) if position else None)


class ApiError(HTTPException):
    """A client (4xx) or availability (503) error with a kind for the metrics and the problems it lists."""

    def __init__(self, status: int, kind: str, message: str, loc: Sequence[str | int] | None = None,
                 problems: list[ErrorDetail] | None = None, count: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.kind = kind
        self.message = message
        self.problems = problems if problems is not None else [detail(loc, message, kind)]
        self.count = count if count is not None else len(self.problems)

    def response(self) -> ErrorResponse:
        return ErrorResponse(detail=self.message, kind=self.kind, error_count=self.count,
                             errors=self.problems[:MAX_ERRORS_LISTED])


def error_json(error: ApiError) -> JSONResponse:
    return JSONResponse(error.response().model_dump(mode="json"), status_code=error.status_code,
                        headers=error.headers)


def validation_error(found: list[dict], prefix: Sequence[str | int] = ("body",)) -> ApiError:
    """422 (400 for malformed JSON) from pydantic's errors, listing at most MAX_ERRORS_LISTED; input not echoed."""
    problems = [detail([*prefix, *e.get("loc", ())] if e.get("type") != "json_invalid" else None,
                       str(e.get("msg", "")), str(e.get("type", ""))) for e in found[:MAX_ERRORS_LISTED]]
    shown = "; ".join(f"{p.field}: {p.msg}" if p.field else p.msg for p in problems[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    if found and all(e.get("type") == "json_invalid" for e in found):
        return ApiError(400, "invalid_json", f"the body is not valid JSON: {shown}", problems=problems)
    return ApiError(422, "validation", f"invalid request: {shown}{more}", problems=problems, count=len(found))


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    request.state.error_kind = exc.kind
    return error_json(exc)


async def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation (query, headers), in the same shape."""
    assert isinstance(exc, RequestValidationError)
    return await api_error_handler(request, validation_error(list(exc.errors()), prefix=()))


HTTP_KINDS = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
              415: "unsupported_media_type"}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's 404/405 (and any other HTTPException) in the same shape, keeping its headers (Allow)."""
    assert isinstance(exc, HTTPException)
    kind = HTTP_KINDS.get(exc.status_code, f"http_{exc.status_code}")
    return await api_error_handler(request, ApiError(exc.status_code, kind, str(exc.detail), headers=exc.headers))


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries declaring ErrorResponse for these statuses."""
    described = {400: "Malformed JSON (with line and column) or .npy", 401: "Missing or wrong API key",
                 413: "Body, samples, windows or span over a limit", 415: "Unsupported Content-Type",
                 422: "Invalid request (each problem with its field)",
                 503: "No model is loaded, or too many requests wait (overloaded, with Retry-After)"}
    retry_after = {"Retry-After": {"description": "Seconds to wait before retrying (when overloaded)",
                                   "schema": {"type": "integer"}}}
    return {status: {"model": ErrorResponse, "description": described[status],
                     **({"headers": retry_after} if status == 503 else {})} for status in statuses}


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413: the app stops reading at the limit.

    The check runs while the body streams in (after routing, so the metrics know the endpoint);
    a declared Content-Length is not trusted either way.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> ApiError:
        return ApiError(413, "too_large", f"request body exceeds the limit of {self.max_bytes} bytes "
                        "(HAR_MAX_BODY_BYTES)", loc=["body"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)
