"""Fixed-window send limits per user and per tenant, counted in Redis.

Redis being down must not stop chat: the limiter then lets traffic through and
counts the failure, because a limiter outage is not a reason to lose sends.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from confab_core.clock import Clock
from confab_core.errors import ResourceExhausted
from confab_core.identity import Caller

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10
LIMITED = Counter("confab_gateway_rate_limited_total", "Sends refused by a rate limit", ["scope"])
LIMITER_ERRORS = Counter(
    "confab_gateway_rate_limiter_errors_total", "Limiter checks that failed open"
)


class SendLimiter:
    def __init__(self, redis: aioredis.Redis, clock: Clock, per_user: int, per_tenant: int) -> None:
        self._redis = redis
        self._clock = clock
        self._per_user = per_user
        self._per_tenant = per_tenant

    async def check(self, caller: Caller) -> None:
        window = int(self._clock.now().timestamp()) // WINDOW_SECONDS
        user_key = f"rl:{caller.tenant_id}:u:{caller.user_id}:{window}"
        tenant_key = f"rl:{caller.tenant_id}:t:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(user_key)
                pipe.expire(user_key, WINDOW_SECONDS * 2)
                pipe.incr(tenant_key)
                pipe.expire(tenant_key, WINDOW_SECONDS * 2)
                user_count, _, tenant_count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            LIMITER_ERRORS.inc()
            log.warning("rate limiter unavailable, allowing send: %s", exc)
            return
        if int(user_count) > self._per_user:
            LIMITED.labels("user").inc()
            raise ResourceExhausted("too many messages, slow down", "rate_limited")
        if int(tenant_count) > self._per_tenant:
            LIMITED.labels("tenant").inc()
            raise ResourceExhausted("tenant message rate exceeded", "tenant_rate_limited")
