"""Posting a reply: the surface the reply pipeline writes through.

``Replier`` is exactly the surface of the streaming writer
(bot.streaming.ReplyStreamer.stream); ``PlainReplier`` is the non-streamed one:
one completion, checked whole, then one SendMessage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.clients.conversation import ConversationClient
from bot.model import ChatModel, ModelCall
from bot.prompting import Turn, fit_reply
from confab.conversation.v1 import conversation_pb2 as pb


@dataclass(frozen=True)
class StreamRequest:
    tenant_id: str
    conversation_id: str
    # The reply's idempotency key, "bot-reply:<answered message id>".
    client_msg_id: str
    turns: list[Turn]
    model: str = ""
    base_url: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    # Gets the text so far; False stops the reply (nothing more is shown).
    check: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class StreamOutcome:
    # The stored reply, committed exactly once; empty when nothing was posted.
    message: pb.Message
    state: pb.StreamState.ValueType
    tokens_in: int
    tokens_out: int
    # check() said no: the caller hands off (or refuses).
    refused: bool


class Replier(Protocol):
    async def stream(self, request: StreamRequest) -> StreamOutcome: ...


class PlainReplier:
    """Asks the model for the whole reply, checks it, and posts it as the current
    caller (the serving agent's bot user). A model that stays down raises
    bot.model.ModelError and nothing is posted."""

    def __init__(self, conversations: ConversationClient, model: ChatModel) -> None:
        self._conversations = conversations
        self._model = model

    async def stream(self, request: StreamRequest) -> StreamOutcome:
        completion = await self._model.complete(
            ModelCall(
                request.turns,
                model=request.model,
                base_url=request.base_url,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
            )
        )
        text = fit_reply(completion.text)
        if request.check is not None and not request.check(text):
            return StreamOutcome(
                pb.Message(),
                pb.STREAM_STATE_STOPPED,
                completion.tokens_in,
                completion.tokens_out,
                refused=True,
            )
        message = await self._conversations.send_message(
            request.conversation_id, request.client_msg_id, text, pb.MESSAGE_KIND_BOT
        )
        return StreamOutcome(
            message,
            pb.STREAM_STATE_COMPLETE,
            completion.tokens_in,
            completion.tokens_out,
            refused=False,
        )
