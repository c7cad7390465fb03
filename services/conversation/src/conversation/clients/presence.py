"""Who is online, as auto-assignment asks the presence service.

The call acts inside one tenant as the conversation service itself; presence
answers it with the whole tenant's roster because the signed token says the
conversation service made it (see presence's ``PresenceHandler.get``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate
from confab_core.identity import Caller, acting_as
from confab_core.limits import MAX_PRESENCE_IDS

ACTOR_ID = "confab-conversation"


class OnlineAgents(Protocol):
    async def online(self, tenant_id: str, user_ids: Sequence[str]) -> set[str]: ...


class PresenceClient:
    """Auto-assignment gives tickets only to users whose status is ONLINE: away
    and busy are the user saying "not now", offline means no connection."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self._stub = pb_grpc.PresenceServiceStub(channel)
        self._timeout = timeout

    async def online(self, tenant_id: str, user_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), MAX_PRESENCE_IDS):
            req = pb.GetPresenceRequest(user_ids=ids[start : start + MAX_PRESENCE_IDS])
            try:
                with acting_as(Caller(tenant_id, ACTOR_ID)):
                    resp = await self._stub.GetPresence(req, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                raise translate(exc) from None
            out.update(p.user_id for p in resp.presences if p.status == pb.PRESENCE_STATUS_ONLINE)
        return out


class NoPresence:
    """No presence service configured: nobody counts as online, so auto-assignment
    assigns nothing rather than give tickets to people who are not there."""

    async def online(self, tenant_id: str, user_ids: Sequence[str]) -> set[str]:
        return set()
