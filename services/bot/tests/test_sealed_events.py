"""The bot opens sealed events with keys from the real KeyService; a shredded
tenant's events are skipped and counted, not retried."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

import conversation.app as conversation_app
from bot.clients.keys import key_client
from confab.conversation.v1 import events_pb2
from confab_core import mongo
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource, KeysShreddedError
from confab_core.grpcx.client import channel
from confab_core.ids import new_id
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC
from confab_core.sealed_events import EventOpener, event_headers, seal_event
from confab_core.servicetoken import BOT, CONVERSATION, InternalAuth
from confab_devservers import dev_key_file
from conversation.handlers.keys import KeyHandler
from conversation.settings import ConversationSettings

INTERNAL_KEY = "bot-tests-internal-key-of-32-bytes-at-least"
GROUP = "bot-sealed-test"


def skipped(reason: str) -> float:
    labels = {"group": GROUP, "reason": reason}
    return REGISTRY.get_sample_value("confab_sealed_events_skipped_total", labels) or 0.0


def record(value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=CONVERSATION_EVENTS_TOPIC,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"c1",
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value),
        headers=headers,
    )


@pytest.mark.asyncio
async def test_keys_come_from_key_service_and_a_shredded_tenant_is_skipped(servers) -> None:  # type: ignore[no-untyped-def]
    settings = ConversationSettings(
        internal_key=INTERNAL_KEY,
        mongo_url=servers.mongo_url,
        kafka_bootstrap_servers=servers.kafka,
        grpc_port=0,
        mongo_database=f"conv_{new_id()}",
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    live, gone = f"t-{new_id()[:8]}", f"t-{new_id()[:8]}"
    client = mongo.connect(settings.mongo_url, "bot-test")
    db = conversation_app.database(settings, client, SystemClock())
    async with conversation_app.running(settings) as port:
        ch = channel(
            f"127.0.0.1:{port}",
            InternalAuth(BOT, INTERNAL_KEY.encode(), SystemClock()),
            CONVERSATION,
        )
        try:
            keys = key_client(ch)
            live_keys = await keys.keys(live)
            assert live_keys.tenant_id == live and live_keys.current.key_id in live_keys.by_id
            # The same keys conversation seals with.
            assert (await db.keys.keys(live)).current == live_keys.current

            await KeyHandler(db).shred(gone)
            with pytest.raises(KeysShreddedError):
                await keys.keys(gone)

            opener = EventOpener(CachingKeySource(keys), GROUP)
            event = events_pb2.ConversationEvent(
                event_id=new_id(), tenant_id=live, conversation_id="c1"
            )
            sealed = seal_event(live_keys.current, live, event.event_id, event.SerializeToString())
            opened = await opener.open(record(sealed, event_headers(live, event.event_id)))
            assert opened == event

            before = skipped("shredded")
            lost = events_pb2.ConversationEvent(
                event_id=new_id(), tenant_id=gone, conversation_id="c1"
            )
            assert (
                await opener.open(
                    record(b"\x01sealed-before-the-shred", event_headers(gone, lost.event_id))
                )
                is None
            )
            assert skipped("shredded") == before + 1
        finally:
            await ch.close()
            await client.close()
