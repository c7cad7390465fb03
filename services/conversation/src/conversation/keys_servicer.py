"""gRPC servicer of KeyService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import keys_pb2 as pb
from confab.conversation.v1 import keys_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.handlers.keys import KeyHandler


class KeyServicer(pb_grpc.KeyServiceServicer):
    def __init__(self, keys: KeyHandler) -> None:
        self._k = keys

    async def GetTenantKeys(
        self, request: pb.GetTenantKeysRequest, context: Ctx
    ) -> pb.GetTenantKeysResponse:
        keys = await self._k.tenant_keys(current_caller())
        return pb.GetTenantKeysResponse(
            tenant_id=keys.tenant_id,
            current_key_id=keys.current.key_id,
            keys=[pb.DataKey(key_id=k.key_id, key=k.key) for k in keys.by_id.values()],
            search_key=keys.search_key,
        )
