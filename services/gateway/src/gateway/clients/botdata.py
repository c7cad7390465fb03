"""The conversation service's BotDataService as the gateway calls it (usage
reads for tenant admins), and its translation into the public JSON shape."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from confab.conversation.v1 import botdata_pb2 as bpb
from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from gateway import ai_schemas as s
from gateway.clients.peer import PeerClient
from gateway.ratelimit import Action, RateLimiter

if TYPE_CHECKING:
    from confab.conversation.v1.botdata_pb2_grpc import BotDataServiceAsyncStub

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


class BotDataClient(PeerClient):
    def __init__(self, stub: BotDataServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def usage(self, caller: Caller, month: str) -> bpb.GetUsageResponse:
        return await self._call(self._stub.GetUsage, bpb.GetUsageRequest(month=month), caller)


def usage_out(u: bpb.TenantUsage) -> s.UsageOut:
    return s.UsageOut(
        month=u.month,
        tokens_in=u.tokens_in,
        tokens_out=u.tokens_out,
        quota_tokens=u.quota_tokens,
        over_quota=u.over_quota,
        agents=[
            s.AgentUsageOut(
                agent_id=a.agent_id, tokens_in=a.tokens_in, tokens_out=a.tokens_out, calls=a.calls
            )
            for a in u.agents
        ],
    )


class AiOps:
    """REST calls of the AI routes: input, the rate limit, then translation."""

    def __init__(self, client: BotDataClient, limiter: RateLimiter) -> None:
        self._client = client
        self._limiter = limiter

    async def usage(self, caller: Caller, month: str) -> s.UsageOut:
        # Checked here as well as in the service, so a bad month costs no budget.
        if month and not MONTH.fullmatch(month):
            raise InvalidArgument("month is YYYY-MM", "invalid_month")
        await self._limiter.check(caller, Action.AI_USAGE)
        return usage_out((await self._client.usage(caller, month)).usage)
