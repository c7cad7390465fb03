"""The conversation service's audit and moderation RPCs, as the gateway calls them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import governance_pb2 as gpb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.governance_pb2_grpc import (
        AuditServiceAsyncStub,
        ModerationServiceAsyncStub,
    )


class AuditClient(PeerClient):
    def __init__(self, stub: AuditServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def list_records(
        self, caller: Caller, request: gpb.ListAuditRecordsRequest
    ) -> gpb.ListAuditRecordsResponse:
        return await self._call(self._stub.ListAuditRecords, request, caller)

    async def verify(self, caller: Caller) -> gpb.VerifyAuditResponse:
        # A whole chain is read: more time than a lookup.
        return await self._call(
            self._stub.VerifyAudit, gpb.VerifyAuditRequest(), caller, timeout_factor=6.0
        )


class ModerationClient(PeerClient):
    def __init__(self, stub: ModerationServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def sanction(self, caller: Caller, request: gpb.SanctionRequest) -> gpb.SanctionResponse:
        # A tenant-wide sanction tells every conversation of the user.
        return await self._call(self._stub.Sanction, request, caller, timeout_factor=6.0)

    async def lift(
        self, caller: Caller, request: gpb.LiftSanctionRequest
    ) -> gpb.LiftSanctionResponse:
        return await self._call(self._stub.LiftSanction, request, caller, timeout_factor=6.0)

    async def list_sanctions(
        self, caller: Caller, request: gpb.ListSanctionsRequest
    ) -> gpb.ListSanctionsResponse:
        return await self._call(self._stub.ListSanctions, request, caller)

    async def report(
        self, caller: Caller, request: gpb.ReportMessageRequest
    ) -> gpb.ReportMessageResponse:
        return await self._call(self._stub.ReportMessage, request, caller)

    async def queue(self, caller: Caller, request: gpb.ListQueueRequest) -> gpb.ListQueueResponse:
        return await self._call(self._stub.ListQueue, request, caller)

    async def resolve(
        self, caller: Caller, request: gpb.ResolveQueueEntryRequest
    ) -> gpb.ResolveQueueEntryResponse:
        return await self._call(self._stub.ResolveQueueEntry, request, caller, timeout_factor=6.0)
