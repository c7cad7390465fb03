"""Exports, erasures and job status, as REST routes call them: translation only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import jobs_pb2 as jpb
from confab_core.errors import NotFound
from confab_core.identity import Caller
from gateway import schemas
from gateway.clients.jobs import JobClient
from gateway.ratelimit import Action, RateLimiter

_SCOPES = {
    "conversation": jpb.EXPORT_SCOPE_CONVERSATION,
    "user": jpb.EXPORT_SCOPE_USER,
    "tenant": jpb.EXPORT_SCOPE_TENANT,
}
_FORMATS = {"ndjson": jpb.EXPORT_FORMAT_NDJSON, "csv": jpb.EXPORT_FORMAT_CSV}
_SUFFIXES = {"application/x-ndjson": "ndjson", "text/csv": "csv"}


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def job(j: jpb.Job) -> schemas.JobOut:
    return schemas.JobOut.model_validate(
        {
            "id": j.id,
            "kind": j.kind,
            "status": j.status,
            "progress": {"done": j.done, "total": j.total},
            "params": cast(dict[str, str], json.loads(j.params_json or "{}")),
            "result": cast(dict[str, int], json.loads(j.result_json)) if j.result_json else None,
            "error": j.error or None,
            "created_at": _dt(j.created_at),
            "updated_at": _dt(j.updated_at),
            "finished_at": _dt(j.finished_at) if j.HasField("finished_at") else None,
        }
    )


@dataclass(frozen=True)
class Download:
    content_type: str
    filename: str
    chunks: AsyncIterator[bytes]


class JobOps:
    def __init__(self, jobs: JobClient, limiter: RateLimiter) -> None:
        self._jobs = jobs
        self._limiter = limiter

    async def create_export(self, caller: Caller, body: schemas.CreateExportIn) -> schemas.JobOut:
        await self._limiter.check(caller, Action.EXPORT)
        req = jpb.CreateExportRequest(
            scope=_SCOPES[body.scope], id=body.id, format=_FORMATS[body.format]
        )
        return job((await self._jobs.create_export(caller, req)).job)

    async def create_user_erasure(
        self, caller: Caller, body: schemas.CreateUserErasureIn
    ) -> schemas.JobOut:
        await self._limiter.check(caller, Action.ERASURE)
        req = jpb.CreateUserErasureRequest(user_id=body.user_id)
        return job((await self._jobs.create_user_erasure(caller, req)).job)

    async def create_tenant_erasure(
        self, caller: Caller, tenant_id: str, body: schemas.CreateTenantErasureIn
    ) -> schemas.JobOut:
        """Platform staff only (the conversation service checks)."""
        await self._limiter.check(caller, Action.ERASURE)
        req = jpb.CreateTenantErasureRequest(
            tenant_id=tenant_id, confirm_tenant_id=body.confirm_tenant_id
        )
        return job((await self._jobs.create_tenant_erasure(caller, req)).job)

    async def get_tenant_job(self, caller: Caller, tenant_id: str, job_id: str) -> schemas.JobOut:
        await self._limiter.check(caller, Action.JOB_STATUS)
        req = jpb.GetJobRequest(job_id=job_id, tenant_id=tenant_id)
        return job((await self._jobs.get_job(caller, req)).job)

    async def get_job(self, caller: Caller, job_id: str) -> schemas.JobOut:
        await self._limiter.check(caller, Action.JOB_STATUS)
        return job((await self._jobs.get_job(caller, jpb.GetJobRequest(job_id=job_id))).job)

    async def cancel_job(self, caller: Caller, job_id: str) -> schemas.JobOut:
        await self._limiter.check(caller, Action.JOB_STATUS)
        req = jpb.CancelJobRequest(job_id=job_id)
        return job((await self._jobs.cancel_job(caller, req)).job)

    async def get_export(self, caller: Caller, job_id: str) -> schemas.JobOut:
        out = await self.get_job(caller, job_id)
        if out.kind != "export":
            raise NotFound("job not found", "job_not_found")
        return out

    async def download(self, caller: Caller, job_id: str) -> Download:
        """The first chunk is read before answering, so a missing or unfinished
        export is a 404 or a 409, not a broken stream."""
        await self._limiter.check(caller, Action.EXPORT)
        first = await self._jobs.read_export_chunk(
            caller, jpb.ReadExportChunkRequest(job_id=job_id, part=0)
        )

        async def chunks() -> AsyncIterator[bytes]:
            yield first.data
            for part in range(1, first.parts):
                req = jpb.ReadExportChunkRequest(job_id=job_id, part=part)
                yield (await self._jobs.read_export_chunk(caller, req)).data

        suffix = _SUFFIXES.get(first.content_type, "txt")
        return Download(first.content_type, f"export-{job_id}.{suffix}", chunks())
