"""Runs jobs step by step under a lease, so each job runs on one replica at a time.

A job is a series of steps. Each step does one batch of work, writes its
output under a deterministic key (an export chunk's number, a deletion that is
idempotent), then records a checkpoint and renews the lease in one write that
names the runner holding it. A runner that dies loses nothing but the step it
was in: its lease expires, another runner takes the job from its checkpoint and
redoes that step, overwriting whatever half of it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.errors import ConfabError, Unavailable
from confab_core.ids import new_id
from conversation.storage.db import Database
from conversation.storage.jobs import FAILED, SUCCEEDED, Checkpoint, Job

log = logging.getLogger(__name__)

JOBS_FINISHED = Counter(
    "confab_conversation_jobs_finished_total", "Jobs run to an end", ["kind", "status"]
)
JOB_STEPS = Counter("confab_conversation_job_steps_total", "Job steps done", ["kind"])


@dataclass(frozen=True)
class Step:
    """What one step did: where the job is now, and whether it is over."""

    checkpoint: Checkpoint
    done: int
    total: int
    finished: bool = False
    result: dict[str, int] = field(default_factory=dict)


class JobKind(Protocol):
    async def step(self, job: Job, at: Checkpoint) -> Step: ...


class JobFailed(ConfabError):
    """A job that cannot complete (what it was about is gone): it ends as failed."""

    default_code = "job_failed"


async def no_pause() -> None:
    return None


class JobRunner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        kinds: Mapping[str, JobKind],
        *,
        lease_seconds: float,
        poll_seconds: float,
        pause: Callable[[], Awaitable[None]] = no_pause,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self._queue = db.job_queue()
        self._clock = clock
        self._kinds = kinds
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        # Between two steps of a job: live traffic gets the database back.
        self._pause = pause
        self._wakeup = wakeup or asyncio.Event()
        self.owner = new_id()

    async def run(self) -> None:
        while True:
            try:
                if await self.run_once():
                    continue
            except (PyMongoError, OSError) as exc:
                log.warning("job runner paused: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def run_once(self) -> bool:
        """Takes one job whose lease is free and works on it until it ends or the
        lease is lost; False when there was none."""
        job = await self._queue.take(self.owner, self._clock.now(), self._lease)
        if job is None:
            return False
        await self.work(job)
        return True

    async def work(self, job: Job) -> None:
        kind = self._kinds.get(job.kind)
        if kind is None:
            await self._end(job, FAILED, error=f"unknown job kind {job.kind}")
            return
        at = job.checkpoint
        while True:
            try:
                step = await kind.step(job, at)
            except Unavailable as exc:
                # A peer or the database is down: the lease runs out and the job
                # is taken again from its checkpoint, by this runner or another.
                log.warning("job %s paused: %s", job.id, exc.message)
                return
            except ConfabError as exc:
                await self._end(job, FAILED, error=exc.message)
                return
            except PyMongoError:
                # The database is what the lease lives in: retry after it expires.
                raise
            except Exception:
                # A bug must not take the runner down with it: this job fails,
                # the others still run.
                log.exception("job %s failed", job.id)
                await self._end(job, FAILED, error="internal error")
                return
            JOB_STEPS.labels(job.kind).inc()
            if step.finished:
                await self._end(job, SUCCEEDED, result=step.result)
                return
            held = await self._queue.advance(
                job.id,
                self.owner,
                step.checkpoint,
                done=step.done,
                total=step.total,
                now=self._clock.now(),
                lease=self._lease,
            )
            if not held:
                log.warning("job %s was taken over by another runner", job.id)
                return
            at = step.checkpoint
            job = replace(job, total=step.total)
            await self._pause()

    async def _end(
        self, job: Job, status: str, *, result: dict[str, int] | None = None, error: str = ""
    ) -> None:
        if await self._queue.finish(
            job.id, self.owner, status, self._clock.now(), result=result, error=error
        ):
            JOBS_FINISHED.labels(job.kind, status).inc()
