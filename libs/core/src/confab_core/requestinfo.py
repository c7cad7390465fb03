"""Where a request came from: its id and the client's address, for the audit log.

The gateway sets it once per public request; the gRPC client interceptor sends it
in metadata and the server interceptor restores it, so the conversation service
reads ``current_request()`` the way it reads ``current_caller()``. It is context,
never a permission: nothing is allowed or refused because of it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

REQUEST_ID_METADATA_KEY = "confab-request-id"
CLIENT_IP_METADATA_KEY = "confab-client-ip"
# Longer values are cut: they come from a client header and end up stored.
MAX_REQUEST_ID_CHARS = 128
MAX_CLIENT_IP_CHARS = 64


@dataclass(frozen=True, slots=True)
class RequestInfo:
    request_id: str = ""
    client_ip: str = ""

    def metadata(self) -> list[tuple[str, str]]:
        out = []
        if self.request_id:
            out.append((REQUEST_ID_METADATA_KEY, self.request_id))
        if self.client_ip:
            out.append((CLIENT_IP_METADATA_KEY, self.client_ip))
        return out

    @classmethod
    def from_metadata(cls, metadata: Sequence[tuple[str, str | bytes]]) -> RequestInfo | None:
        found: dict[str, str] = {}
        for key, value in metadata:
            if key in (REQUEST_ID_METADATA_KEY, CLIENT_IP_METADATA_KEY) and isinstance(value, str):
                found[key] = value
        if not found:
            return None
        return cls.of(found.get(REQUEST_ID_METADATA_KEY, ""), found.get(CLIENT_IP_METADATA_KEY, ""))

    @classmethod
    def of(cls, request_id: str, client_ip: str) -> RequestInfo:
        return cls(request_id[:MAX_REQUEST_ID_CHARS], client_ip[:MAX_CLIENT_IP_CHARS])


_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "confab_request", default=None
)


def current_request() -> RequestInfo:
    """This request's info; empty fields when it did not come through the gateway."""
    return _request.get() or RequestInfo()


def set_request(info: RequestInfo | None) -> contextvars.Token[RequestInfo | None]:
    return _request.set(info)


def reset_request(token: contextvars.Token[RequestInfo | None]) -> None:
    _request.reset(token)


@contextlib.contextmanager
def serving(info: RequestInfo | None) -> Iterator[None]:
    token = _request.set(info)
    try:
        yield
    finally:
        _request.reset(token)
