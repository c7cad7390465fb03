"""Exports, erasures and job status (docs/api.md, "Exports, erasures and jobs")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from fastapi.responses import StreamingResponse

from confab_core import limits
from gateway import schemas
from gateway.clients.jobops import JobOps
from gateway.deps import CallerDep, ContextDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]


def get_job_ops(ctx: ContextDep) -> JobOps:
    return JobOps(ctx.backends.jobs, ctx.ops.limiter)


JobOpsDep = Annotated[JobOps, Depends(get_job_ops)]


@router.post(
    "/exports",
    response_model=schemas.JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def create_export(
    body: schemas.CreateExportIn, caller: CallerDep, ops: JobOpsDep
) -> schemas.JobOut:
    """Queues an export: a conversation (its members), a user's data (the user, or a
    tenant admin), or the whole tenant (tenant admins)."""
    return await ops.create_export(caller, body)


@router.get(
    "/exports/{job_id}", response_model=schemas.JobOut, responses={**WRITE_ERRORS, **LIMITED}
)
async def get_export(job_id: JobId, caller: CallerDep, ops: JobOpsDep) -> schemas.JobOut:
    return await ops.get_export(caller, job_id)


@router.get(
    "/exports/{job_id}/download",
    response_class=StreamingResponse,
    responses={
        **WRITE_ERRORS,
        **LIMITED,
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
    },
)
async def download_export(job_id: JobId, caller: CallerDep, ops: JobOpsDep) -> StreamingResponse:
    """The export's content, streamed; its requester only (anyone else: 404)."""
    download = await ops.download(caller, job_id)
    return StreamingResponse(
        download.chunks,
        media_type=download.content_type,
        headers={"Content-Disposition": f'attachment; filename="{download.filename}"'},
    )


@router.post(
    "/erasures",
    response_model=schemas.JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def create_user_erasure(
    body: schemas.CreateUserErasureIn, caller: CallerDep, ops: JobOpsDep
) -> schemas.JobOut:
    """Queues the erasure of a user of the caller's tenant (tenant admins)."""
    return await ops.create_user_erasure(caller, body)


@router.get("/jobs/{job_id}", response_model=schemas.JobOut, responses={**WRITE_ERRORS, **LIMITED})
async def get_job(job_id: JobId, caller: CallerDep, ops: JobOpsDep) -> schemas.JobOut:
    """Any job of the caller's (export or erasure): status, progress, result."""
    return await ops.get_job(caller, job_id)


@router.post(
    "/jobs/{job_id}/cancel", response_model=schemas.JobOut, responses={**WRITE_ERRORS, **LIMITED}
)
async def cancel_job(job_id: JobId, caller: CallerDep, ops: JobOpsDep) -> schemas.JobOut:
    """Cancels a queued or running job of the caller's (409 `job_finished` once it ended);
    what it already did stays done (an erasure is not undone)."""
    return await ops.cancel_job(caller, job_id)
