"""Posting a reply: the surface the reply pipeline writes through.

``Replier`` is the surface of the streaming writer
(bot.streaming.ReplyStreamer.stream); ``PlainReplier`` is the non-streamed one
(one completion, checked whole, then one SendMessage), for model servers that
cannot stream (BOT_STREAM_REPLIES=false). The streamer goes behind
``MaskingReplier``; the plain one asks a bot.model.MaskingChat.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from bot.clients.conversation import ConversationClient
from bot.clients.policy import PolicyReader
from bot.model import ChatModel, ModelCall, masked_for_caller
from bot.prompting import fit_reply
from bot.streaming import StreamOutcome, StreamRequest
from confab.conversation.v1 import conversation_pb2 as pb


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


class MaskingReplier:
    """A replier whose prompts lose the PII the tenant's policy asks to mask, as
    bot.model.MaskingChat does for the other model calls."""

    def __init__(self, replier: Replier, policies: PolicyReader) -> None:
        self._replier = replier
        self._policies = policies

    async def stream(self, request: StreamRequest) -> StreamOutcome:
        turns = await masked_for_caller(self._policies, request.turns)
        return await self._replier.stream(dataclasses.replace(request, turns=turns))
