"""The chat model behind the bot: any OpenAI-compatible server, via the openai SDK."""

from __future__ import annotations

from typing import Protocol

import openai
from openai.types.chat import ChatCompletionMessageParam

from bot.clients.policy import PolicyReader
from bot.prompting import Turn, masked_turns
from bot.settings import BotSettings
from confab_core.errors import ConfabError
from confab_core.identity import current_caller


class ModelError(Exception):
    """The model gave no answer after the SDK's own retries."""


class ChatModel(Protocol):
    async def complete(self, turns: list[Turn]) -> str: ...


def to_openai(turn: Turn) -> ChatCompletionMessageParam:
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "assistant":
        return {"role": "assistant", "content": turn.content}
    return {"role": "user", "content": turn.content}


class OpenAIChat:
    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    async def complete(self, turns: list[Turn]) -> str:
        try:
            resp = await self._client.chat.completions.create(
                model=self._model, messages=[to_openai(t) for t in turns]
            )
        except openai.APIError as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    async def close(self) -> None:
        await self._client.close()


class MaskingChat:
    """A model whose prompts lose the PII the tenant's policy asks to mask.

    The tenant is the current caller's (the bot replying in it, or the member
    asking for a summary). When the policy cannot be read, every kind is masked:
    an answer without the PII beats none, and beats sending it."""

    def __init__(self, model: ChatModel, policies: PolicyReader) -> None:
        self._model = model
        self._policies = policies

    async def complete(self, turns: list[Turn]) -> str:
        try:
            policy = await self._policies.prompt_policy(current_caller().tenant_id)
            mask, kinds = policy.mask_prompts, policy.kinds
        except ConfabError:
            mask, kinds = True, ()
        return await self._model.complete(masked_turns(turns, kinds) if mask else turns)


def model_from(settings: BotSettings) -> OpenAIChat | None:
    """The configured model, or None when base URL or key is missing."""
    if not settings.model_configured or settings.openai_api_key is None:
        return None
    client = openai.AsyncOpenAI(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value(),
        timeout=settings.request_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )
    return OpenAIChat(client, settings.model)
