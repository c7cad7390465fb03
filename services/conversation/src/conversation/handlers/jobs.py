"""Who may ask for which job, and reading jobs back: the rules of exports and erasures.

A job is visible to its requester only: anyone else, in the tenant or not,
gets the answer a job that does not exist gets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import Caller, is_service_user
from confab_core.ids import new_id
from confab_core.limits import MAX_ID_CHARS
from conversation.handlers import access, audit, platformaccess
from conversation.handlers.audit import AuditTrail
from conversation.handlers.base import HandlerBase
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.storage.audit import Target
from conversation.storage.jobs import SUCCEEDED, Job


@dataclass(frozen=True)
class ExportChunk:
    data: bytes
    content_type: str
    parts: int


def job_not_found() -> NotFound:
    return NotFound("job not found", "job_not_found")


def _valid_id(value: str, what: str) -> str:
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"{what} is required (at most {MAX_ID_CHARS} characters)", f"invalid_{what}"
        )
    return value


class JobHandler(HandlerBase):
    def __init__(self, unit: UnitOfWork, runner_wakeup: asyncio.Event, trail: AuditTrail) -> None:
        super().__init__(unit)
        self._runner_wakeup = runner_wakeup
        self._trail = trail

    async def create_export(self, caller: Caller, *, scope: str, key: str, fmt: str) -> Job:
        if scope not in export.SCOPES:
            raise InvalidArgument("scope must be conversation, user or tenant", "invalid_scope")
        if fmt not in export.FORMATS:
            raise InvalidArgument("format must be ndjson or csv", "invalid_format")
        if scope == "conversation":
            _valid_id(key, "id")
            _, member = await self.readable(caller, key)
            # A conversation's members export it, and tenant admins any they see.
            if member is None and not access.tenant_admin(caller):
                raise access.not_found()
        elif scope == "user":
            _valid_id(key, "id")
            if key != caller.user_id and not access.tenant_admin(caller):
                raise PermissionDenied("only tenant admins export another user", "forbidden")
        else:
            if key:
                raise InvalidArgument("a tenant export takes no id", "invalid_id")
            if not access.tenant_admin(caller):
                raise PermissionDenied("only tenant admins export the tenant", "forbidden")
        params = {"scope": scope, "id": key, "format": fmt}
        return await self._queue(caller, export.KIND, params, audit.EXPORT_REQUESTED)

    async def create_user_erasure(self, caller: Caller, user_id: str) -> Job:
        _valid_id(user_id, "user_id")
        if not access.tenant_admin(caller):
            raise PermissionDenied("only tenant admins erase users", "forbidden")
        if is_service_user(user_id):
            raise InvalidArgument("service users cannot be erased", "invalid_user_id")
        return await self._queue(
            caller, erasure.USER_KIND, {"user_id": user_id}, audit.ERASURE_REQUESTED
        )

    async def create_tenant_erasure(
        self, staff: Caller, tenant_id: str, confirm_tenant_id: str
    ) -> Job:
        """A platform operation: staff name the tenant; the job (and its audit
        record) live in that tenant, requested by the staff member."""
        scoped = platformaccess.in_tenant(staff, tenant_id)
        if confirm_tenant_id != tenant_id:
            raise InvalidArgument(
                "confirm_tenant_id must repeat the tenant being erased", "confirmation_mismatch"
            )
        return await self._queue(
            scoped, erasure.TENANT_KIND, {"tenant_id": tenant_id}, audit.ERASURE_REQUESTED
        )

    async def get_tenant_job(self, staff: Caller, tenant_id: str, job_id: str) -> Job:
        """A job platform staff asked for in a tenant (a tenant erasure)."""
        return await self.get(platformaccess.in_tenant(staff, tenant_id), job_id)

    async def get(self, caller: Caller, job_id: str) -> Job:
        job = await self._db.jobs(caller.tenant_id).get(job_id, caller.user_id) if job_id else None
        if job is None:
            raise job_not_found()
        return job

    async def cancel(self, caller: Caller, job_id: str) -> Job:
        job = await self.get(caller, job_id)
        cancelled = await self._db.jobs(caller.tenant_id).cancel(
            job.id, caller.user_id, self.clock.now()
        )
        if cancelled is None:
            raise FailedPrecondition(f"the job already {job.status}", "job_finished")
        return cancelled

    async def read_chunk(self, caller: Caller, job_id: str, part: int) -> ExportChunk:
        """One chunk of the export, for its requester only."""
        job = await self.get(caller, job_id)
        if job.kind != export.KIND:
            raise job_not_found()
        if job.status != SUCCEEDED:
            raise FailedPrecondition(f"the export is {job.status}", "export_not_ready")
        parts = job.result.get("parts", 0)
        if part < 0 or (part >= parts and not (part == 0 and parts == 0)):
            raise InvalidArgument(f"part must be from 0 to {parts - 1}", "invalid_part")
        data = await self._db.chunks(caller.tenant_id).get(job.id, part) if parts else b""
        return ExportChunk(data, export.CONTENT_TYPES[job.params["format"]], parts)

    async def _queue(self, caller: Caller, kind: str, params: dict[str, str], action: str) -> Job:
        """Records the request in the audit log, then queues the job. The record
        names what was asked for (a user id, a scope), never the data."""
        job_id = new_id()
        await self._trail.record(
            caller, action, Target("job", job_id), None, {"kind": kind, **params}
        )
        job = await self._db.jobs(caller.tenant_id).create(
            job_id, kind, caller.user_id, params, self.clock.now()
        )
        self._runner_wakeup.set()
        return job
