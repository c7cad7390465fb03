import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.bodylimit import BodyLimitMiddleware


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body)})


def client(limit: int) -> httpx.AsyncClient:
    app = BodyLimitMiddleware(Starlette(routes=[Route("/", echo, methods=["POST"])]), limit)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.asyncio
async def test_small_body_passes() -> None:
    async with client(100) as c:
        resp = await c.post("/", content=b"x" * 100)
    assert resp.json() == {"size": 100}


@pytest.mark.asyncio
async def test_declared_length_over_limit_is_refused_unread() -> None:
    async with client(100) as c:
        resp = await c.post("/", content=b"x" * 101)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


@pytest.mark.asyncio
async def test_streamed_body_over_limit_is_refused() -> None:
    async def chunks():  # no content-length: chunked transfer
        for _ in range(5):
            yield b"x" * 50

    async with client(100) as c:
        resp = await c.post("/", content=chunks())
    assert resp.status_code == 413
