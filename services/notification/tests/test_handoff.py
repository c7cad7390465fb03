"""Agents who are away hear of the support bot's handoff, once per handoff:
the real conversation service hands a real ticket off, its event goes through
Kafka, and the email lands in the SMTP sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import conversation.app as conversation_app
from confab.conversation.v1 import support_pb2 as spb
from confab.conversation.v1 import support_pb2_grpc as spb_grpc
from confab.notification.v1 import notification_pb2 as pb
from confab_core import mongo as mongodb
from confab_core.clock import SystemClock
from confab_core.grpcx.client import channel
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_SERVICE, Caller, agent_user_id
from confab_core.ids import new_id
from confab_core.servicetoken import CONVERSATION, NOTIFICATION, InternalAuth
from confab_devservers import SmtpSink, dev_key_file
from conversation.settings import ConversationSettings

from .conftest import HOST, INTERNAL_KEY, Servers, Stack, acting_as

SUMMARY = "Wants a refund for order 12 and is upset."


@pytest.fixture
def conversation_db() -> str:
    return f"conv_{new_id()}"


@pytest_asyncio.fixture
async def conversation_addr(servers: Servers, conversation_db: str) -> AsyncIterator[str]:
    """conftest's conversation service, on a database this module can name: the
    tenant's settings (its support agent) are written there, as the settings
    handler would."""
    settings = ConversationSettings(
        internal_key=INTERNAL_KEY,
        mongo_url=servers.mongo_url,
        kafka_bootstrap_servers=servers.kafka,
        grpc_port=0,
        mongo_database=conversation_db,
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with conversation_app.running(settings, host=HOST) as port:
        yield f"{HOST}:{port}"


def to(address: str):  # type: ignore[no-untyped-def]
    return lambda m: address in m.rcpt_tos


@pytest.mark.asyncio
async def test_away_agents_get_one_email_per_handoff(
    stack: Stack, smtp: SmtpSink, conversation_addr: str, conversation_db: str
) -> None:
    tenant = stack.tenant_id
    mongo = mongodb.connect(stack.servers.mongo_url, "handoff-test")
    await mongo[conversation_db]["tenant_settings"].update_one(
        {"tenant_id": tenant},
        {"$set": {"agents": [{"id": "helper", "role": "support", "enabled": True}]}},
        upsert=True,
    )
    await mongo.close()

    def agent(name: str) -> Caller:
        return Caller(
            tenant, name, frozenset({ROLE_MEMBER, ROLE_AGENT}), name.title(), f"{name}@ex.com"
        )

    ada, abe = agent("ada"), agent("abe")
    member = stack.user("mia", "mia@ex.com")
    for person in (ada, abe, member):
        await stack.register(person)
    # abe is connected: he sees the queue change live, no email.
    await stack.connect(abe)
    await stack.start_consumer()

    auth = InternalAuth(NOTIFICATION, INTERNAL_KEY.encode(), SystemClock())
    support_channel = channel(conversation_addr, auth, CONVERSATION)
    support = spb_grpc.SupportServiceStub(support_channel)
    try:
        with acting_as(member):
            opened = await support.OpenTicket(spb.OpenTicketRequest(subject="Refund please"))
        assert opened.ticket.status == spb.TICKET_STATUS_BOT
        bot = Caller(tenant, agent_user_id("helper"), frozenset({ROLE_SERVICE}), "Helper")
        with acting_as(bot):
            await support.TransitionTicket(
                spb.TransitionTicketRequest(
                    ticket_id=opened.ticket.id,
                    action=spb.TICKET_ACTION_HANDOFF,
                    handoff_reason=spb.HANDOFF_REASON_USER_ASKED,
                    handoff_summary=SUMMARY,
                )
            )
    finally:
        await support_channel.close()

    email = await asyncio.to_thread(smtp.wait_for, to("ada@ex.com"), 60)
    assert email.subject == "A support ticket needs a person"
    assert "the requester asked for a person" in email.body
    assert SUMMARY in email.body

    async def handoff_record():  # type: ignore[no-untyped-def]
        for record in stack.handled:
            event = await stack.events.open(record)
            if event is not None and event.ticket_updated.change == "handoff":
                return record
        return None

    record = await stack.eventually(handoff_record, "handoff event handled")
    listed = await stack.list_notifications(ada)
    assert len(listed) == 1
    assert listed[0].reason == pb.NOTIFICATION_REASON_HANDOFF
    assert listed[0].conversation_id == opened.ticket.conversation_id
    assert SUMMARY not in listed[0].preview
    assert await stack.list_notifications(abe) == []
    # A redelivered handoff event sends nothing more.
    await stack.handler.handle_record(record)
    assert [m.rcpt_tos for m in smtp.messages] == [("ada@ex.com",)]
