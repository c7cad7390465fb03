"""Gives every REST request an id and notes the client's address, for the audit log.

A client's ``X-Request-ID`` is kept when it is short, printable ASCII; otherwise
the gateway makes one. Either way it is echoed in the response. The address is
the peer of the connection as uvicorn reports it (behind a proxy, uvicorn's
``--forwarded-allow-ips`` decides whether ``X-Forwarded-For`` counts), never a
header taken on trust here.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confab_core.ids import new_id
from confab_core.requestinfo import MAX_REQUEST_ID_CHARS, RequestInfo, serving

HEADER = b"x-request-id"
_USABLE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_REQUEST_ID_CHARS}}}$")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key.lower() == HEADER:
            given = value.decode("latin-1")
            if _USABLE.match(given):
                return given
    return new_id()


class RequestInfoMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(list(scope.get("headers", ())))
        client = scope.get("client")
        info = RequestInfo.of(request_id, str(client[0]) if client else "")

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with serving(info):
            await self.app(scope, receive, tagged)
