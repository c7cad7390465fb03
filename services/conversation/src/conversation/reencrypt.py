"""Moves a tenant's sealed records onto its current data key after a rotation.

One job per rotation, stored in MongoDB (``key_jobs``): leased, so one replica
runs it at a time; batched, each batch a bounded read and one bulk write, so
live traffic never waits behind it; resumable, each batch recording its cursor
and progress (records done of the total), so a replica that dies mid-job
leaves it to the next one once its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab_core.ids import new_id
from conversation.storage.db import Database
from conversation.storage.keys import KeyJobRepo

log = logging.getLogger(__name__)

BATCHES = Counter("confab_reencrypt_batches_total", "Re-encrypt batches run after key rotations")


class ReencryptRunner:
    def __init__(
        self,
        db: Database,
        *,
        batch_size: int,
        poll_seconds: float,
        lease_seconds: float,
        owner: str | None = None,
    ) -> None:
        self._jobs: KeyJobRepo = db.key_jobs()
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self.owner = owner or f"reencrypt-{new_id()}"

    async def run_once(self, max_batches: int | None = None) -> int:
        """Runs due jobs until none is left (or ``max_batches``); the batches run."""
        batches = 0
        while max_batches is None or batches < max_batches:
            job = await self._jobs.claim(self.owner, self._lease)
            if job is None:
                break
            while job is not None and (max_batches is None or batches < max_batches):
                job = await self._jobs.step(job, self.owner, self._lease, self._batch_size)
                batches += 1
                BATCHES.inc()
                if job is not None:
                    log.info("re-encrypt %s: %d of %d records", job.id, job.done, job.total)
        return batches

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except PyMongoError as exc:
                # The lease and cursor are in MongoDB: the next poll resumes where this stopped.
                log.warning("re-encrypt pass failed, retrying: %s", exc)
            await asyncio.sleep(self._poll_seconds)
