from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from confab_core import redisx
from confab_core.clock import FakeClock
from confab_core.errors import ResourceExhausted
from confab_core.identity import Caller
from confab_devservers import RedisServer
from gateway.ratelimit import WINDOW_SECONDS, SendLimiter


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = redisx.connect(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_user_limit_per_window_then_reset(redis: aioredis.Redis) -> None:
    clock = FakeClock()
    limiter = SendLimiter(redis, clock, per_user=3, per_tenant=100)
    alice = Caller("t1", "alice")
    for _ in range(3):
        await limiter.check(alice)
    with pytest.raises(ResourceExhausted) as err:
        await limiter.check(alice)
    assert err.value.code == "rate_limited"
    # Another user of the same tenant has their own budget.
    await limiter.check(Caller("t1", "bob"))
    clock.advance(WINDOW_SECONDS)
    await limiter.check(alice)


@pytest.mark.asyncio
async def test_tenant_limit_spans_users(redis: aioredis.Redis) -> None:
    limiter = SendLimiter(redis, FakeClock(), per_user=100, per_tenant=2)
    await limiter.check(Caller("t1", "a"))
    await limiter.check(Caller("t1", "b"))
    with pytest.raises(ResourceExhausted) as err:
        await limiter.check(Caller("t1", "c"))
    assert err.value.code == "tenant_rate_limited"
    await limiter.check(Caller("t2", "a"))


@pytest.mark.asyncio
async def test_limiter_fails_open_when_redis_is_gone() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    limiter = SendLimiter(dead, FakeClock(), per_user=0, per_tenant=0)
    await limiter.check(Caller("t1", "a"))
    await dead.aclose()
