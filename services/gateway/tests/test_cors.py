"""One origin policy for REST and sockets, through the app create_app builds: the
gateway's own origin always works, listed origins work, every other one is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.origins import OriginPolicy
from gateway.settings import GatewaySettings

OWN = "http://gateway"
ALLOWED = "https://chat.example.com"
OTHER = "https://evil.example.net"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def app(origins: list[str]) -> Any:
    settings = GatewaySettings(
        conversation_addr="127.0.0.1:1",
        presence_addr="127.0.0.1:1",
        notification_addr="127.0.0.1:1",
        bot_addr="127.0.0.1:1",
        kafka_bootstrap_servers="127.0.0.1:1",
        redis_url="redis://127.0.0.1:1",
        jwt_hs256_secret="s" * 40,  # type: ignore[arg-type]
        internal_key="k" * 40,  # type: ignore[arg-type]
        file_url_key="f" * 32,  # type: ignore[arg-type]
        cors_origins=origins,
    )
    return create_app(settings)


def client(origins: list[str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app(origins)), base_url=OWN)


async def preflight(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await http.options(
        "/api/v1/conversations",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


@pytest.mark.asyncio
async def test_default_refuses_cross_origin_rest_and_sockets() -> None:
    async with client([]) as http:
        refused = await preflight(http, OTHER)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        # A simple cross-origin call reaches the route but the browser may not read it.
        resp = await http.get("/api/v1/no-such-route", headers={"Origin": OTHER})
        assert resp.status_code == 404
        assert "access-control-allow-origin" not in resp.headers
        assert (await http.get(HANDSHAKE, headers={"Origin": OTHER})).status_code == 400


@pytest.mark.asyncio
async def test_same_origin_always_works() -> None:
    for origins in ([], [ALLOWED]):
        async with client(origins) as http:
            resp = await http.get("/api/v1/no-such-route", headers={"Origin": OWN})
            assert resp.status_code == 404  # reached the API
            assert (await http.get(HANDSHAKE, headers={"Origin": OWN})).status_code == 200
            # Without Origin (not a browser) nothing is checked.
            assert (await http.get(HANDSHAKE)).status_code == 200


@pytest.mark.asyncio
async def test_listed_origins_work_on_rest_and_sockets() -> None:
    async with client([ALLOWED]) as http:
        ok = await preflight(http, ALLOWED)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ALLOWED
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        resp = await http.get("/api/v1/no-such-route", headers={"Origin": ALLOWED})
        assert resp.headers["access-control-allow-origin"] == ALLOWED
        # Clients read Retry-After off a 429.
        assert "retry-after" in resp.headers["access-control-expose-headers"].lower()
        assert (await http.get(HANDSHAKE, headers={"Origin": ALLOWED})).status_code == 200
        assert (await preflight(http, OTHER)).status_code == 400
        assert (await http.get(HANDSHAKE, headers={"Origin": OTHER})).status_code == 400


@pytest.mark.asyncio
async def test_star_allows_any_origin() -> None:
    async with client(["*"]) as http:
        assert (await preflight(http, OTHER)).status_code == 200
        assert (await http.get(HANDSHAKE, headers={"Origin": OTHER})).status_code == 200


def test_same_origin_behind_a_proxy() -> None:
    policy = OriginPolicy([])
    environ = {
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "gateway:8080",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "chat.example.com",
    }
    assert policy.allows("https://chat.example.com", environ)
    assert policy.allows("http://gateway:8080", environ)
    assert not policy.allows("https://gateway:8080.evil.net", environ)
    assert not policy.allows("null", environ)


@pytest.mark.parametrize(
    "bad", ['["chat.example.com"]', '["https://chat.example.com/"]', '["ftp://x"]', '"x"']
)
def test_bad_origins_fail_fast(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", bad)
    with pytest.raises(ValueError):
        GatewaySettings(
            conversation_addr="x",
            presence_addr="x",
            notification_addr="x",
            bot_addr="x",
            kafka_bootstrap_servers="x",
            redis_url="redis://x",
            jwt_hs256_secret="s" * 40,  # type: ignore[arg-type]
            internal_key="k" * 40,  # type: ignore[arg-type]
            file_url_key="f" * 32,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("key", [None, "f" * 31])
def test_a_missing_or_short_file_url_key_fails_fast(key: str | None) -> None:
    with pytest.raises(ValueError, match=r"file_url_key|GATEWAY_FILE_URL_KEY"):
        GatewaySettings(
            conversation_addr="x",
            presence_addr="x",
            notification_addr="x",
            bot_addr="x",
            kafka_bootstrap_servers="x",
            redis_url="redis://x",
            jwt_hs256_secret="s" * 40,  # type: ignore[arg-type]
            internal_key="k" * 40,  # type: ignore[arg-type]
            **({} if key is None else {"file_url_key": key}),  # type: ignore[arg-type]
        )
