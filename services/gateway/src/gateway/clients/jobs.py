"""The conversation service's JobService, as the gateway calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import jobs_pb2 as jpb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.jobs_pb2_grpc import JobServiceAsyncStub


class JobClient(PeerClient):
    def __init__(self, stub: JobServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def create_export(
        self, caller: Caller, request: jpb.CreateExportRequest
    ) -> jpb.CreateExportResponse:
        return await self._call(self._stub.CreateExport, request, caller)

    async def create_user_erasure(
        self, caller: Caller, request: jpb.CreateUserErasureRequest
    ) -> jpb.CreateUserErasureResponse:
        return await self._call(self._stub.CreateUserErasure, request, caller)

    async def create_tenant_erasure(
        self, caller: Caller, request: jpb.CreateTenantErasureRequest
    ) -> jpb.CreateTenantErasureResponse:
        return await self._call(self._stub.CreateTenantErasure, request, caller)

    async def get_job(self, caller: Caller, request: jpb.GetJobRequest) -> jpb.GetJobResponse:
        return await self._call(self._stub.GetJob, request, caller)

    async def cancel_job(
        self, caller: Caller, request: jpb.CancelJobRequest
    ) -> jpb.CancelJobResponse:
        return await self._call(self._stub.CancelJob, request, caller)

    async def read_export_chunk(
        self, caller: Caller, request: jpb.ReadExportChunkRequest
    ) -> jpb.ReadExportChunkResponse:
        return await self._call(self._stub.ReadExportChunk, request, caller)
