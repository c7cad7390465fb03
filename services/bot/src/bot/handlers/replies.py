"""Answers users in AI-assistant conversations.

Consumed events are redelivered after failures and restarts, so answering is
idempotent twice over: the reply's client_msg_id derives from the message
answered (the conversation service returns the stored reply on a repeat), and
a reply already in the conversation is found before the model is asked again.
A model that fails gets a "could not answer" reply instead of an error, so a
model outage never stalls the partition; the conversation service being down
does raise, and the consumer retries the event until it is back.
"""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord
from opentelemetry.trace import Span
from prometheus_client import Counter

from bot.clients.conversation import ConversationClient
from bot.model import ChatModel, ModelError
from bot.prompting import (
    NOT_CONFIGURED_REPLY,
    UNAVAILABLE_REPLY,
    chat_turns,
    fit_reply,
    reply_client_msg_id,
    should_reply,
)
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, Caller, reset_caller, set_caller
from confab_core.sealed_events import EventOpener
from confab_core.telemetry import tracer

log = logging.getLogger(__name__)

# Errors a retry of the same event cannot fix: the conversation is gone or
# archived, or the bot is no longer allowed to post there.
_PERMANENT = (NotFound, PermissionDenied, InvalidArgument, FailedPrecondition)
# How far past the answered message to look for an existing reply.
_REPLY_LOOKAHEAD = 100

REPLIES = Counter("confab_bot_replies_total", "Bot replies, by outcome", ["outcome"])


def bot_caller(tenant_id: str, display_name: str) -> Caller:
    return Caller(
        tenant_id=tenant_id,
        user_id=BOT_USER_ID,
        roles=frozenset({ROLE_SERVICE}),
        display_name=display_name,
    )


class ReplyHandler:
    def __init__(
        self,
        conversations: ConversationClient,
        model: ChatModel | None,
        *,
        system_prompt: str,
        history_messages: int,
        display_name: str,
        events: EventOpener,
    ) -> None:
        self._conversations = conversations
        self._events = events
        self._model = model
        self._system_prompt = system_prompt
        self._history = history_messages
        self._display_name = display_name

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = await self._events.open(record)
        if event is not None:
            await self.handle(event)

    async def handle(self, event: events_pb2.ConversationEvent) -> None:
        if not should_reply(event):
            return
        message = event.message_created.message
        if not event.tenant_id or not event.conversation_id or not message.id:
            # No tenant to act in: retrying would hold the partition forever.
            log.error("dropping malformed message event", extra={"event_id": event.event_id})
            return
        with tracer().start_as_current_span(
            "confab.bot.reply",
            attributes={
                "confab.tenant_id": event.tenant_id,
                "confab.conversation_id": event.conversation_id,
                "confab.message_id": message.id,
            },
        ) as span:
            token = set_caller(bot_caller(event.tenant_id, self._display_name))
            try:
                await self._reply(event.conversation_id, message, span)
            except _PERMANENT as exc:
                log.warning(
                    "cannot reply in this conversation; skipping the message",
                    extra={
                        "tenant_id": event.tenant_id,
                        "conversation_id": event.conversation_id,
                        "message_id": message.id,
                        "error_code": exc.code,
                    },
                )
                span.set_attribute("confab.error_code", exc.code)
                REPLIES.labels("skipped").inc()
            finally:
                reset_caller(token)

    async def _reply(self, conversation_id: str, message: pb.Message, span: Span) -> None:
        client_msg_id = reply_client_msg_id(message.id)
        if await self._already_replied(conversation_id, message.seq, client_msg_id):
            span.set_attribute("confab.bot.duplicate", True)
            REPLIES.labels("duplicate").inc()
            return
        text, outcome = await self._answer(conversation_id, message)
        span.set_attribute("confab.bot.outcome", outcome)
        await self._conversations.send_message(
            conversation_id, client_msg_id, text, pb.MESSAGE_KIND_BOT
        )
        REPLIES.labels(outcome).inc()

    async def _already_replied(self, conversation_id: str, seq: int, client_msg_id: str) -> bool:
        # Saves a model call on redelivery; the client_msg_id alone would keep
        # the conversation correct but pay for the answer twice.
        later = await self._conversations.messages_after(conversation_id, seq, _REPLY_LOOKAHEAD)
        return any(m.sender_id == BOT_USER_ID and m.client_msg_id == client_msg_id for m in later)

    async def _answer(self, conversation_id: str, message: pb.Message) -> tuple[str, str]:
        if self._model is None:
            return NOT_CONFIGURED_REPLY, "not_configured"
        history = await self._conversations.messages_before(
            conversation_id, message.seq + 1, self._history
        )
        try:
            answer = await self._model.complete(chat_turns(self._system_prompt, history))
        except ModelError as exc:
            log.warning(
                "model call failed; replying that the bot cannot answer",
                extra={"conversation_id": conversation_id, "error": str(exc)},
            )
            return UNAVAILABLE_REPLY, "model_error"
        return fit_reply(answer), "answered"
