"""A KeySource for services other than conversation: the KeyService over gRPC.

Put it behind ``CachingKeySource`` (one fetch per tenant per cache lifetime);
that lifetime must not pass the conversation service's
``CONVERSATION_KEY_ROTATION_DELAY_SECONDS``, or a new key could be in use
before this process holds it.
"""

from __future__ import annotations

import grpc

from confab.conversation.v1 import keys_pb2, keys_pb2_grpc
from confab_core.crypto.envelope import DataKey, KeysShreddedError, TenantKeys
from confab_core.grpcx.client import translate
from confab_core.identity import ROLE_SERVICE, Caller, acting_as


class KeyServiceSource:
    """Asks the conversation service for a tenant's keys, acting as ``service``
    (gateway, bot or notification: the services allowed the service role)."""

    def __init__(self, channel: grpc.aio.Channel, service: str) -> None:
        self._stub = keys_pb2_grpc.KeyServiceStub(channel)
        self._service = service

    async def keys(self, tenant_id: str) -> TenantKeys:
        caller = Caller(tenant_id=tenant_id, user_id=self._service, roles=frozenset({ROLE_SERVICE}))
        try:
            with acting_as(caller):
                got = await self._stub.GetTenantKeys(keys_pb2.GetTenantKeysRequest())
        except grpc.aio.AioRpcError as exc:
            error = translate(exc)
            if error.code == "keys_shredded":
                raise KeysShreddedError(tenant_id) from exc
            raise error from exc
        by_id = {k.key_id: DataKey(k.key_id, k.key) for k in got.keys}
        return TenantKeys(tenant_id, by_id[got.current_key_id], by_id, got.search_key)
