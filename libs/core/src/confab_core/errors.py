"""Domain errors with stable codes, shared by every service and the gateway.

A handler raises one of these; the gRPC layer turns it into a status code plus
the stable code in trailing metadata, and the gateway turns that back into an
HTTP status and a JSON body. Clients match on ``code``, never on messages.
"""

from __future__ import annotations

import grpc

ERROR_CODE_METADATA_KEY = "confab-error-code"


class ConfabError(Exception):
    grpc_status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    http_status: int = 500
    default_code: str = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class InvalidArgument(ConfabError):
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 422
    default_code = "invalid_argument"


class NotFound(ConfabError):
    grpc_status = grpc.StatusCode.NOT_FOUND
    http_status = 404
    default_code = "not_found"


class PermissionDenied(ConfabError):
    grpc_status = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_code = "forbidden"


class Unauthenticated(ConfabError):
    grpc_status = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    default_code = "unauthenticated"


class Conflict(ConfabError):
    grpc_status = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409
    default_code = "conflict"


class FailedPrecondition(ConfabError):
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409
    default_code = "failed_precondition"


class ResourceExhausted(ConfabError):
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    default_code = "rate_limited"


class TooLarge(ConfabError):
    """An upload above the size policy (file_too_large) or a full storage quota
    (quota_exceeded): HTTP 413, unlike a rate limit's 429."""

    grpc_status = grpc.StatusCode.OUT_OF_RANGE
    http_status = 413
    default_code = "too_large"


class Unavailable(ConfabError):
    grpc_status = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_code = "unavailable"


_BY_STATUS: dict[grpc.StatusCode, type[ConfabError]] = {
    cls.grpc_status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        PermissionDenied,
        Unauthenticated,
        Conflict,
        FailedPrecondition,
        ResourceExhausted,
        TooLarge,
        Unavailable,
    )
}


def from_grpc(status: grpc.StatusCode, message: str, code: str | None) -> ConfabError:
    """Rebuilds the domain error a peer service raised."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        if status == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Unavailable(message or "upstream timed out", "upstream_timeout")
        if status == grpc.StatusCode.CANCELLED:
            # The call was cut off before an answer (seen under overload): whether
            # it took effect is unknown, and every call is safe to retry.
            return Unavailable("the call was cancelled; retry", "upstream_cancelled")
        return ConfabError(message or status.name.lower(), code or "internal")
    return cls(message, code)
