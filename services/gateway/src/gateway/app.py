"""Builds the gateway ASGI app (FastAPI + Socket.IO) and serves it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import socketio
import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from confab.bot.v1 import stream_pb2
from confab_core import redisx
from confab_core.auth import JwtVerifier
from confab_core.clock import Clock, SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.ids import new_id
from confab_core.kafka import (
    BOT_STREAMS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    PRESENCE_EVENTS_TOPIC,
    consume_forever,
)
from confab_core.logs import setup_logging
from confab_core.sealed_events import STREAM_COLLECTION, EventOpener, SealedOpener
from confab_core.servicetoken import GATEWAY
from confab_core.settings import internal_auth, load_settings
from confab_core.telemetry import setup_tracing
from confab_core.tenant_settings import TenantSettingsCache, settings_consumer
from gateway import errors
from gateway.bodylimit import BodyLimitMiddleware, StreamedBody
from gateway.clients.backends import Backends
from gateway.clients.ops import ChatOps
from gateway.context import GatewayContext
from gateway.fileops import MAX_UPLOAD_BODY_BYTES
from gateway.fileurls import FileUrlSigner
from gateway.origins import OriginPolicy
from gateway.ratelimit import RateLimiter
from gateway.realtime.fanout import Fanout
from gateway.realtime.lean import LeanSocketServer, LeanWebSocketProtocol
from gateway.realtime.sockets import SocketGateway
from gateway.realtime.streams import StreamRelay
from gateway.requestinfo import RequestInfoMiddleware
from gateway.routes import (
    ai,
    analytics,
    assignment,
    audit,
    canned,
    channels,
    conversations,
    events,
    files,
    health,
    jobs,
    members,
    messages,
    moderation,
    notifications,
    platform,
    policy,
    presence,
    reactions,
    search,
    sla,
    tickets,
)
from gateway.routes import settings as tenant_settings_routes
from gateway.settings import GatewaySettings
from gateway.tracing import TracingMiddleware

SERVICE = "gateway"
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
API_PREFIX = "/api/v1"
# Routes that read their body as a stream, up to their own cap: file uploads.
STREAMED_BODIES = (
    StreamedBody(
        "POST", re.compile(rf"^{API_PREFIX}/conversations/[^/]+/files$"), MAX_UPLOAD_BODY_BYTES
    ),
)


def create_app(settings: GatewaySettings, clock: Clock | None = None) -> ASGIApp:
    clock = clock or SystemClock()
    gateway_id = settings.gateway_id or f"{socket.gethostname()}-{new_id()[:8]}"
    origins = OriginPolicy(settings.cors_origins)
    sio = LeanSocketServer(
        async_mode="asgi",
        cors_allowed_origins=origins,
        logger=False,
        engineio_logger=False,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = Backends.open(
            internal_auth(GATEWAY, settings, clock),
            conversation=settings.conversation_addr,
            presence=settings.presence_addr,
            notification=settings.notification_addr,
            bot=settings.bot_addr,
            timeout=settings.rpc_timeout_seconds,
            transfer_timeout=settings.file_transfer_timeout_seconds,
        )
        redis = redisx.connect(settings.redis_url)
        ops = ChatOps(
            backends,
            RateLimiter(redis, clock, settings.rate_limits, settings.tenant_rate_limits),
        )
        verifier = JwtVerifier(
            hs256_secret=settings.jwt_hs256_secret.get_secret_value()
            if settings.jwt_hs256_secret
            else None,
            jwks_url=settings.jwt_jwks_url,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        tenant_settings = TenantSettingsCache(
            backends.settings.load, clock, settings.settings_cache_seconds
        )
        ctx = GatewayContext(
            settings=settings,
            verifier=verifier,
            backends=backends,
            ops=ops,
            tenant_settings=tenant_settings,
            file_urls=FileUrlSigner(
                settings.file_url_key.get_secret_value().encode(),
                clock,
                API_PREFIX,
                settings.file_url_ttl_seconds,
            ),
        )
        app.state.gateway = ctx
        group = f"gateway-{gateway_id}"
        keys = CachingKeySource(backends.keys, ttl_seconds=settings.key_cache_seconds, clock=clock)
        streams = StreamRelay(
            sio,
            SealedOpener(keys, group, stream_pb2.StreamEvent, STREAM_COLLECTION),
            ops.stream_text,
            clock,
        )
        sockets = SocketGateway(sio, ops, verifier, gateway_id, clock, streams)
        limit = settings.presence_room_limit

        async def presence_audience(tenant_id: str, user_id: str) -> list[str]:
            return await ops.conversations_of(tenant_id, user_id, limit)

        fanout = Fanout(sio, EventOpener(keys, group), presence_audience, clock)
        tasks = [
            asyncio.create_task(
                consume_forever(
                    bootstrap=settings.kafka_bootstrap_servers,
                    security=settings.kafka_security(),
                    topics=[CONVERSATION_EVENTS_TOPIC, PRESENCE_EVENTS_TOPIC],
                    group_id=group,
                    handler=fanout.handle,
                    from_latest=True,
                    ready=ctx.fanout_ready,
                )
            ),
            # Its own consumer: a slow conversation event never holds up deltas,
            # and one partition's stream events stay in order.
            asyncio.create_task(
                consume_forever(
                    bootstrap=settings.kafka_bootstrap_servers,
                    security=settings.kafka_security(),
                    topics=[BOT_STREAMS_TOPIC],
                    group_id=f"{group}-streams",
                    handler=streams.handle,
                    from_latest=True,
                    ready=ctx.streams_ready,
                )
            ),
            asyncio.create_task(
                settings_consumer(
                    tenant_settings,
                    bootstrap=settings.kafka_bootstrap_servers,
                    security=settings.kafka_security(),
                    group_id=f"{group}-settings",
                    ready=ctx.settings_ready,
                )
            ),
            asyncio.create_task(sockets.heartbeat_forever(settings.heartbeat_seconds)),
            asyncio.create_task(sockets.expire_forever()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await backends.close()
            await redis.aclose()

    api = build_api(lifespan)
    limited = TracingMiddleware(
        RequestInfoMiddleware(
            origins.rest(
                BodyLimitMiddleware(api, settings.max_body_bytes, streamed=STREAMED_BODIES)
            )
        )
    )
    app: ASGIApp = socketio.ASGIApp(sio, other_asgi_app=limited, socketio_path="socket.io")
    return app


def build_api(lifespan: Lifespan | None = None) -> FastAPI:
    api = FastAPI(
        title="Confab API",
        version="1.0.0",
        description="Multi-tenant real-time chat. Socket.IO events: see docs/events.md.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    v1 = APIRouter(prefix=API_PREFIX)
    for module in (
        conversations,
        members,
        messages,
        reactions,
        events,
        channels,
        search,
        presence,
        notifications,
        jobs,
        policy,
        audit,
        moderation,
        sla,
        canned,
        tickets,
        assignment,
        analytics,
        platform,
        ai,
        tenant_settings_routes,
        files,
    ):
        v1.include_router(module.router)
    api.include_router(v1)
    api.include_router(health.router)
    errors.install(api)
    return api


async def main() -> None:
    settings = load_settings(GatewaySettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.http_port,
        log_config=None,
        lifespan="on",
        # Sockets cost what uvicorn, Engine.IO and Socket.IO keep for them while idle
        # (realtime/lean.py trims that). permessage-deflate would add ~44 KiB of zlib
        # state to every socket whose client offers it (browsers do), for small JSON
        # frames; off, as in the reference Socket.IO server (engine.io 4+), and
        # clients simply do not compress.
        ws=LeanWebSocketProtocol,
        ws_per_message_deflate=False,
        # Engine.IO pings every socket and drops the silent ones (ping_interval,
        # ping_timeout); uvicorn's own websocket ping would be a second timer and a
        # second wake-up per socket for the same job, as in no Socket.IO server.
        ws_ping_interval=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    await uvicorn.Server(config).serve()
