"""One origin policy for REST and sockets.

Browsers attach ``Origin`` to cross-origin calls and to every WebSocket handshake.
A page of the gateway's own origin (the web app it serves) is always allowed; other
origins only when listed in ``GATEWAY_CORS_ORIGINS``. REST enforces it through
Starlette's CORSMiddleware (a cross-origin call needs a preflight, because of the
``Authorization`` header, and a refused preflight stops the browser); sockets through
Engine.IO, which refuses the handshake of an origin the policy does not allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

# What a browser may send on a cross-origin call, and the headers it may read back.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "traceparent", "tracestate"]
# Content-Disposition: a file download's name, for the page that saves it.
_EXPOSED = ["Retry-After", "Content-Disposition"]


class OriginPolicy:
    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")

    def allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        """Engine.IO's check: no Origin (not a browser), the gateway's own, or a listed one."""
        if not origin or self.any or origin in self.origins:
            return True
        return origin in _own_origins(environ)

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return self.allows(origin, environ)

    def rest(self, app: ASGIApp) -> ASGIApp:
        """Wraps the REST app; same-origin calls carry no preflight and pass untouched."""
        return CORSMiddleware(
            app,
            allow_origins=["*"] if self.any else sorted(self.origins),
            allow_methods=_METHODS,
            allow_headers=_HEADERS,
            expose_headers=_EXPOSED,
            # Bearer tokens, not cookies: no credentials mode needed.
            allow_credentials=False,
            max_age=600,
        )


def _own_origins(environ: Mapping[str, Any]) -> set[str]:
    """The origin the client reached, directly or through a proxy that says so (as
    Engine.IO computes it for its own same-origin default)."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    own = {f"{scheme}://{host}"}
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
    if proto or forwarded_host:
        first_proto = str(proto or scheme).split(",")[0].strip()
        first_host = str(forwarded_host or host).split(",")[0].strip()
        own.add(f"{first_proto}://{first_host}")
    return own
