"""Server and client interceptors: caller identity, trace context, metrics, errors."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from confab_core.errors import ERROR_CODE_METADATA_KEY, ConfabError, Unauthenticated
from confab_core.grpcx import Ctx
from confab_core.identity import (
    CALLER_METADATA_KEY,
    maybe_caller,
    reset_caller,
    reset_service,
    set_caller,
    set_service,
)
from confab_core.requestinfo import RequestInfo, current_request, reset_request, set_request
from confab_core.servicetoken import TokenSigner, TokenVerifier, Verified
from confab_core.telemetry import tracer

log = logging.getLogger(__name__)

SERVER_HANDLED = Counter(
    "confab_grpc_server_handled_total",
    "gRPC calls handled, by method and status code",
    ["grpc_method", "grpc_code"],
)
SERVER_SECONDS = Histogram(
    "confab_grpc_server_handling_seconds",
    "gRPC handling time, by method",
    ["grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

DEPENDENCY_DOWN = (ConnectionFailure, RedisConnectionError, RedisTimeoutError)

Handler = Callable[[Any, Ctx], Awaitable[Any]]
# grpc stubs make it generic; the runtime class is not subscriptable.
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Verifies the service token, restores the caller and trace context,
    records metrics, maps errors.

    Unary-unary methods carry most business calls; client-streaming and
    server-streaming ones (file uploads and downloads) get the same treatment.
    Bidirectional streams (health, reflection) pass through untouched. A call
    without a token runs with no caller and no service (health checks): every
    business method then refuses it.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        verifier = self._verifier
        if handler.stream_unary is not None:
            upload = cast(Handler, handler.stream_unary)

            async def stream_in(requests: Any, context: Ctx) -> Any:
                return await _handle(method, upload, verifier, requests, context)

            return grpc.stream_unary_rpc_method_handler(
                stream_in,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            download = cast(Callable[[Any, Ctx], AsyncIterator[Any]], handler.unary_stream)

            async def stream_out(request: Any, context: Ctx) -> AsyncIterator[Any]:
                async for item in _handle_stream(method, download, verifier, request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream_out,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is None:
            return handler
        inner = cast(Handler, handler.unary_unary)

        async def wrapper(request: Any, context: Ctx) -> Any:
            return await _handle(method, inner, verifier, request, context)

        return grpc.unary_unary_rpc_method_handler(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _handle_stream(
    method: str,
    inner: Callable[[Any, Ctx], AsyncIterator[Any]],
    verifier: TokenVerifier,
    request: Any,
    context: Ctx,
) -> AsyncIterator[Any]:
    """``_handle`` for a server-streaming method: its start (up to the first
    item) runs under ``_handle`` (caller, metrics, error mapping); the caller
    stays set while the rest streams, and an error between items ends the
    stream with its status and stable code."""
    started: list[AsyncIterator[Any]] = []

    async def first(req: Any, ctx: Ctx) -> Any:
        stream = inner(req, ctx)
        started.append(stream)
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return _END

    head = await _handle(method, first, verifier, request, context)
    if head is _END:
        return
    yield head
    verified = Verified("", None)
    for key, value in tuple(context.invocation_metadata() or ()):
        if key == CALLER_METADATA_KEY and isinstance(value, bytes):
            verified = verifier.verify(value)
    token = set_caller(verified.caller)
    service_token = set_service(verified.service or None)
    try:
        async for item in started[0]:
            yield item
    except ConfabError as exc:
        context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, exc.code),))
        await context.abort(exc.grpc_status, exc.message)
    finally:
        reset_caller(token)
        reset_service(service_token)


# What a stream that ends before its first item answers ``first`` with.
_END = object()


async def _handle(
    method: str, inner: Handler, verifier: TokenVerifier, request: Any, context: Ctx
) -> Any:
    metadata = tuple(context.invocation_metadata() or ())
    carrier = {k: v for k, v in metadata if isinstance(v, str)}
    verified = Verified("", None)
    try:
        for key, value in metadata:
            if key == CALLER_METADATA_KEY:
                if not isinstance(value, bytes):
                    raise Unauthenticated("unsigned caller metadata", "bad_service_token")
                verified = verifier.verify(value)
    except ConfabError as exc:
        # An unsigned, forged or expired token is the peer's fault:
        # UNAUTHENTICATED with its stable code, not an UNKNOWN.
        SERVER_HANDLED.labels(method, exc.grpc_status.name).inc()
        context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, exc.code),))
        await context.abort(exc.grpc_status, exc.message)
    caller = verified.caller
    token = set_caller(caller)
    service_token = set_service(verified.service or None)
    request_token = set_request(RequestInfo.from_metadata(metadata))
    started = time.perf_counter()
    code = "OK"
    # Aborting sends the status at once, so metrics are recorded first: a
    # caller that sees the error also sees it counted.
    failure: tuple[grpc.StatusCode, str] | None = None
    span_name = method.lstrip("/")
    try:
        with tracer().start_as_current_span(
            span_name,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": method},
        ) as span:
            if caller is not None:
                span.set_attribute("confab.tenant_id", caller.tenant_id)
                span.set_attribute("confab.user_id", caller.user_id)
            try:
                return await inner(request, context)
            except ConfabError as exc:
                span.set_attribute("confab.error_code", exc.code)
                context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, exc.code),))
                failure = (exc.grpc_status, exc.message)
            except grpc.aio.AbortError:
                aborted = context.code()
                code = aborted.name if isinstance(aborted, grpc.StatusCode) else "UNKNOWN"
                raise
            except DEPENDENCY_DOWN as exc:
                # A database or cache outage is temporary: UNAVAILABLE lets
                # callers retry (idempotent by design) instead of giving up.
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.warning("dependency unavailable in %s: %s", method, exc)
                context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, "unavailable"),))
                failure = (grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable")
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.exception("unhandled error in %s", method)
                context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, "internal"),))
                failure = (grpc.StatusCode.INTERNAL, "internal error")
    finally:
        reset_caller(token)
        reset_service(service_token)
        reset_request(request_token)
        if failure is not None:
            code = failure[0].name
        SERVER_HANDLED.labels(method, code).inc()
        SERVER_SECONDS.labels(method).observe(time.perf_counter() - started)
    if failure is None:
        raise AssertionError("unreachable: every path returns, raises or fails")
    await context.abort(*failure)
    raise AssertionError("unreachable: abort raises")


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Sends a token signed for ``audience``, naming the current caller (or
    none: the service acting as itself), and the trace context, with every
    outgoing call. The one way identity travels between services."""

    def __init__(self, signer: TokenSigner, audience: str) -> None:
        self._signer = signer
        self._audience = audience

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(client_call_details.metadata or ())
        metadata.append((CALLER_METADATA_KEY, self._signer.token(maybe_caller(), self._audience)))
        metadata.extend(current_request().metadata())
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        with tracer().start_as_current_span(
            name.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.method": name},
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata.extend(carrier.items())
            details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                client_call_details.timeout,
                grpc.aio.Metadata(*metadata),
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
            call = await continuation(details, request)
            # Awaiting inside the span makes its duration the real call time.
            await call
            return call


class _StreamMetadata:
    """The metadata ClientInterceptor sends, for streamed calls (file uploads and
    downloads). They get no client span of their own: their life is the transfer's.

    A separate object per kind of call: grpc.aio files each interceptor under one
    kind only."""

    def __init__(self, signer: TokenSigner, audience: str) -> None:
        self._signer = signer
        self._audience = audience

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or ())
        metadata.append((CALLER_METADATA_KEY, self._signer.token(maybe_caller(), self._audience)))
        metadata.extend(current_request().metadata())
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        metadata.extend(carrier.items())
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )


class UnaryStreamClientInterceptor(_StreamMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class StreamUnaryClientInterceptor(_StreamMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)
