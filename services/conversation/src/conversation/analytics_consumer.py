"""The analytics consumer: the conversation service reading its own event stream.

Group ``conversation-analytics`` on confab.conversation.events.v1, from the
earliest offset. Records are sealed like for every consumer, but this service
holds the keys itself: the EventOpener is given the storage key vault, so no
KeyService call is made. Every opened event goes to ``AnalyticsHandler.apply``,
which folds it at most once (the per-conversation watermark); offsets are
committed after it, so a crash replays a poll and the watermark absorbs it.
"""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from confab_core.kafka import CONVERSATION_EVENTS_TOPIC, KafkaSecurity, consume_forever
from confab_core.sealed_events import EventOpener
from conversation.handlers.analytics import AnalyticsHandler
from conversation.storage.db import Database

GROUP = "conversation-analytics"


class AnalyticsConsumer:
    def __init__(self, db: Database, handler: AnalyticsHandler, group: str = GROUP) -> None:
        self._opener = EventOpener(db.keys, group)
        self._handler = handler
        self.group = group

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = await self._opener.open(record)
        if event is not None:
            await self._handler.apply(event)

    async def run(
        self,
        bootstrap: str,
        security: KafkaSecurity,
        ready: asyncio.Event | None = None,
    ) -> None:
        await consume_forever(
            bootstrap=bootstrap,
            security=security,
            topics=[CONVERSATION_EVENTS_TOPIC],
            group_id=self.group,
            handler=self.handle_record,
            ready=ready,
        )
