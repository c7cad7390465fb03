"""Runs a gRPC service: interceptors, health, reflection, mTLS, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from confab_core.grpcx.interceptors import ServerInterceptor
from confab_core.servicetoken import InternalAuth

log = logging.getLogger(__name__)


class GrpcServer:
    """``health_port``: with mTLS on, a second, plaintext port that serves only the
    health service, for probes that cannot present a certificate (the kubelet's
    native gRPC probes speak no TLS). Business methods never listen there.
    """

    def __init__(
        self,
        port: int,
        auth: InternalAuth,
        host: str = "0.0.0.0",
        health_port: int | None = None,
    ) -> None:
        self._address = f"{host}:{port}"
        self._tls = auth.tls
        self._health_address = f"{host}:{health_port}"
        self._health_server: grpc.aio.Server | None = None
        if auth.tls is not None and health_port is not None:
            self._health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.health_port = 0
        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(auth.verifier)],
            options=[("grpc.so_reuseport", 0)],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if self._health_server is not None:
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        self._names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        self.port = 0

    def add(self, register: Callable[[grpc.aio.Server], None], full_name: str) -> None:
        register(self.server)
        self._names.append(full_name)

    async def start(self) -> int:
        reflection.enable_server_reflection(self._names, self.server)
        if self._tls is None:
            self.port = self.server.add_insecure_port(self._address)
        else:
            self.port = self.server.add_secure_port(self._address, self._tls.server_credentials())
        await self.server.start()
        if self._health_server is not None:
            self.health_port = self._health_server.add_insecure_port(self._health_address)
            await self._health_server.start()
        for name in [*self._names, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc serving", extra={"port": self.port})
        return self.port

    async def stop(self, grace: float) -> None:
        # NOT_SERVING first so the kubelet and balancers stop sending new calls
        # while in-flight ones finish within the grace period.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_until_signal(
    server: GrpcServer | None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]],
    grace: float,
) -> None:
    """Serves and runs background loops until SIGTERM/SIGINT, then drains.

    A background loop that crashes stops the process: a half-working service
    is worse than a restarted one.
    """
    if server is not None:
        await server.start()
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(fn(), name=getattr(fn, "__name__", "bg")) for fn in background
    ]
    waiter = asyncio.create_task(wait_for_stop_signal())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception() is not None:
                log.error("background task failed", exc_info=task.exception())
                raise SystemExit(1)
    finally:
        log.info("shutting down")
        if server is not None:
            await server.stop(grace)
        for task in [waiter, *tasks]:
            task.cancel()
        for task in [waiter, *tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
