"""Conversation's KeyService, as the bot opens sealed events with it."""

from __future__ import annotations

import grpc

from confab.conversation.v1 import keys_pb2 as kpb
from confab.conversation.v1 import keys_pb2_grpc as kpb_grpc
from confab_core.crypto import KeysShreddedError, TenantKeys
from confab_core.grpcx.client import translate
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, Caller, acting_as
from confab_core.sealed_events import keys_from_proto


class KeyClient:
    """A KeySource: the tenant's data keys, asked for as the bot with the service
    role in that tenant (KeyService answers for the caller's own tenant only).
    Put a CachingKeySource in front: one call per tenant per TTL, not per event."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = kpb_grpc.KeyServiceStub(channel)
        self._timeout = timeout

    async def keys(self, tenant_id: str) -> TenantKeys:
        caller = Caller(tenant_id, BOT_USER_ID, frozenset({ROLE_SERVICE}))
        try:
            with acting_as(caller):
                resp = await self._stub.GetTenantKeys(
                    kpb.GetTenantKeysRequest(), timeout=self._timeout
                )
        except grpc.aio.AioRpcError as exc:
            err = translate(exc)
            if err.code == "keys_shredded":
                raise KeysShreddedError(tenant_id) from None
            raise err from exc
        return keys_from_proto(resp)
