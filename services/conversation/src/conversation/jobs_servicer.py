"""gRPC servicer of JobService: translation only."""

from __future__ import annotations

import json

from confab.conversation.v1 import jobs_pb2 as pb
from confab.conversation.v1 import jobs_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.jobs import JobHandler
from conversation.storage.jobs import Job

_SCOPES = {
    pb.EXPORT_SCOPE_CONVERSATION: "conversation",
    pb.EXPORT_SCOPE_USER: "user",
    pb.EXPORT_SCOPE_TENANT: "tenant",
}
_FORMATS = {pb.EXPORT_FORMAT_NDJSON: "ndjson", pb.EXPORT_FORMAT_CSV: "csv"}


def job_message(job: Job) -> pb.Job:
    return pb.Job(
        id=job.id,
        kind=job.kind,
        requester_id=job.requester_id,
        status=job.status,
        done=job.done,
        total=job.total,
        params_json=json.dumps(job.params, sort_keys=True),
        result_json=json.dumps(job.result, sort_keys=True) if job.result else "",
        error=job.error,
        created_at=ts(job.created_at),
        updated_at=ts(job.updated_at),
        finished_at=ts(job.finished_at),
    )


class JobServicer(pb_grpc.JobServiceServicer):
    def __init__(self, jobs: JobHandler) -> None:
        self._j = jobs

    async def CreateExport(
        self, request: pb.CreateExportRequest, context: Ctx
    ) -> pb.CreateExportResponse:
        job = await self._j.create_export(
            current_caller(),
            scope=_SCOPES.get(request.scope, ""),
            key=request.id,
            fmt=_FORMATS.get(request.format, ""),
        )
        return pb.CreateExportResponse(job=job_message(job))

    async def CreateUserErasure(
        self, request: pb.CreateUserErasureRequest, context: Ctx
    ) -> pb.CreateUserErasureResponse:
        job = await self._j.create_user_erasure(current_caller(), request.user_id)
        return pb.CreateUserErasureResponse(job=job_message(job))

    async def CreateTenantErasure(
        self, request: pb.CreateTenantErasureRequest, context: Ctx
    ) -> pb.CreateTenantErasureResponse:
        job = await self._j.create_tenant_erasure(
            current_caller(), request.tenant_id, request.confirm_tenant_id
        )
        return pb.CreateTenantErasureResponse(job=job_message(job))

    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:
        if request.tenant_id:
            job = await self._j.get_tenant_job(current_caller(), request.tenant_id, request.job_id)
        else:
            job = await self._j.get(current_caller(), request.job_id)
        return pb.GetJobResponse(job=job_message(job))

    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.CancelJobResponse:
        job = await self._j.cancel(current_caller(), request.job_id)
        return pb.CancelJobResponse(job=job_message(job))

    async def ReadExportChunk(
        self, request: pb.ReadExportChunkRequest, context: Ctx
    ) -> pb.ReadExportChunkResponse:
        chunk = await self._j.read_chunk(current_caller(), request.job_id, request.part)
        return pb.ReadExportChunkResponse(
            data=chunk.data, content_type=chunk.content_type, parts=chunk.parts
        )
