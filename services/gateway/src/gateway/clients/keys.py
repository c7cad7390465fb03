"""Conversation's KeyService, as the gateway's fan-out opens sealed events with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import keys_pb2 as kpb
from confab_core.crypto import KeysShreddedError, TenantKeys
from confab_core.errors import ConfabError
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.sealed_events import keys_from_proto
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.keys_pb2_grpc import KeyServiceAsyncStub

# Who the gateway is when it asks for a tenant's keys: no end user is involved.
KEYS_USER_ID = "confab-gateway"


class KeyClient(PeerClient):
    """A KeySource: the tenant's data keys, asked for with the service role in that
    tenant (KeyService answers for the caller's own tenant only). Put a
    CachingKeySource in front: fan-out asks once per tenant per TTL, not per event."""

    def __init__(self, stub: KeyServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def keys(self, tenant_id: str) -> TenantKeys:
        caller = Caller(tenant_id, KEYS_USER_ID, frozenset({ROLE_SERVICE}))
        try:
            resp = await self._call(self._stub.GetTenantKeys, kpb.GetTenantKeysRequest(), caller)
        except ConfabError as exc:
            if exc.code == "keys_shredded":
                raise KeysShreddedError(tenant_id) from None
            raise
        return keys_from_proto(resp)
