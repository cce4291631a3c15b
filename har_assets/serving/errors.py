"""Client errors of the inference API: one JSON shape naming the field, and the request-size limit."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ERRORS_LISTED = 20


def field_path(loc: Sequence[str | int]) -> str:
    """('body', 'accelerometer', 'x', 5) -> 'body.accelerometer.x[5]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class ApiError(HTTPException):
    """A client (4xx) or availability (503) error with a kind for the metrics and the field it concerns."""

    def __init__(self, status: int, kind: str, message: str, loc: Sequence[str | int] | None = None) -> None:
        super().__init__(status_code=status, detail=message)
        self.kind = kind
        self.message = message
        self.loc = list(loc) if loc is not None else None

    def body(self) -> dict:
        body: dict = {"detail": self.message, "kind": self.kind}
        if self.loc is not None:
            body["field"] = field_path(self.loc)
            body["errors"] = [{"loc": self.loc, "msg": self.message, "type": self.kind}]
        return body


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    request.state.error_kind = exc.kind
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 listing every problem as field path + message (the offending input is not echoed back)."""
    assert isinstance(exc, RequestValidationError)
    request.state.error_kind = "validation"
    found = exc.errors()
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in found[:MAX_ERRORS_LISTED]]
    shown = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return JSONResponse({"detail": f"invalid request: {shown}{more}", "kind": "validation", "error_count": len(found),
                         "errors": errors}, status_code=422)


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
