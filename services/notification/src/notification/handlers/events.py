"""Turns message events into notifications for members who are away, and
the support bot's handoffs into notifications for the agents who are away.

Delivery is at most once per (tenant, user, message). The record is inserted
first as a claim (a unique index rejects a second one), then the email is
sent, then the record gets its final status. A redelivered event finds the
claim and sends nothing; a crash between claim and send leaves the record
PENDING and that email unsent, which is the price of never sending twice.

Retry policy: connecting to the SMTP server is retried a few times (nothing
was handed over yet, so that cannot duplicate). Any later failure marks the
record FAILED with the error text and the event counts as handled: retrying
from the consumer would stall the partition behind a broken mail server, and
the claim already forbids a second send from here. Re-sending FAILED (or old
PENDING) records belongs to a sweeper that can apply a backoff and an attempt
limit per record; it does not exist yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import Counter

from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import support_pb2 as spb
from confab.notification.v1 import notification_pb2 as pb
from confab.presence.v1 import presence_pb2 as presence_pb
from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    NOTIFIER_USER_ID,
    ROLE_SERVICE,
    Caller,
    is_service_user,
    reset_caller,
    set_caller,
)
from confab_core.sealed_events import EventOpener
from confab_core.telemetry import tracer
from notification.clients.conversation import ConversationClient
from notification.clients.presence import PresenceClient
from notification.mail import (
    HandoffNotice,
    Mailer,
    Notice,
    build_email,
    build_handoff_email,
    preview,
)
from notification.storage.db import Database

log = logging.getLogger(__name__)

# Presence that never heard of a user answers UNSPECIFIED: nobody is connected.
_AWAY = {presence_pb.PRESENCE_STATUS_OFFLINE, presence_pb.PRESENCE_STATUS_UNSPECIFIED}
# Errors that a retry of the same event cannot fix (the conversation is gone,
# or the event names something this tenant does not have).
_PERMANENT = (NotFound, PermissionDenied, InvalidArgument, FailedPrecondition)

# A handoff's reason, as the agents' email says it.
HANDOFF_REASONS: dict[int, str] = {
    spb.HANDOFF_REASON_USER_ASKED: "the requester asked for a person",
    spb.HANDOFF_REASON_FORBIDDEN_TOPIC: "the question is on a forbidden topic",
    spb.HANDOFF_REASON_OFF_TOPIC: "the question is outside the bot's topics",
    spb.HANDOFF_REASON_BOT_CANNOT_HELP: "the bot could not help",
    spb.HANDOFF_REASON_TURN_LIMIT: "the bot did not resolve it in time",
    spb.HANDOFF_REASON_MODEL_UNAVAILABLE: "the bot's model is unavailable",
    spb.HANDOFF_REASON_QUOTA_EXCEEDED: "the tenant's AI quota is used up",
}

EMAILS = Counter("confab_notification_emails_total", "Notification emails, by outcome", ["outcome"])
EVENTS = Counter("confab_notification_events_total", "Message events seen, by outcome", ["outcome"])


@dataclass(frozen=True)
class Recipient:
    user_id: str
    display_name: str
    email: str
    mentioned: bool


def service_caller(tenant_id: str) -> Caller:
    return Caller(
        tenant_id=tenant_id,
        user_id=NOTIFIER_USER_ID,
        roles=frozenset({ROLE_SERVICE}),
        display_name="Confab notifications",
    )


def candidates(members: list[conv_pb.Member], sender_id: str) -> list[conv_pb.Member]:
    """Members who may hear about a message: not its sender, not a service account."""
    return [m for m in members if m.user_id != sender_id and not is_service_user(m.user_id)]


def recipients(
    members: list[conv_pb.Member], statuses: dict[str, int], message: conv_pb.Message
) -> list[Recipient]:
    """The members among ``members`` who are away, and whether ``message`` mentions them.

    Mentions are the ones the conversation service stored with the message, the
    same it counts in ``mention_count``: parsing the text again here would be a
    second grammar that drifts from the first.
    """
    mentioned = set(message.mentions)
    return [
        Recipient(
            m.user_id, m.display_name, m.email, message.mentions_all or m.user_id in mentioned
        )
        for m in members
        if statuses.get(m.user_id, presence_pb.PRESENCE_STATUS_UNSPECIFIED) in _AWAY
    ]


class NotificationHandler:
    def __init__(
        self,
        db: Database,
        conversations: ConversationClient,
        presence: PresenceClient,
        mailer: Mailer,
        clock: Clock,
        from_address: str,
        events: EventOpener,
    ) -> None:
        self._db = db
        self._events = events
        self._conversations = conversations
        self._presence = presence
        self._mailer = mailer
        self._clock = clock
        self._from = from_address

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = await self._events.open(record)
        if event is None:
            EVENTS.labels("undecodable").inc()
            return
        await self.handle(event)

    async def handle(self, event: events_pb2.ConversationEvent) -> None:
        payload = event.WhichOneof("payload")
        if payload == "message_created":
            await self._created(event)
        elif payload == "message_updated":
            message = event.message_updated.message
            await self._refresh_previews(event, message, "" if message.deleted else message.text)
        elif payload == "message_deleted":
            await self._refresh_previews(event, event.message_deleted.message, "")
        elif payload == "ticket_updated" and event.ticket_updated.change == "handoff":
            await self._handed_off(event)

    async def _handed_off(self, event: events_pb2.ConversationEvent) -> None:
        """Once per handoff (its event id is every record's claim): the ticket's
        staff who are away hear of it; those online see the queue change live."""
        ticket = event.ticket_updated.ticket
        if not event.tenant_id or not event.event_id or not ticket.id:
            log.error("dropping malformed handoff event", extra={"event_id": event.event_id})
            EVENTS.labels("malformed").inc()
            return
        with tracer().start_as_current_span(
            "confab.notification.handoff",
            attributes={"confab.tenant_id": event.tenant_id, "confab.ticket_id": ticket.id},
        ) as span:
            token = set_caller(service_caller(event.tenant_id))
            try:
                notified = await self._notify_staff(event, ticket)
                span.set_attribute("confab.notification.count", notified)
                EVENTS.labels("handled").inc()
            except _PERMANENT as exc:
                log.warning(
                    "skipping handoff event that cannot be handled",
                    extra={
                        "tenant_id": event.tenant_id,
                        "ticket_id": ticket.id,
                        "error_code": exc.code,
                    },
                )
                EVENTS.labels("skipped").inc()
            finally:
                reset_caller(token)

    async def _notify_staff(self, event: events_pb2.ConversationEvent, ticket: spb.Ticket) -> int:
        staff = [
            s
            for s in await self._conversations.ticket_staff(ticket.id)
            if not is_service_user(s.user_id)
        ]
        if not staff:
            return 0
        statuses = await self._presence.statuses([s.user_id for s in staff])
        away = [
            s
            for s in staff
            if statuses.get(s.user_id, presence_pb.PRESENCE_STATUS_UNSPECIFIED) in _AWAY
        ]
        reason = HANDOFF_REASONS.get(ticket.handoff_reason, "the bot handed it off")
        repo = self._db.notifications(event.tenant_id)
        for person in away:
            record = await repo.claim(
                user_id=person.user_id,
                conversation_id=ticket.conversation_id,
                message_id=event.event_id,
                reason=pb.NOTIFICATION_REASON_HANDOFF,
                # Not the summary: the record outlives the requester's erasure.
                preview=f"A ticket needs a person: {reason}",
                event_seq=event.event_seq,
                email=person.email,
                now=self._clock.now(),
            )
            if record is None:
                EMAILS.labels("duplicate").inc()
                continue
            email = (
                build_handoff_email(
                    HandoffNotice(
                        recipient_email=person.email,
                        recipient_name=person.display_name,
                        reason=reason,
                        summary=ticket.handoff_summary,
                    ),
                    self._from,
                )
                if person.email
                else None
            )
            where = {
                "tenant_id": event.tenant_id,
                "ticket_id": ticket.id,
                "event_id": event.event_id,
                "user_id": person.user_id,
            }
            await self._deliver(record, email, where, event.tenant_id)
        return len(away)

    async def _refresh_previews(
        self, event: events_pb2.ConversationEvent, message: conv_pb.Message, text: str
    ) -> None:
        """After an edit or a delete, no preview may show the old text.

        One write covers every recipient; it is ordered by ``event_seq``, so a
        redelivered or older event never brings back text a newer one replaced. A
        redelivered ``message_created`` that claims a record anew is followed by
        its edit or delete again, since Kafka redelivers a partition in order.
        """
        if not event.tenant_id or not message.id:
            log.error("dropping malformed message event", extra={"event_id": event.event_id})
            EVENTS.labels("malformed").inc()
            return
        changed = await self._db.notifications(event.tenant_id).set_preview(
            message.id, preview(text), event.event_seq, self._clock.now()
        )
        EVENTS.labels("preview_refreshed" if changed else "preview_unchanged").inc()

    async def _created(self, event: events_pb2.ConversationEvent) -> None:
        message = event.message_created.message
        # System messages (joins, renames) are not worth an email.
        if message.kind == conv_pb.MESSAGE_KIND_SYSTEM:
            return
        if not event.tenant_id or not event.conversation_id or not message.id:
            # No tenant to act in: retrying would hold the partition forever.
            log.error("dropping malformed message event", extra={"event_id": event.event_id})
            EVENTS.labels("malformed").inc()
            return
        with tracer().start_as_current_span(
            "confab.notification.handle",
            attributes={
                "confab.tenant_id": event.tenant_id,
                "confab.conversation_id": event.conversation_id,
                "confab.message_id": message.id,
            },
        ) as span:
            token = set_caller(service_caller(event.tenant_id))
            try:
                notified = await self._notify(event, message)
                span.set_attribute("confab.notification.count", notified)
                EVENTS.labels("handled").inc()
            except _PERMANENT as exc:
                log.warning(
                    "skipping message event that cannot be handled",
                    extra={
                        "tenant_id": event.tenant_id,
                        "conversation_id": event.conversation_id,
                        "message_id": message.id,
                        "error_code": exc.code,
                    },
                )
                span.set_attribute("confab.error_code", exc.code)
                EVENTS.labels("skipped").inc()
            finally:
                reset_caller(token)

    async def _notify(self, event: events_pb2.ConversationEvent, message: conv_pb.Message) -> int:
        members = candidates(
            await self._conversations.list_members(event.conversation_id), message.sender_id
        )
        if not members:
            return 0
        statuses = await self._presence.statuses([m.user_id for m in members])
        targets = recipients(members, statuses, message)
        if not targets:
            return 0
        conversation = await self._conversations.get_conversation(event.conversation_id)
        for target in targets:
            await self._notify_one(event, message, conversation.title, target)
        return len(targets)

    async def _notify_one(
        self,
        event: events_pb2.ConversationEvent,
        message: conv_pb.Message,
        title: str,
        target: Recipient,
    ) -> None:
        repo = self._db.notifications(event.tenant_id)
        record = await repo.claim(
            user_id=target.user_id,
            conversation_id=event.conversation_id,
            message_id=message.id,
            reason=(
                pb.NOTIFICATION_REASON_MENTION
                if target.mentioned
                else pb.NOTIFICATION_REASON_OFFLINE_MESSAGE
            ),
            preview=preview(message.text),
            event_seq=event.event_seq,
            email=target.email,
            now=self._clock.now(),
        )
        if record is None:
            EMAILS.labels("duplicate").inc()
            return
        where = {
            "tenant_id": event.tenant_id,
            "conversation_id": event.conversation_id,
            "message_id": message.id,
            "user_id": target.user_id,
        }
        email = (
            build_email(
                Notice(
                    recipient_email=target.email,
                    recipient_name=target.display_name,
                    sender_name=message.sender_name or message.sender_id,
                    conversation_title=title,
                    text=message.text,
                    mentioned=target.mentioned,
                ),
                self._from,
            )
            if target.email
            else None
        )
        await self._deliver(record, email, where, event.tenant_id)

    async def _deliver(
        self,
        record: dict[str, Any],
        email: EmailMessage | None,
        where: dict[str, str],
        tenant_id: str,
    ) -> None:
        """Sends a claimed record's email (None: no address) and records how it went."""
        repo = self._db.notifications(tenant_id)
        if email is None:
            await repo.set_status(
                record["_id"], pb.DELIVERY_STATUS_SKIPPED, "no email address", self._clock.now()
            )
            log.info("notification recorded; no email address to send to", extra=where)
            EMAILS.labels("skipped").inc()
            return
        try:
            await self._mailer.send(email)
        except Exception as exc:
            # The claim is taken, so this email is never retried from here;
            # record why, for the sweeper and for support.
            log.warning("notification email failed", extra={**where, "error": str(exc)})
            await repo.set_status(
                record["_id"],
                pb.DELIVERY_STATUS_FAILED,
                f"{type(exc).__name__}: {exc}",
                self._clock.now(),
            )
            EMAILS.labels("failed").inc()
            return
        await repo.set_status(record["_id"], pb.DELIVERY_STATUS_SENT, "", self._clock.now())
        log.info("notification email sent", extra=where)
        EMAILS.labels("sent").inc()
