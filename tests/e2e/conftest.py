"""The fleet as real processes, once per session, and clients that talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import socketio
from confab_devfleet import FilesBackend, Fleet, FleetOptions

from confab_devservers import FakeOpenAI
from gateway.ratelimit import Action

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
# A tenant with low limits, where tests see 429s and rate-limited acks; every other
# tenant has the production defaults (gateway.ratelimit.DEFAULT_LIMITS).
TENANT_LIMITED = "tenant-limited"
LOW_LIMITS = {
    "send": {"user": 3, "tenant": 1000},
    "conversation_create": {"user": 2, "tenant": 1000},
    "connect": {"user": 2, "tenant": 1000},
}
# A tenant for tests that set up at scale (a user in 1,000 conversations).
TENANT_BULK = "tenant-bulk"
_UNLIMITED = {"user": 1_000_000, "tenant": 1_000_000}
TENANT_RATE_LIMITS = {
    TENANT_LIMITED: LOW_LIMITS,
    TENANT_BULK: {"conversation_create": _UNLIMITED},
    # The fuzzer calls every operation as one user, many times a second.
    "tenant-fuzz": {action: _UNLIMITED for action in Action},
}


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


def _session_fleet(
    workdir: Path, fake_openai: FakeOpenAI, *, gateways: int, files_backend: FilesBackend
) -> Fleet:
    return Fleet(
        FleetOptions(
            workdir=workdir,
            gateways=gateways,
            openai_base_url=fake_openai.base_url,
            openai_api_key="test-key",
            extra_env={"gateway": {"GATEWAY_TENANT_RATE_LIMITS": json.dumps(TENANT_RATE_LIMITS)}},
            grpc_tls=True,
            files_backend=files_backend,
        )
    )


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI) -> Iterator[Fleet]:
    """The shared fleet, files in GridFS."""
    workdir = Path(os.environ.get("CONFAB_E2E_WORKDIR") or tmp_path_factory.mktemp("fleet"))
    # Two pods, so that a test can watch what crosses pods (a bot reply streamed
    # through Kafka to every gateway); the other tests use gateway 0.
    fleet = _session_fleet(workdir, fake_openai, gateways=2, files_backend="gridfs")
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(scope="session")
def s3_fleet(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI) -> Iterator[Fleet]:
    """A second fleet, files in a local versitygw (S3 API), started only when a test asks.

    The same tenants and limits as ``fleet``, one gateway; a suite parametrized over
    ``("fleet", "s3_fleet")`` (``request.getfixturevalue``) runs on both backends.
    """
    fleet = _session_fleet(
        tmp_path_factory.mktemp("s3-fleet"), fake_openai, gateways=1, files_backend="s3"
    )
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()


@contextlib.contextmanager
def running_fleet(
    workdir: Path,
    *,
    gateways: int,
    extra_env: dict[str, dict[str, str]] | None = None,
    files_backend: FilesBackend = "gridfs",
) -> Iterator[Fleet]:
    """A fleet of its own for a module that needs more gateways or breaks things.

    Sends and connects are not rate limited by default here: the delivery and chaos
    tests stream faster than the per-user limit allows, and retry and reconnect in
    bursts after an outage.
    """
    limits = {"send": _UNLIMITED, "connect": _UNLIMITED}
    env = {"gateway": {"GATEWAY_RATE_LIMITS": json.dumps(limits)}}
    for name, values in (extra_env or {}).items():
        env[name] = {**env.get(name, {}), **values}
    fleet = Fleet(
        FleetOptions(
            workdir=workdir,
            gateways=gateways,
            extra_env=env,
            grpc_tls=True,
            files_backend=files_backend,
        )
    )
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()


async def eventually(
    probe: Callable[[], Any],
    check: Callable[[Any], bool],
    timeout: float = 10,
    interval: float = 0.1,
) -> Any:
    """Polls a public API until ``check`` holds on its answer, or fails at the
    deadline; ``interval`` keeps a probe of a rate-limited call under its limit."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


class Api:
    """A REST client acting as one user."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )

    async def create(self, kind: str, members: list[str], title: str = "") -> dict[str, Any]:
        resp = await self.client.post(
            "/conversations", json={"kind": kind, "member_ids": members, "title": title}
        )
        assert resp.status_code in (200, 201), resp.text
        return dict(resp.json()["conversation"])

    async def send(self, conversation_id: str, text: str, client_msg_id: str) -> httpx.Response:
        return await self.client.post(
            f"/conversations/{conversation_id}/messages",
            json={"text": text, "client_msg_id": client_msg_id},
        )

    async def close(self) -> None:
        await self.client.aclose()


class Socket:
    """A Socket.IO client that keeps every event it receives, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

        @self.sio.on("*")
        async def _any(event: str, data: Any) -> None:
            async with self._changed:
                self.events.append((event, data))
                self._changed.notify_all()

    async def connect(self, url: str, token: str, transports: list[str] | None = None) -> None:
        await self.sio.connect(
            url, auth={"token": token}, transports=transports or ["websocket"], wait_timeout=10
        )

    async def wait_for(
        self, event: str, pred: Callable[[Any], bool] = lambda _: True, timeout: float = 10
    ) -> Any:
        async def find() -> Any:
            async with self._changed:
                while True:
                    for name, data in self.events:
                        if name == event and pred(data):
                            return data
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    def received(self, event: str, pred: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        return [data for name, data in self.events if name == event and pred(data)]

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


@pytest_asyncio.fixture(loop_scope="session")
async def users(fleet: Fleet) -> AsyncIterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(tenant: str, user: str, **claims: Any) -> Api:
        api = Api(fleet.gateway_url(), fleet.token(tenant, user, **claims))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


@pytest_asyncio.fixture(loop_scope="session")
async def sockets(fleet: Fleet) -> AsyncIterator[Callable[..., Any]]:
    made: list[Socket] = []

    async def make(tenant: str, user: str, gateway: int = 0, **claims: Any) -> Socket:
        sock = Socket()
        await sock.connect(fleet.gateway_url(gateway), fleet.token(tenant, user, **claims))
        made.append(sock)
        return sock

    yield make
    for sock in made:
        await sock.close()
