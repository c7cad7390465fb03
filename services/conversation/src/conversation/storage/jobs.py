"""Jobs (exports, erasures) and the chunks of their results.

A job is tenant data, read through ``JobRepo`` by its requester only. Runners
take jobs of every tenant through ``JobQueue`` under a lease written on the job
itself: while the lease holds no other runner touches the job, and a runner
that died leaves a lease that expires, after which another one takes the job
and resumes from its last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCrypto

_C = "export_chunks"

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a job got: its stage, the last key done there, the next chunk
    number and the records written so far."""

    stage: int = 0
    after: str = ""
    part: int = 0
    records: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    tenant_id: str
    kind: str
    requester_id: str
    params: dict[str, str]
    status: str
    done: int
    total: int
    created_at: datetime
    updated_at: datetime
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    result: dict[str, int] = field(default_factory=dict)
    error: str = ""
    finished_at: datetime | None = None


def _checkpoint(doc: Doc | None) -> Checkpoint:
    if not doc:
        return Checkpoint()
    return Checkpoint(
        stage=int(doc.get("stage", 0)),
        after=str(doc.get("after", "")),
        part=int(doc.get("part", 0)),
        records=int(doc.get("records", 0)),
    )


def _record(doc: Doc) -> Job:
    return Job(
        id=str(doc["_id"]),
        tenant_id=str(doc["tenant_id"]),
        kind=str(doc["kind"]),
        requester_id=str(doc["requester_id"]),
        params={str(k): str(v) for k, v in doc.get("params", {}).items()},
        status=str(doc["status"]),
        done=int(doc.get("done", 0)),
        total=int(doc.get("total", 0)),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        checkpoint=_checkpoint(doc.get("checkpoint")),
        result={str(k): int(v) for k, v in doc.get("result", {}).items()},
        error=str(doc.get("error", "")),
        finished_at=doc.get("finished_at"),
    )


class JobRepo:
    """One tenant's jobs, as their requesters see them."""

    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def create(
        self, job_id: str, kind: str, requester_id: str, params: dict[str, str], now: datetime
    ) -> Job:
        doc: Doc = {
            "_id": job_id,
            "kind": kind,
            "requester_id": requester_id,
            "params": params,
            "status": QUEUED,
            "done": 0,
            "total": 0,
            "checkpoint": {},
            "result": {},
            "error": "",
            "created_at": now,
            "updated_at": now,
            "lease_owner": "",
            "lease_expires_at": None,
        }
        await self._col.insert_one(doc)
        return _record({**doc, "tenant_id": self._col.tenant_id})

    async def get(self, job_id: str, requester_id: str) -> Job | None:
        """The job, if ``requester_id`` asked for it: nobody else learns it exists."""
        doc = await self._col.find_one({"_id": job_id, "requester_id": requester_id})
        return None if doc is None else _record(doc)

    async def cancel(self, job_id: str, requester_id: str, now: datetime) -> Job | None:
        """Cancels the job if it is not finished; the job after (None: not theirs).

        A runner working on it loses it at its next checkpoint, which only
        succeeds on a running job."""
        doc = await self._col.find_one_and_update(
            {"_id": job_id, "requester_id": requester_id, "status": {"$in": [QUEUED, RUNNING]}},
            {
                "$set": {
                    "status": CANCELLED,
                    "updated_at": now,
                    "finished_at": now,
                    "lease_owner": "",
                    "lease_expires_at": None,
                }
            },
        )
        return None if doc is None else _record(doc)


class JobQueue:
    """The runners' view: jobs of every tenant, each held by one runner at a time.

    Like the outbox relay, a cross-tenant reader: it only moves jobs that carry
    their tenant, and every write it makes names the job by id and lease owner.
    """

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def take(self, owner: str, now: datetime, lease: timedelta) -> Job | None:
        """The oldest unfinished job whose lease is free or expired, now leased to ``owner``."""
        doc = await self._col.find_one_and_update(
            {
                "status": {"$in": [QUEUED, RUNNING]},
                "$or": [{"lease_expires_at": None}, {"lease_expires_at": {"$lt": now}}],
            },
            {
                "$set": {
                    "status": RUNNING,
                    "lease_owner": owner,
                    "lease_expires_at": now + lease,
                    "updated_at": now,
                }
            },
            sort=[("created_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _record(doc)

    async def advance(
        self,
        job_id: str,
        owner: str,
        checkpoint: Checkpoint,
        *,
        done: int,
        total: int,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        """Records progress and renews the lease; False when ``owner`` lost the job."""
        result = await self._col.update_one(
            {"_id": job_id, "lease_owner": owner, "status": RUNNING},
            {
                "$set": {
                    "checkpoint": {
                        "stage": checkpoint.stage,
                        "after": checkpoint.after,
                        "part": checkpoint.part,
                        "records": checkpoint.records,
                    },
                    "done": done,
                    "total": total,
                    "updated_at": now,
                    "lease_expires_at": now + lease,
                }
            },
        )
        return result.matched_count == 1

    async def finish(
        self,
        job_id: str,
        owner: str,
        status: str,
        now: datetime,
        *,
        result: dict[str, int] | None = None,
        error: str = "",
    ) -> bool:
        changed = await self._col.update_one(
            {"_id": job_id, "lease_owner": owner, "status": RUNNING},
            {
                "$set": {
                    "status": status,
                    "result": result or {},
                    "error": error,
                    "updated_at": now,
                    "finished_at": now,
                    "lease_owner": "",
                    "lease_expires_at": None,
                }
            },
        )
        return changed.matched_count == 1


class ChunkRepo:
    """The result of an export, in numbered chunks of one tenant.

    A chunk's id is its job and number, so a runner that redoes a step after a
    crash overwrites the chunk it wrote before instead of adding a second one.
    """

    def __init__(self, col: TenantCollection, crypto: TenantCrypto) -> None:
        self._col = col
        self._crypto = crypto

    async def put(self, job_id: str, part: int, data: bytes) -> None:
        """Sealed with the tenant's data key, like every field holding user content."""
        chunk_id = f"{job_id}:{part:08d}"
        c = await self._crypto.cipher()
        sealed = c.seal(_C, chunk_id, "data", data.decode())
        await self._col.update_one(
            {"_id": chunk_id},
            {"$set": {"job_id": job_id, "part": part, "data": sealed}},
            upsert=True,
        )

    async def get(self, job_id: str, part: int) -> bytes:
        chunk_id = f"{job_id}:{part:08d}"
        doc = await self._col.find_one({"_id": chunk_id})
        if doc is None:
            return b""
        c = await self._crypto.cipher()
        return c.open(_C, chunk_id, "data", doc["data"]).encode()

    async def delete_all(self, job_id: str) -> int:
        return (await self._col.delete_many({"job_id": job_id})).deleted_count
