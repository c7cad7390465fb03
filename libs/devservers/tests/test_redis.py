from __future__ import annotations

from pathlib import Path

import pytest
import redis
import redis.asyncio

from confab_devservers import RedisServer


def test_ping_and_url(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.asyncio
async def test_async_client_pubsub(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        pubsub = client.pubsub()
        await pubsub.subscribe("room:1")
        await client.publish("room:1", "hello")
        message = None
        for _ in range(20):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                break
        assert message is not None and message["data"] == b"hello"
        await pubsub.aclose()
    finally:
        await client.aclose()


def test_restart_keeps_port_and_starts_empty(redis_server: RedisServer) -> None:
    port = redis_server.port
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("k", "v")
        redis_server.restart()
        assert redis_server.port == port
        # No persistence by design: a restart is a clean slate.
        assert client.get("k") is None
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert client.ping() is True
    finally:
        client.close()


def test_context_manager(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        assert server.running
        assert redis.Redis(port=server.port).ping() is True
        assert server.log_path.is_file()
    assert not server.running
