"""Summarizing a conversation for a caller who can read it.

Summaries are cached by the conversation's last_seq (BotDataService): a
conversation that did not move since the last summary costs no model call.
The cache and the usage record are the bot's (read and written as a service
caller); the conversation is read as the asking member, so membership is the
conversation service's decision."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from bot.clients.botdata import BotDataClient
from bot.clients.conversation import ConversationClient
from bot.clients.settings import TenantSettingsSource
from bot.guardrails import Guardrails, Verdict
from bot.model import ChatModel, Completion, ModelCall, ModelError
from bot.prompting import (
    NOT_CONFIGURED_SUMMARY,
    NOTHING_TO_SUMMARIZE,
    SUMMARY_UNAVAILABLE,
    fit_reply,
    role_of,
    summary_turns,
)
from confab.conversation.v1 import botdata_pb2 as bdpb
from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.errors import ConfabError, InvalidArgument
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, Caller, reset_caller, set_caller
from confab_core.telemetry import tracer

log = logging.getLogger(__name__)


@contextlib.contextmanager
def as_bot(caller: Caller) -> Iterator[None]:
    token = set_caller(
        Caller(tenant_id=caller.tenant_id, user_id=BOT_USER_ID, roles=frozenset({ROLE_SERVICE}))
    )
    try:
        yield
    finally:
        reset_caller(token)


@dataclass(frozen=True)
class Summary:
    text: str
    model_available: bool


class SummaryHandler:
    def __init__(
        self,
        conversations: ConversationClient,
        model: ChatModel | None,
        *,
        max_messages: int,
        botdata: BotDataClient | None = None,
        settings: TenantSettingsSource | None = None,
    ) -> None:
        self._conversations = conversations
        self._model = model
        self._max = max_messages
        self._botdata = botdata
        self._settings = settings

    async def summarize(self, caller: Caller, conversation_id: str) -> Summary:
        """Reads as ``caller`` (the current caller travels with every call), so the
        conversation service decides what the caller may see, not the bot."""
        if not conversation_id:
            raise InvalidArgument("conversation_id is required", "conversation_id_required")
        with tracer().start_as_current_span(
            "confab.bot.summarize",
            attributes={
                "confab.tenant_id": caller.tenant_id,
                "confab.conversation_id": conversation_id,
            },
        ):
            conversation = await self._conversations.get_conversation(conversation_id)
            if self._model is None:
                return Summary(NOT_CONFIGURED_SUMMARY, model_available=False)
            if conversation.last_seq <= 0:
                return Summary(NOTHING_TO_SUMMARIZE, model_available=True)
            with as_bot(caller):
                cached = await self._cached(conversation_id, conversation.last_seq)
            if cached is not None:
                return Summary(cached, model_available=True)
            messages = await self._conversations.messages_before(
                conversation_id, conversation.last_seq + 1, self._max
            )
            messages = await self._without_forbidden(caller.tenant_id, messages)
            if not messages:
                return Summary(NOTHING_TO_SUMMARIZE, model_available=True)
            try:
                completion = await self._model.complete(
                    ModelCall(summary_turns(conversation.title, messages))
                )
            except ModelError as exc:
                log.warning(
                    "model call failed while summarizing",
                    extra={"conversation_id": conversation_id, "error": str(exc)},
                )
                # An answer, not UNAVAILABLE: clients retry that status
                # transparently, and every retry would repeat the model
                # layer's own retries against a model that is down.
                return Summary(SUMMARY_UNAVAILABLE, model_available=True)
            text = fit_reply(completion.text)
            with as_bot(caller):
                await self._store(conversation_id, conversation.last_seq, text, completion)
            return Summary(text, model_available=True)

    async def _without_forbidden(
        self, tenant_id: str, messages: list[cpb.Message]
    ) -> list[cpb.Message]:
        """A question the rules refuse never reaches the model, not even to be
        summarized. Any agent's rules count: the summary is the conversation's,
        whichever agent serves it, and a line left out only shortens it."""
        if self._settings is None:
            return messages
        settings = await self._settings.get(tenant_id)
        rules = Guardrails.of(settings.topics, *(a.topics for a in settings.agents))
        if not rules.forbidden:
            return messages
        return [
            m
            for m in messages
            if role_of(m) != "user" or rules.judge(m.text).verdict is not Verdict.FORBIDDEN
        ]

    async def _cached(self, conversation_id: str, last_seq: int) -> str | None:
        if self._botdata is None:
            return None
        try:
            return await self._botdata.cached_summary(conversation_id, last_seq)
        except ConfabError as exc:
            log.warning("summary cache unreadable", extra={"error": str(exc)})
            return None

    async def _store(
        self, conversation_id: str, last_seq: int, text: str, completion: Completion
    ) -> None:
        if self._botdata is None:
            return
        try:
            await self._botdata.put_cached_summary(conversation_id, last_seq, text)
            await self._botdata.record_usage(
                bdpb.RecordUsageRequest(
                    call_id=f"summary:{conversation_id}:{last_seq}",
                    conversation_id=conversation_id,
                    purpose=bdpb.USAGE_PURPOSE_SUMMARY,
                    tokens_in=completion.tokens_in,
                    tokens_out=completion.tokens_out,
                )
            )
        except ConfabError as exc:
            # The member still gets the summary; the next request pays again.
            log.warning("summary not cached or not metered", extra={"error": str(exc)})
