"""Tenants' chat settings as the services read them: a cache per process that a
TenantSettingsChanged event (topic ``confab.tenant-settings``) empties for its
tenant, so a change is seen within a second, without a restart.

The event carries no content and is published unsealed; it only names the
tenant and the version. The next ``get`` of that tenant loads the document again
(the conversation service's SettingsService). ``max_age_seconds`` bounds how
stale an entry can get if an event is ever missed (a consumer that starts from
the latest offset skips what was published while it was down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from confab.conversation.v1 import settings_pb2
from confab_core.clock import Clock
from confab_core.kafka import PLAINTEXT, KafkaSecurity, consume_forever, decode

TENANT_SETTINGS_TOPIC = "confab.tenant-settings"
TENANT_SETTINGS_EVENT_TYPE = b"confab.conversation.v1.TenantSettingsChanged"

Loader = Callable[[str], Awaitable[settings_pb2.TenantSettings]]


@dataclass
class _Entry:
    # The load in flight or done; concurrent callers await the same one.
    task: asyncio.Task[settings_pb2.TenantSettings]
    loaded_at: float


class TenantSettingsCache:
    def __init__(self, load: Loader, clock: Clock, max_age_seconds: float = 300.0) -> None:
        self._load = load
        self._clock = clock
        self._max_age = max_age_seconds
        self._entries: dict[str, _Entry] = {}

    async def get(self, tenant_id: str) -> settings_pb2.TenantSettings:
        """The tenant's settings; loads them once, whoever else asks meanwhile.

        A failed load is not kept: the next caller tries again. Callers get a
        copy, so nobody can change what the others read.
        """
        entry = self._entries.get(tenant_id)
        now = self._clock.monotonic()
        if entry is None or (entry.task.done() and now - entry.loaded_at > self._max_age):
            entry = _Entry(asyncio.ensure_future(self._load(tenant_id)), now)
            self._entries[tenant_id] = entry
        try:
            # Shielded: one caller's cancellation must not cancel the others' load.
            found = await asyncio.shield(entry.task)
        except Exception:
            if self._entries.get(tenant_id) is entry:
                del self._entries[tenant_id]
            raise
        copy = settings_pb2.TenantSettings()
        copy.CopyFrom(found)
        return copy

    def invalidate(self, tenant_id: str) -> None:
        """The next ``get`` loads again. A load in flight finishes for its callers,
        but what it read may predate the change, so it is not kept."""
        self._entries.pop(tenant_id, None)

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """A TenantSettingsChanged: forget that tenant's settings."""
        event = decode(record, settings_pb2.TenantSettingsChanged)
        if event is not None and event.tenant_id:
            self.invalidate(event.tenant_id)


async def settings_consumer(
    cache: TenantSettingsCache,
    *,
    bootstrap: str,
    group_id: str,
    security: KafkaSecurity = PLAINTEXT,
    ready: asyncio.Event | None = None,
) -> None:
    """Keeps ``cache`` current until cancelled. ``group_id`` must be the pod's own
    (every pod needs every event, like the gateway's fan-out), and the consumer
    starts from the latest offset: a starting pod has nothing cached to forget."""
    await consume_forever(
        bootstrap=bootstrap,
        topics=[TENANT_SETTINGS_TOPIC],
        group_id=group_id,
        handler=cache.handle_record,
        from_latest=True,
        ready=ready,
        security=security,
    )
