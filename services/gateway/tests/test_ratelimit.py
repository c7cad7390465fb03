from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from confab_core import redisx
from confab_core.clock import FakeClock
from confab_core.identity import Caller
from confab_devservers import RedisServer
from gateway.ratelimit import (
    _NOUNS,
    DEFAULT_LIMITS,
    WINDOW_SECONDS,
    Action,
    Limit,
    RateLimited,
    RateLimiter,
)
from gateway.settings import GatewaySettings


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


def limiter(redis: aioredis.Redis, clock: FakeClock, **limits: Limit) -> RateLimiter:
    return RateLimiter(redis, clock, {Action(name): limit for name, limit in limits.items()})


@pytest.mark.asyncio
async def test_user_limit_per_window_then_reset(redis: aioredis.Redis) -> None:
    clock = FakeClock()
    limits = limiter(redis, clock, send=Limit(user=3, tenant=100))
    alice = Caller("t1", "alice")
    for _ in range(3):
        await limits.check(alice, Action.SEND)
    with pytest.raises(RateLimited) as err:
        await limits.check(alice, Action.SEND)
    assert err.value.code == "rate_limited"
    assert err.value.http_status == 429
    # Another user of the same tenant has their own budget.
    await limits.check(Caller("t1", "bob"), Action.SEND)
    clock.advance(WINDOW_SECONDS)
    await limits.check(alice, Action.SEND)


@pytest.mark.asyncio
async def test_retry_after_is_the_rest_of_the_window(redis: aioredis.Redis) -> None:
    clock = FakeClock()  # starts on a window boundary
    limits = limiter(redis, clock, search=Limit(user=1, tenant=100))
    clock.advance(3)
    await limits.check(Caller("t1", "a"), Action.SEARCH)
    with pytest.raises(RateLimited) as err:
        await limits.check(Caller("t1", "a"), Action.SEARCH)
    assert err.value.retry_after == WINDOW_SECONDS - 3


@pytest.mark.asyncio
async def test_tenant_limit_spans_users(redis: aioredis.Redis) -> None:
    limits = limiter(redis, FakeClock(), send=Limit(user=100, tenant=2))
    await limits.check(Caller("t1", "a"), Action.SEND)
    await limits.check(Caller("t1", "b"), Action.SEND)
    with pytest.raises(RateLimited) as err:
        await limits.check(Caller("t1", "c"), Action.SEND)
    assert err.value.code == "tenant_rate_limited"
    await limits.check(Caller("t2", "a"), Action.SEND)


@pytest.mark.asyncio
async def test_each_action_has_its_own_budget(redis: aioredis.Redis) -> None:
    limits = limiter(
        redis,
        FakeClock(),
        summary=Limit(user=1, tenant=100),
        typing=Limit(user=1, tenant=100),
    )
    alice = Caller("t1", "alice")
    await limits.check(alice, Action.SUMMARY)
    with pytest.raises(RateLimited):
        await limits.check(alice, Action.SUMMARY)
    # A spent summary budget leaves typing (and sends, at their default) alone.
    await limits.check(alice, Action.TYPING)
    await limits.check(alice, Action.SEND)


@pytest.mark.asyncio
async def test_a_tenant_override_changes_only_that_tenant_and_action(
    redis: aioredis.Redis,
) -> None:
    limits = RateLimiter(
        redis,
        FakeClock(),
        {Action.CONVERSATION_CREATE: Limit(user=5, tenant=100)},
        {"small": {Action.CONVERSATION_CREATE: Limit(user=1, tenant=1)}},
    )
    assert limits.limit("small", Action.CONVERSATION_CREATE) == Limit(user=1, tenant=1)
    assert limits.limit("other", Action.CONVERSATION_CREATE) == Limit(user=5, tenant=100)
    assert limits.limit("small", Action.SEND) == DEFAULT_LIMITS[Action.SEND]
    await limits.check(Caller("small", "a"), Action.CONVERSATION_CREATE)
    with pytest.raises(RateLimited):
        await limits.check(Caller("small", "a"), Action.CONVERSATION_CREATE)
    for _ in range(5):
        await limits.check(Caller("other", "a"), Action.CONVERSATION_CREATE)


def test_every_action_has_a_default() -> None:
    assert set(DEFAULT_LIMITS) == set(Action)


def test_every_action_names_what_it_limits() -> None:
    # A refusal's message names the action: a missing noun was a 500, not a 429.
    assert set(_NOUNS) == set(Action)


def test_limits_come_from_settings_and_bad_ones_fail_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    required = {
        "GATEWAY_CONVERSATION_ADDR": "x",
        "GATEWAY_PRESENCE_ADDR": "x",
        "GATEWAY_NOTIFICATION_ADDR": "x",
        "GATEWAY_BOT_ADDR": "x",
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": "x",
        "GATEWAY_REDIS_URL": "redis://x",
        "GATEWAY_JWT_HS256_SECRET": "s" * 40,
        "GATEWAY_INTERNAL_KEY": "k" * 40,
        "GATEWAY_FILE_URL_KEY": "f" * 32,
    }
    for key, value in required.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GATEWAY_RATE_LIMITS", '{"search": {"user": 2, "tenant": 9}}')
    monkeypatch.setenv("GATEWAY_TENANT_RATE_LIMITS", '{"t1": {"send": {"user": 1, "tenant": 1}}}')
    settings = GatewaySettings()  # type: ignore[call-arg]
    assert settings.rate_limits == {Action.SEARCH: Limit(user=2, tenant=9)}
    assert settings.tenant_rate_limits == {"t1": {Action.SEND: Limit(user=1, tenant=1)}}
    for bad in (
        '{"serch": {"user": 2, "tenant": 9}}',
        '{"search": {"user": -1, "tenant": 9}}',
        '{"search": {"user": 2}}',
    ):
        monkeypatch.setenv("GATEWAY_RATE_LIMITS", bad)
        with pytest.raises(ValueError):
            GatewaySettings()  # type: ignore[call-arg]


@pytest.mark.asyncio
async def test_limiter_fails_open_when_redis_is_gone() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    limits = RateLimiter(dead, FakeClock(), {Action.SEND: Limit(user=0, tenant=0)})
    await limits.check(Caller("t1", "a"), Action.SEND)
    await dead.aclose()
