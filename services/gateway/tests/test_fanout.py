from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2
from gateway.realtime.fanout import Fanout


class RecordingServer:
    """Stands in for socketio.AsyncServer: records emits (pure fan-out logic)."""

    def __init__(self) -> None:
        self.emits: list[tuple[str, Any, str]] = []

    async def emit(self, event: str, data: Any, room: str) -> None:
        self.emits.append((event, data, room))


def message_event(tenant: str, conv: str, event_seq: int, seq: int) -> events_pb2.ConversationEvent:
    event = events_pb2.ConversationEvent(
        event_id=f"e{event_seq}",
        tenant_id=tenant,
        conversation_id=conv,
        event_seq=event_seq,
        message_created=events_pb2.MessageCreated(
            message=cpb.Message(
                id=f"m{seq}", conversation_id=conv, seq=seq, kind=cpb.MESSAGE_KIND_TEXT, text="hi"
            )
        ),
    )
    event.message_created.message.created_at.GetCurrentTime()
    return event


@pytest.mark.asyncio
async def test_repeated_events_are_emitted_once_in_order(h: Any) -> None:
    server = RecordingServer()
    fanout = Fanout(server, h.opener())  # type: ignore[arg-type]
    events = [message_event("t1", "c1", n + 1, n) for n in range(1, 4)]
    # The relay re-publishes a batch after a crash: 2, 3, 4 then 2, 3, 4 again.
    for event in [*events, *events]:
        await fanout.handle(h.record(event))
    assert [(e, d["seq"], r) for e, d, r in server.emits] == [
        ("message:new", 1, "conv:t1:c1"),
        ("message:new", 2, "conv:t1:c1"),
        ("message:new", 3, "conv:t1:c1"),
    ]


@pytest.mark.asyncio
async def test_same_conversation_id_in_two_tenants_is_two_rooms(h: Any) -> None:
    server = RecordingServer()
    fanout = Fanout(server, h.opener())  # type: ignore[arg-type]
    await fanout.handle(h.record(message_event("t1", "c1", 2, 1)))
    await fanout.handle(h.record(message_event("t2", "c1", 2, 1)))
    assert [r for _, _, r in server.emits] == ["conv:t1:c1", "conv:t2:c1"]


@pytest.mark.asyncio
async def test_an_event_whose_emit_failed_is_emitted_when_retried(h: Any) -> None:
    class FlakyServer(RecordingServer):
        def __init__(self) -> None:
            super().__init__()
            self.fail = True

        async def emit(self, event: str, data: Any, room: str) -> None:
            if self.fail:
                self.fail = False
                raise ConnectionError("socket layer hiccup")
            await super().emit(event, data, room)

    server = FlakyServer()
    fanout = Fanout(server, h.opener())  # type: ignore[arg-type]
    rec = h.record(message_event("t1", "c1", 2, 1))
    with pytest.raises(ConnectionError):
        await fanout.handle(rec)
    # The consumer retries the same record: it is not a repeat.
    await fanout.handle(rec)
    assert [d["seq"] for _, d, _ in server.emits] == [1]


@pytest.mark.asyncio
async def test_an_undecodable_record_is_dropped_not_retried_forever(h: Any) -> None:
    server = RecordingServer()
    fanout = Fanout(server, h.opener())  # type: ignore[arg-type]
    bad = h.record(message_event("t1", "c1", 2, 1))
    bad = ConsumerRecord(**{**bad.__dict__, "value": b"\xff\xff\xff not protobuf"})
    await fanout.handle(bad)
    await fanout.handle(h.record(message_event("t1", "c1", 2, 1)))
    assert [d["seq"] for _, d, _ in server.emits] == [1]


def skipped(reason: str) -> float:
    labels = {"group": "gateway-test", "reason": reason}
    return REGISTRY.get_sample_value("confab_sealed_events_skipped_total", labels) or 0.0


@pytest.mark.asyncio
async def test_tampered_or_unsealed_events_are_skipped_and_counted(h: Any) -> None:
    server = RecordingServer()
    fanout = Fanout(server, h.opener())  # type: ignore[arg-type]
    good = h.record(message_event("t1", "c1", 2, 1))
    flipped = bytearray(good.value)
    flipped[-1] ^= 1
    tampered = ConsumerRecord(**{**good.__dict__, "value": bytes(flipped)})
    plain = ConsumerRecord(
        **{
            **good.__dict__,
            "value": message_event("t1", "c1", 2, 1).SerializeToString(),
            "headers": (),
        }
    )
    before = skipped("undecryptable"), skipped("unsealed")
    await fanout.handle(tampered)
    await fanout.handle(plain)
    assert server.emits == []
    assert (skipped("undecryptable"), skipped("unsealed")) == (before[0] + 1, before[1] + 1)
    await fanout.handle(good)
    assert [d["seq"] for _, d, _ in server.emits] == [1]
