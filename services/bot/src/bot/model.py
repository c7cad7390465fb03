"""The chat model behind the bot: any OpenAI-compatible server, via the openai SDK.

One AsyncOpenAI client per base URL (agents may override the service's), built
on first use and kept; a base URL the service is not configured to allow is
refused, since the service's API key goes with every request. Transient
failures (timeouts, connection errors, 429, 5xx) are retried here with
exponential backoff and full jitter through tenacity; the SDK's own retries are
off, so there is one retry layer whose attempts and waits the settings name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import openai
from openai.types.chat import ChatCompletionMessageParam
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bot.clients.policy import PolicyReader
from bot.prompting import Turn, masked_turns
from bot.settings import BotSettings
from confab_core.errors import ConfabError
from confab_core.identity import current_caller

log = logging.getLogger(__name__)


class ModelError(Exception):
    """The model gave no answer after the retries."""


@dataclass(frozen=True)
class ModelCall:
    turns: list[Turn]
    # "" = the service's default model / base URL.
    model: str = ""
    base_url: str = ""
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    # As the server reports them (0 when it does not).
    tokens_in: int
    tokens_out: int


class ChatModel(Protocol):
    async def complete(self, call: ModelCall) -> Completion: ...


def to_openai(turn: Turn) -> ChatCompletionMessageParam:
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "assistant":
        return {"role": "assistant", "content": turn.content}
    return {"role": "user", "content": turn.content}


def transient(exc: BaseException) -> bool:
    """What a retry can fix: the server was slow, unreachable, busy or broken.
    A 4xx other than 429 (bad key, unknown model) fails the same way again."""
    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    initial_seconds: float = 0.5
    max_seconds: float = 8.0


@dataclass
class ClientPool:
    """The OpenAI clients, one per allowed base URL."""

    default_base_url: str
    api_key: str
    timeout: float
    # Besides the default one.
    allowed_base_urls: frozenset[str] = frozenset()
    _clients: dict[str, openai.AsyncOpenAI] = field(default_factory=dict)

    def client(self, base_url: str) -> openai.AsyncOpenAI:
        url = (base_url or self.default_base_url).rstrip("/")
        if url != self.default_base_url.rstrip("/") and url not in {
            u.rstrip("/") for u in self.allowed_base_urls
        }:
            raise ModelError(f"base URL not allowed: {url}")
        found = self._clients.get(url)
        if found is None:
            found = openai.AsyncOpenAI(
                base_url=url, api_key=self.api_key, timeout=self.timeout, max_retries=0
            )
            self._clients[url] = found
        return found

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()
        self._clients.clear()


class OpenAIChat:
    def __init__(self, clients: ClientPool, model: str, retry: RetryPolicy | None = None) -> None:
        self._clients = clients
        self._model = model
        self._retry = retry or RetryPolicy()

    async def complete(self, call: ModelCall) -> Completion:
        client = self._clients.client(call.base_url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=wait_random_exponential(
                multiplier=self._retry.initial_seconds, max=self._retry.max_seconds
            ),
            retry=retry_if_exception(transient),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    resp = await client.chat.completions.create(
                        model=call.model or self._model,
                        messages=[to_openai(t) for t in call.turns],
                        temperature=openai.omit if call.temperature is None else call.temperature,
                        max_tokens=openai.omit if call.max_tokens is None else call.max_tokens,
                    )
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise ModelError(f"{type(last).__name__}: {last}") from last
        except openai.APIError as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        text = (resp.choices[0].message.content or "") if resp.choices else ""
        usage = resp.usage
        return Completion(
            text,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    async def close(self) -> None:
        await self._clients.close()


class MaskingChat:
    """A model whose prompts lose the PII the tenant's policy asks to mask.

    The tenant is the current caller's (the bot replying in it, or the member
    asking for a summary)."""

    def __init__(self, model: ChatModel, policies: PolicyReader) -> None:
        self._model = model
        self._policies = policies

    async def complete(self, call: ModelCall) -> Completion:
        turns = await masked_for_caller(self._policies, call.turns)
        return await self._model.complete(
            ModelCall(turns, call.model, call.base_url, call.temperature, call.max_tokens)
        )


async def masked_for_caller(policies: PolicyReader, turns: list[Turn]) -> list[Turn]:
    """``turns`` as the current caller's tenant lets them reach a model. When the
    policy cannot be read, every kind is masked: an answer without the PII beats
    none, and beats sending it."""
    try:
        policy = await policies.prompt_policy(current_caller().tenant_id)
        mask, kinds = policy.mask_prompts, policy.kinds
    except ConfabError:
        mask, kinds = True, ()
    return masked_turns(turns, kinds) if mask else turns


def retry_policy(settings: BotSettings) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.model_attempts,
        initial_seconds=settings.model_retry_initial_seconds,
        max_seconds=settings.model_retry_max_seconds,
    )


def client_pool(settings: BotSettings) -> ClientPool | None:
    """The clients of the configured model server, or None when base URL or key
    is missing."""
    if (
        not settings.model_configured
        or settings.openai_api_key is None
        or not settings.openai_base_url
    ):
        return None
    return ClientPool(
        default_base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value(),
        timeout=settings.request_timeout_seconds,
        allowed_base_urls=frozenset(settings.allowed_base_urls),
    )


def model_from(settings: BotSettings, clients: ClientPool | None = None) -> OpenAIChat | None:
    """The configured model (on ``clients`` when given), or None without one."""
    pool = clients or client_pool(settings)
    if pool is None:
        return None
    return OpenAIChat(pool, settings.model, retry_policy(settings))
