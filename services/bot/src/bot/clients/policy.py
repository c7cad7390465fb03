"""The tenant's compliance policy, read from the conversation service's
PolicyService and kept for a few seconds per tenant."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from confab.conversation.v1 import policy_pb2 as pb
from confab.conversation.v1 import policy_pb2_grpc as pb_grpc
from confab_core.clock import Clock
from confab_core.grpcx.client import translate
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, Caller, reset_caller, set_caller

# A policy change reaches the bot's prompts within this many seconds.
POLICY_CACHE_SECONDS = 5.0
_CACHE_MAX_TENANTS = 10_000


@dataclass(frozen=True, slots=True)
class PromptPolicy:
    """What the bot needs of a tenant's policy."""

    mask_prompts: bool
    # Empty: every kind.
    kinds: tuple[str, ...]


class PolicyReader:
    def __init__(self, channel: grpc.aio.Channel, clock: Clock, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.PolicyServiceStub(channel)
        self._clock = clock
        self._timeout = timeout
        self._cache: dict[str, tuple[float, PromptPolicy]] = {}

    async def prompt_policy(self, tenant_id: str) -> PromptPolicy:
        now = self._clock.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        # Read as the bot, whoever the call is for: a member asking for a summary
        # may not read the policy, the service may.
        token = set_caller(
            Caller(tenant_id=tenant_id, user_id=BOT_USER_ID, roles=frozenset({ROLE_SERVICE}))
        )
        try:
            resp = await self._stub.GetPolicy(pb.GetPolicyRequest(), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        finally:
            reset_caller(token)
        policy = PromptPolicy(resp.policy.mask_bot_prompts, tuple(resp.policy.pii_kinds))
        if len(self._cache) >= _CACHE_MAX_TENANTS:
            self._cache.clear()
        self._cache[tenant_id] = (now + POLICY_CACHE_SECONDS, policy)
        return policy
