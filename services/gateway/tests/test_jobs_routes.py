"""Export, erasure and job routes over ASGI: bad input never reaches the service,
and every route spends its own rate-limit budget before calling it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import jobs_pb2 as jpb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway import schemas
from gateway.clients.jobops import JobOps
from gateway.clients.jobs import JobClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, shared_api, token

pytestmark = pytest.mark.asyncio


class FakeJobs:
    """Records each JobService request; answers with an empty job."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def rpc(request: Any, timeout: float | None = None) -> Any:
            self.calls.append(name)
            if name == "ReadExportChunk":
                return jpb.ReadExportChunkResponse(data=b"{}\n", content_type="text/csv", parts=1)
            return getattr(jpb, f"{name}Response")(
                job=jpb.Job(id="j1", kind="export", status="queued")
            )

        return rpc


class Refusing:
    def __init__(self) -> None:
        self.checked: list[Action] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter


@pytest_asyncio.fixture
async def world() -> AsyncIterator[tuple[httpx.AsyncClient, FakeJobs, Refusing]]:
    stub, limiter = FakeJobs(), Refusing()
    backends = type("B", (), {"jobs": JobClient(cast(Any, stub), 5.0)})()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(limiter)),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token()}"},
    ) as http:
        yield http, stub, limiter


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/exports", {"scope": "planet", "id": "c1"}),
        ("/exports", {"scope": "conversation", "id": "c1", "format": "xml"}),
        ("/exports", {"scope": "conversation", "id": "x" * 129}),
        ("/exports", {"scope": "conversation", "id": "c1", "extra": 1}),
        ("/erasures", {}),
        ("/erasures", {"user_id": ""}),
        ("/erasures", {"user_id": 7}),
    ],
)
async def test_bad_input_is_422_and_reaches_no_service(
    world: tuple[httpx.AsyncClient, FakeJobs, Refusing], path: str, body: dict[str, Any]
) -> None:
    http, stub, limiter = world
    resp = await http.post(path, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"]
    assert stub.calls == [] and limiter.checked == []


async def test_a_job_id_too_long_is_422(
    world: tuple[httpx.AsyncClient, FakeJobs, Refusing],
) -> None:
    http, stub, _ = world
    for path in ("/jobs/", "/exports/", "/exports/{}/download"):
        resp = await http.get(path.replace("{}", "x" * 129) if "{}" in path else path + "x" * 129)
        assert resp.status_code == 422, resp.text
    assert stub.calls == []


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        ("post", "/exports", {"scope": "tenant"}, Action.EXPORT),
        ("get", "/exports/j1/download", None, Action.EXPORT),
        ("post", "/erasures", {"user_id": "u2"}, Action.ERASURE),
        ("get", "/jobs/j1", None, Action.JOB_STATUS),
        ("get", "/exports/j1", None, Action.JOB_STATUS),
        ("post", "/jobs/j1/cancel", None, Action.JOB_STATUS),
    ],
)
async def test_every_route_spends_its_own_budget_first(
    world: tuple[httpx.AsyncClient, FakeJobs, Refusing],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: Action,
) -> None:
    http, stub, limiter = world
    resp = await (http.post(path, json=body) if method == "post" else http.get(path))
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == "3"
    assert limiter.checked == [action] and stub.calls == []


async def test_job_out_translates_every_field() -> None:
    stub = FakeJobs()

    class Allow:
        async def check(self, caller: Caller, action: Action) -> None:
            return None

    ops = JobOps(JobClient(cast(Any, stub), 5.0), cast(Any, Allow()))
    out = await ops.create_export(Caller("t1", "u1"), schemas.CreateExportIn(scope="tenant"))
    assert (out.id, out.kind, out.status, out.result, out.error) == (
        "j1",
        "export",
        "queued",
        None,
        None,
    )
    download = await ops.download(Caller("t1", "u1"), "j1")
    assert download.filename == "export-j1.csv"
    assert [c async for c in download.chunks] == [b"{}\n"]
