"""Summarizing a conversation for a caller who can read it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.clients.conversation import ConversationClient
from bot.model import ChatModel, ModelError
from bot.prompting import (
    NOT_CONFIGURED_SUMMARY,
    NOTHING_TO_SUMMARIZE,
    SUMMARY_UNAVAILABLE,
    fit_reply,
    summary_turns,
)
from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from confab_core.telemetry import tracer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    text: str
    model_available: bool


class SummaryHandler:
    def __init__(
        self, conversations: ConversationClient, model: ChatModel | None, *, max_messages: int
    ) -> None:
        self._conversations = conversations
        self._model = model
        self._max = max_messages

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
            messages = await self._conversations.messages_before(
                conversation_id, conversation.last_seq + 1, self._max
            )
            if not messages:
                return Summary(NOTHING_TO_SUMMARIZE, model_available=True)
            try:
                text = await self._model.complete(summary_turns(conversation.title, messages))
            except ModelError as exc:
                log.warning(
                    "model call failed while summarizing",
                    extra={"conversation_id": conversation_id, "error": str(exc)},
                )
                # An answer, not UNAVAILABLE: clients retry that status
                # transparently, and every retry would repeat the SDK's own
                # retries against a model that is down.
                return Summary(SUMMARY_UNAVAILABLE, model_available=True)
            return Summary(fit_reply(text), model_available=True)
