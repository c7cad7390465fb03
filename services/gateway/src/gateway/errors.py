"""Every failure leaves the gateway as JSON with a stable code, never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from confab_core.errors import ConfabError
from gateway.ratelimit import RateLimited

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def error_body(exc: ConfabError) -> dict[str, object]:
    """The ``error`` object of a refused call, as REST bodies and socket acks carry it."""
    body: dict[str, object] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, RateLimited):
        body["retry_after"] = exc.retry_after
    return body


def install(app: FastAPI) -> None:
    @app.exception_handler(ConfabError)
    async def _domain(_: Request, exc: ConfabError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("upstream failure: %s (%s)", exc.message, exc.code)
            return error_response(
                503 if exc.http_status == 503 else 502, exc.code, "upstream service error"
            )
        if isinstance(exc, RateLimited):
            return JSONResponse(
                {"error": error_body(exc)},
                status_code=exc.http_status,
                headers={"Retry-After": str(exc.retry_after)},
            )
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = first.get("msg", "invalid request")
        return error_response(422, "invalid_request", f"{where}: {msg}" if where else msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "route_not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ValidationError)
    async def _bad_upstream(_: Request, exc: ValidationError) -> JSONResponse:
        # Request bodies fail as RequestValidationError above; a plain
        # ValidationError means a service answered with a shape we cannot show.
        log.error("upstream answer failed validation: %s", exc)
        return error_response(502, "bad_upstream_response", "upstream service error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled gateway error")
        return error_response(500, "internal", "internal error")
