"""Sending: lone sends and thread replies, through the group commit and the unit of work."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from opentelemetry.trace import Span
from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.ids import new_id
from confab_core.limits import (
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILE_BYTES,
    MAX_FILE_NAME_CHARS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
)
from confab_core.telemetry import inject_headers, tracer
from conversation import convert
from conversation.handlers import access, attach, mentions
from conversation.handlers import text as textutil
from conversation.handlers.base import HandlerBase
from conversation.handlers.pii import queue_flagged
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.sendbatch import PendingSend, SendBatcher
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.conversations import Claim
from conversation.storage.messages import FileAttachment, Message, NewMessage

_USER_KINDS = {pb.MESSAGE_KIND_TEXT, pb.MESSAGE_KIND_FILE}
_SERVICE_KINDS = {pb.MESSAGE_KIND_BOT, pb.MESSAGE_KIND_SYSTEM}


class TicketSends(Protocol):
    """Sends to support conversations, which carry a ticket (handlers/support.py)."""

    async def send(self, caller: Caller, new: NewMessage) -> Message | None: ...

    async def bot_may_reply(self, caller: Caller, conversation_id: str) -> bool: ...


@dataclass(frozen=True)
class Sent:
    message: Message
    created: bool


def message_created(message: Message, conversation_kind: int) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        message_created=events_pb2.MessageCreated(
            message=convert.message(message),
            conversation_kind=cast(pb.ConversationKind.ValueType, conversation_kind),
        )
    )


class Sending(HandlerBase):
    def __init__(
        self,
        unit: UnitOfWork,
        policies: PolicyHandler | None = None,
        tickets: TicketSends | None = None,
    ) -> None:
        super().__init__(unit, policies)
        # A lone send is a batch of one: both go through commit_sends.
        self._sends = SendBatcher(self._commit_sends, self._commit_sends)
        self.tickets = tickets

    async def send(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        client_msg_id: str,
        text: str,
        kind: int,
        thread_root_id: str,
        file: dict[str, Any] | None = None,
        message_id: str = "",
        stream_state: int = 0,
    ) -> Sent:
        """``message_id`` and ``stream_state`` are for service callers: a streamed
        bot reply announces its id in its stream events before it is stored."""
        with tracer().start_as_current_span(
            "confab.message.send",
            attributes={
                "confab.tenant_id": caller.tenant_id,
                "confab.conversation_id": conversation_id,
            },
        ) as span:
            kind = kind or pb.MESSAGE_KIND_TEXT
            _validate(caller, client_msg_id, text, kind, file)
            _validate_stream(caller, message_id, stream_state)
            await self.remember_profile(caller)
            conv, member = await self.writable_by(caller, conversation_id)
            access.require_writer(caller, conv, member, "send")
            if file is not None:
                access.require_file_sender(await self.granted(caller))
            support = conv.kind == pb.CONVERSATION_KIND_SUPPORT
            access.require_writable(conv)
            if file is not None and file.get("file_id"):
                try:
                    file = await self._uploaded(caller, conversation_id, str(file["file_id"]))
                except InvalidArgument:
                    # A retry finds its file attached to the message it stored.
                    again = await self.store(caller).messages.by_client_id(
                        conversation_id, caller.user_id, client_msg_id
                    )
                    if again is None:
                        raise
                    span.set_attribute("confab.message.duplicate", True)
                    return Sent(again, created=False)
            screened = await self.pii.screen(
                caller, text, str(file["name"]) if file is not None else None
            )
            text = screened.text
            if file is not None and screened.file_name is not None:
                file = {**file, "name": screened.file_name}
            store = self.store(caller)
            # A retried send is found by the unique (sender, client_msg_id) index
            # inside the transaction, not by a read before it: retries are rare,
            # and the read cost every send a round trip.
            if thread_root_id:
                root = await store.messages.get(conversation_id, thread_root_id)
                if root is None or root.thread_root_id or root.deleted:
                    raise InvalidArgument(
                        "thread root must be a top-level message of this conversation",
                        "invalid_thread_root",
                    )
            found, everyone = await mentions.resolve(store, conversation_id, text)
            attachment = _attachment(file)
            new = NewMessage(
                id=message_id or new_id(),
                conversation_id=conversation_id,
                sender_id=caller.user_id,
                sender_name=caller.display_name,
                kind=kind,
                text=text,
                client_msg_id=client_msg_id,
                created_at=self.clock.now(),
                thread_root_id=thread_root_id,
                mentions=tuple(found),
                mentions_all=everyone,
                file=attachment,
                search_terms=textutil.terms(text + " " + (attachment.name if attachment else "")),
                pii_kinds=screened.flagged,
                sender_role=access.sender_role(caller),
                stream_state=stream_state,
            )
            try:
                ticketed = None
                if support and thread_root_id and access.bot_user(caller.user_id):
                    await self._bot_may_reply(caller, conversation_id)
                if support and not thread_root_id and self.tickets is not None:
                    ticketed = await self.tickets.send(caller, new)
                if ticketed is not None:
                    stored = ticketed
                elif thread_root_id:
                    stored = await self._reply(caller, int(conv.kind), new)
                elif attachment is not None and attachment.file_id:
                    # Alone, not in a group commit: a file another send took
                    # fails this unit, and must not fail a batch of others.
                    pending = PendingSend(caller, int(conv.kind), new, inject_headers())
                    await self._commit_sends([pending])
                    stored = pending.done.result()
                else:
                    pending = PendingSend(caller, int(conv.kind), new, inject_headers())
                    stored = await self._sends.submit(pending)
            except DuplicateKeyError:
                return await self._stored_retry(caller, conversation_id, client_msg_id, span)
            except FailedPrecondition as refused:
                # A redelivered bot reply stored before the handoff is that reply:
                # the idempotent answer wins over the silence that came later.
                if refused.code != "ticket_not_with_bot":
                    raise
                again = await store.messages.by_client_id(
                    conversation_id, caller.user_id, client_msg_id
                )
                if again is None:
                    raise
                span.set_attribute("confab.message.duplicate", True)
                return Sent(again, created=False)
            span.set_attribute("confab.message.seq", stored.seq)
            return Sent(stored, created=True)

    async def _uploaded(self, caller: Caller, conversation_id: str, file_id: str) -> dict[str, Any]:
        """A send's uploaded file: what the message stores of it comes from
        the file's record, never from the client."""
        found = await attach.attachable(
            self.store(caller), conversation_id, caller.user_id, file_id
        )
        return {
            "url": "",
            "name": found.name,
            "content_type": found.content_type,
            "size_bytes": found.size_bytes,
            "file_id": found.id,
        }

    async def _bot_may_reply(self, caller: Caller, conversation_id: str) -> None:
        if self.tickets is not None and not await self.tickets.bot_may_reply(
            caller, conversation_id
        ):
            raise FailedPrecondition("the ticket is not with the bot", "ticket_not_with_bot")

    async def _reply(self, caller: Caller, conversation_kind: int, new: NewMessage) -> Message:
        """A thread reply: its message, and the root's reply count, in one unit."""
        conversation_id, root_id = new.conversation_id, new.thread_root_id

        async def body(t: Taken) -> Message:
            (stored,) = await t.store.messages.insert_many([(new, t.first_seq)])
            await attach.attach_all(t, [stored], self.clock.now())
            await queue_flagged(t.store, stored, self.clock.now())
            # The sender has read everything up to their own message.
            await t.store.members.advance_read(conversation_id, caller.user_id, stored.seq)
            root = await t.store.messages.bump_reply_count(
                conversation_id, root_id, self.clock.now()
            )
            if root is None:
                raise InvalidArgument("thread root vanished", "invalid_thread_root")
            t.emit(message_created(stored, conversation_kind), message_id=stored.id)
            t.emit(
                events_pb2.ConversationEvent(
                    message_updated=events_pb2.MessageUpdated(message=convert.message(root))
                ),
                message_id=root_id,
            )
            return stored

        change = Change(caller, conversation_id, Claim(events=2, messages=1))
        stored, _ = await self.unit.one(change, body)
        return stored

    async def _stored_retry(
        self, caller: Caller, conversation_id: str, client_msg_id: str, span: Span
    ) -> Sent:
        """A retry of a send that was stored: the transaction rolled back the seq
        it took, and the first send's message is the answer."""
        again = await self.store(caller).messages.by_client_id(
            conversation_id, caller.user_id, client_msg_id
        )
        if again is None:
            # The chosen message_id is another message's: not a retry of this send.
            raise InvalidArgument("message_id is already taken", "message_id_taken")
        span.set_attribute("confab.message.duplicate", True)
        return Sent(again, created=False)

    async def _commit_sends(self, items: list[PendingSend]) -> None:
        """Sends to any conversations of any tenants in one unit of work: per
        conversation one claim, then one insert per collection and tenant."""
        groups: dict[tuple[str, str], list[PendingSend]] = {}
        for item in items:
            key = (item.caller.tenant_id, item.message.conversation_id)
            groups.setdefault(key, []).append(item)
        changes = [
            Change(group[0].caller, conv_id, Claim(events=len(group), messages=len(group)))
            for (_, conv_id), group in groups.items()
        ]

        async def body(taken: list[Taken]) -> list[Message]:
            per_tenant: dict[str, _TenantSends] = {}
            for t, group in zip(taken, groups.values(), strict=True):
                sends = per_tenant.setdefault(t.change.caller.tenant_id, _TenantSends(t))
                for offset, item in enumerate(group):
                    seq = t.first_seq + offset
                    sends.placed.append((item.message, seq))
                    sends.owners.append((t, item))
                    sends.reads.append((t.change.conversation_id, item.caller.user_id, seq))
            stored_all: list[Message] = []
            for sends in per_tenant.values():
                stored = await sends.taken.store.messages.insert_many(sends.placed)
                await attach.attach_all(sends.taken, stored, self.clock.now())
                for message in stored:
                    await queue_flagged(sends.taken.store, message, self.clock.now())
                # Each sender has read everything up to their own message.
                await sends.taken.store.members.advance_read_many(sends.reads)
                # In each conversation's order: a change's events are stamped as emitted.
                for message, (t, item) in zip(stored, sends.owners, strict=True):
                    t.emit(
                        message_created(message, item.conversation_kind),
                        message_id=message.id,
                        actor=item.caller,
                        headers=item.headers,
                    )
                stored_all += stored
            return stored_all

        done = await self.unit.run(changes, body)
        by_id = {m.id: m for m in done.value}
        for item in items:
            item.done.set_result(by_id[item.message.id])


@dataclass
class _TenantSends:
    """One tenant's share of a batch: one insert, one read-marker write."""

    taken: Taken
    placed: list[tuple[NewMessage, int]] = field(default_factory=list)
    # Whose each placed message is: the change it belongs to, and its send.
    owners: list[tuple[Taken, PendingSend]] = field(default_factory=list)
    reads: list[tuple[str, str, int]] = field(default_factory=list)


def _attachment(file: dict[str, Any] | None) -> FileAttachment | None:
    """The validated file of a send, as stored."""
    if file is None:
        return None
    return FileAttachment(
        url=str(file["url"]),
        name=str(file["name"]),
        content_type=str(file.get("content_type", "")),
        size_bytes=int(file.get("size_bytes", 0)),
        file_id=str(file.get("file_id", "")),
    )


def validate_text(body: str) -> None:
    if not body.strip():
        raise InvalidArgument("message text is empty", "empty_message")
    if len(body) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"message text exceeds {MAX_TEXT_CHARS} characters", "message_too_long"
        )


def _validate(
    caller: Caller, client_msg_id: str, body: str, kind: int, file: dict[str, Any] | None
) -> None:
    if not client_msg_id:
        raise InvalidArgument("client_msg_id is required", "client_msg_id_required")
    if len(client_msg_id) > MAX_CLIENT_MSG_ID_CHARS:
        raise InvalidArgument("client_msg_id too long", "client_msg_id_too_long")
    allowed = _USER_KINDS | (_SERVICE_KINDS if caller.has_role(ROLE_SERVICE) else set())
    if kind not in allowed:
        raise InvalidArgument("message kind not allowed", "invalid_message_kind")
    if kind == pb.MESSAGE_KIND_FILE:
        _validate_file(file)
        if len(body) > MAX_TEXT_CHARS:
            raise InvalidArgument("caption too long", "message_too_long")
    else:
        if file is not None:
            raise InvalidArgument("only file messages carry a file", "unexpected_file")
        validate_text(body)


_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")


def _validate_stream(caller: Caller, message_id: str, stream_state: int) -> None:
    if not message_id and not stream_state:
        return
    if not caller.has_role(ROLE_SERVICE):
        raise InvalidArgument(
            "message_id and stream_state are for service callers", "service_fields_only"
        )
    if message_id and not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidArgument("message_id must be 32 lowercase hex digits", "invalid_message_id")
    if stream_state not in pb.StreamState.values():
        raise InvalidArgument("unknown stream_state", "invalid_stream_state")


def _validate_file(file: dict[str, Any] | None) -> None:
    if not file:
        raise InvalidArgument("a file message needs a file", "file_required")
    file_id = str(file.get("file_id", ""))
    if file_id:
        # An uploaded file: the server fills in the rest from its record.
        if len(file_id) > MAX_ID_CHARS or file.get("url"):
            raise InvalidArgument("a file message has a file_id or a url", "invalid_file")
        return
    parts = urlsplit(str(file.get("url", "")))
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(file["url"]) > MAX_URL_CHARS
    ):
        raise InvalidArgument("file url must be http(s) and at most 2048 chars", "invalid_file")
    name = str(file.get("name", ""))
    if (
        not name
        or len(name) > MAX_FILE_NAME_CHARS
        or len(str(file.get("content_type", ""))) > MAX_CONTENT_TYPE_CHARS
    ):
        raise InvalidArgument("file name 1-255 chars, content type up to 127", "invalid_file")
    size = int(file.get("size_bytes", 0))
    if size < 0 or size > MAX_FILE_BYTES:
        raise InvalidArgument("file size out of range", "invalid_file")
