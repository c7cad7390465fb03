"""The file processor's loop: claims due pending files and deleted files with
bytes left, a few at a time, and hands each to the rules (handlers/fileprocess.py).

It is woken by ``FileWork.wake()`` right after an upload or a delete commits,
and polls otherwise (for files other replicas stored, leases that expired and
retries whose backoff ran out). Every replica runs one: the leases on the
records, not a singleton lease, keep two from working on one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pymongo.errors import PyMongoError

from conversation.handlers.fileprocess import FileProcessor, FileWork

log = logging.getLogger(__name__)

# How long the loop pauses after the database failed, at most.
MAX_PAUSE_SECONDS = 30.0


class FileWorker:
    def __init__(
        self,
        processor: FileProcessor,
        work: FileWork,
        *,
        concurrency: int,
        poll_seconds: float,
    ) -> None:
        self._processor = processor
        self._work = work
        self._concurrency = concurrency
        self._poll = poll_seconds

    async def run(self) -> None:
        pause = self._poll
        while True:
            _stop_if_cancelled()
            try:
                busy = await self.run_once()
                pause = self._poll
                if busy:
                    continue
            except (PyMongoError, OSError) as exc:
                log.warning("file processor paused: %s", exc)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
            except Exception:
                # The object store failing a purge, or a bug: the loop must
                # outlive it (files stay as they were and are tried again).
                log.exception("file processor pass failed")
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
            _stop_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._work.wait()

    async def run_once(self) -> bool:
        """One pass: up to ``concurrency`` pending files processed side by side,
        then deleted files purged. True when a full batch was claimed (more may
        be waiting: the loop goes on without waiting)."""
        self._work.clear()
        claimed = await self._processor.claim(self._concurrency)
        if claimed:
            await asyncio.gather(*(self._processor.process(f) for f in claimed))
        purged = await self._processor.purge_deleted(self._concurrency)
        await self._processor.measure_backlog()
        return len(claimed) >= self._concurrency or purged >= self._concurrency


def _stop_if_cancelled() -> None:
    """Ends the loop once it was asked to stop, even when the cancellation was
    swallowed during a pass (a driver that reports it as its own error): the
    service's shutdown waits for this task."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
