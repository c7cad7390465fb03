"""Streamed replies: tokens from the model to every gateway pod, the message stored once.

A reply's tokens are coalesced into deltas (every ``coalesce_seconds`` or
``coalesce_tokens``, whichever comes first) and published as sealed StreamEvents
on ``confab.bot-streams``, keyed by conversation id so one partition keeps a
stream's order. MongoDB sees the reply once, when it ends: the final
SendMessage carries the announced ``message_id``, the reply's ``client_msg_id``
and the stream state, and the end event carries the stored message.

Retries: the model client has the SDK's own retries off (``max_retries=0``) and
tenacity retries the *opening* of a stream (timeouts, connection errors, 429,
5xx) until its first token, with exponential backoff and jitter that respects
Retry-After. One layer decides, so attempts do not multiply (3 SDK retries
inside 4 tenacity attempts would be 16 calls) and the first-token timeout
bounds each attempt. After the first token, nothing is retried: the user has
seen text, and a second answer would not continue it. The message then ends
with ``FAILED_MARKER`` and STREAM_STATE_FAILED.

One reply per answered message: a stream already running on this pod for the
same ``client_msg_id`` is joined, not repeated; one already stored is returned
as it is; and SendMessage's client_msg_id makes the store itself idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import openai
from aiokafka import ConsumerRecord
from openai.types.chat import ChatCompletionChunk
from prometheus_client import Counter, Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.clients.conversation import ConversationClient
from bot.model import to_openai
from bot.prompting import Turn
from confab.bot.v1 import stream_pb2 as spb
from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.crypto import KeySource
from confab_core.errors import ConfabError, InvalidArgument
from confab_core.identity import current_caller
from confab_core.ids import new_id
from confab_core.kafka import (
    BOT_STREAM_CONTROL_TOPIC,
    BOT_STREAMS_TOPIC,
    Producer,
    decode,
)
from confab_core.limits import MAX_TEXT_CHARS
from confab_core.sealed_events import STREAM_COLLECTION, event_headers, seal_event

log = logging.getLogger(__name__)

FAILED_MARKER = "\n\n[Reply interrupted: the AI model stopped responding.]"
STOPPED_MARKER = "\n\n[Stopped]"
# Stored when a stream ends before any text was shown.
NO_TEXT_FAILED = "[No reply: the AI model did not respond.]"
NO_TEXT_STOPPED = "[Stopped before any reply.]"
# How far back the stored-reply check looks (newest messages of the conversation).
_REPLY_LOOKBACK = 100
_NEWEST = 2**62

STREAMS = Counter("confab_bot_streams_total", "Streamed replies, by final state", ["state"])
DELTAS = Counter("confab_bot_stream_deltas_total", "Deltas published")
TOKENS = Counter("confab_bot_stream_tokens_total", "Model chunks with text streamed")
ATTEMPTS = Counter(
    "confab_bot_stream_attempts_total", "Model stream openings, by outcome", ["outcome"]
)
FIRST_TOKEN_SECONDS = Histogram(
    "confab_bot_stream_first_token_seconds",
    "From the first model call to the first token, retries included",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)


@dataclass(frozen=True)
class StreamRequest:
    tenant_id: str
    conversation_id: str
    client_msg_id: str  # the reply's idempotency key, "bot-reply:<answered message id>"
    turns: list[Turn]  # bot.prompting.Turn
    model: str = ""  # "" = the service default
    base_url: str = ""  # "" = the service default
    temperature: float | None = None
    max_tokens: int | None = None
    check: Callable[[str], bool] | None = None  # gets the text so far; False stops the stream


@dataclass(frozen=True)
class StreamOutcome:
    message: pb.Message  # the stored reply, committed exactly once
    state: pb.StreamState.ValueType
    tokens_in: int
    tokens_out: int
    refused: bool  # check() said no; the caller hands off


@dataclass(frozen=True)
class StreamSettings:
    """Typed knobs (BotSettings.stream_settings() builds them from the environment)."""

    model: str
    coalesce_seconds: float = 0.05
    coalesce_tokens: int = 16
    # Silence after the first token that fails the stream.
    idle_timeout_seconds: float = 20.0
    # Per attempt: the wait for the first token before that attempt is retried.
    first_token_timeout_seconds: float = 30.0
    attempts: int = 4
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    # Retry-After above this is capped: the user is waiting.
    retry_after_max_seconds: float = 20.0


class ModelClients(Protocol):
    def client(self, base_url: str) -> openai.AsyncOpenAI: ...


class StreamPublisher:
    """Seals StreamEvents with the tenant's current key and publishes them, and
    publishes control messages (which carry no text) in the clear."""

    def __init__(self, producer: Producer, keys: KeySource) -> None:
        self._producer = producer
        self._keys = keys

    async def publish(self, event: spb.StreamEvent) -> None:
        keys = await self._keys.keys(event.tenant_id)
        sealed = seal_event(
            keys.current,
            event.tenant_id,
            event.event_id,
            event.SerializeToString(),
            STREAM_COLLECTION,
        )
        await self._producer.send_many(
            BOT_STREAMS_TOPIC,
            [
                (
                    event.conversation_id.encode(),
                    sealed,
                    event_headers(event.tenant_id, event.event_id),
                )
            ],
        )

    async def control(self, message: spb.StreamControl) -> None:
        await self._producer.send_many(
            BOT_STREAM_CONTROL_TOPIC,
            [(message.conversation_id.encode(), message.SerializeToString(), [])],
        )


class _Stop(Exception):
    """The stream ends early: ``state`` says why."""

    def __init__(self, state: pb.StreamState.ValueType, refused: bool = False) -> None:
        super().__init__(state)
        self.state = state
        self.refused = refused


@dataclass
class _Running:
    request: StreamRequest
    message_id: str
    done: asyncio.Future[StreamOutcome]
    # Who the reply is from: the caller of stream(), kept for the events that
    # other tasks (cancel, snapshot requests) publish.
    sender_id: str
    sender_name: str
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # What the gateways were sent: the text of deltas 1..index.
    shown: str = ""
    index: int = 0


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(
        exc,
        openai.APITimeoutError | openai.APIConnectionError | httpx2.TransportError | TimeoutError,
    )


def _retry_after(exc: BaseException | None) -> float | None:
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


class _Wait:
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""

    def __init__(self, settings: StreamSettings) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_initial_seconds,
            max=settings.backoff_max_seconds,
            jitter=settings.backoff_initial_seconds,
        )
        self._cap = settings.retry_after_max_seconds

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        outcome = state.outcome
        told = _retry_after(outcome.exception() if outcome is not None else None)
        if told is None:
            return backoff
        # A little jitter on top, so clients told the same time do not come back at once.
        return min(self._cap, told) + random.uniform(0, 0.1 * backoff)


class ReplyStreamer:
    def __init__(
        self,
        conversations: ConversationClient,
        clients: ModelClients,
        publisher: StreamPublisher,
        settings: StreamSettings,
    ) -> None:
        self._conversations = conversations
        self._clients = clients
        self._publisher = publisher
        self._settings = settings
        # (tenant, client_msg_id) -> the stream answering it on this pod.
        self._by_reply: dict[tuple[str, str], _Running] = {}
        # (tenant, message_id) -> the same streams, as cancel and snapshots name them.
        self._by_message: dict[tuple[str, str], _Running] = {}

    # -- the brain's entry point ---------------------------------------------

    async def stream(self, request: StreamRequest) -> StreamOutcome:
        """Streams one reply as the current caller and stores it once."""
        key = (request.tenant_id, request.client_msg_id)
        running = self._by_reply.get(key)
        if running is not None:
            # A redelivered event while its stream runs: the same outcome, no second stream.
            return await asyncio.shield(running.done)
        # Registered before the first await, so a concurrent repeat joins this one.
        caller = current_caller()
        if caller.tenant_id != request.tenant_id:
            raise InvalidArgument("the reply streams in the caller's tenant", "tenant_mismatch")
        running = _Running(
            request,
            new_id(),
            asyncio.get_running_loop().create_future(),
            caller.user_id,
            caller.display_name,
        )
        self._by_reply[key] = running
        self._by_message[(request.tenant_id, running.message_id)] = running
        try:
            stored = await self._stored_reply(request)
            if stored is not None:
                outcome = StreamOutcome(stored, stored.stream_state, 0, 0, False)
            else:
                outcome = await self._run(running)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                running.done.cancel()
            else:
                running.done.set_exception(exc)
                # Joiners see it; nobody else has to retrieve it.
                running.done.exception()
            raise
        finally:
            self._by_reply.pop(key, None)
            self._by_message.pop((request.tenant_id, running.message_id), None)
        running.done.set_result(outcome)
        return outcome

    # -- cancel and snapshots (BotStreamService, control topic) ---------------

    def cancel_local(self, tenant_id: str, conversation_id: str, message_id: str) -> bool:
        running = self._by_message.get((tenant_id, message_id))
        if running is None or running.request.conversation_id != conversation_id:
            return False
        running.cancelled.set()
        return True

    def text_so_far(
        self, tenant_id: str, conversation_id: str, message_id: str
    ) -> tuple[str, int] | None:
        running = self._by_message.get((tenant_id, message_id))
        if running is None or running.request.conversation_id != conversation_id:
            return None
        return running.shown, running.index

    async def publish_snapshot(self, tenant_id: str, conversation_id: str, message_id: str) -> None:
        running = self._by_message.get((tenant_id, message_id))
        if running is None or running.request.conversation_id != conversation_id:
            return
        event = self._event(running, running.index)
        event.snapshot.text = running.shown
        await self._publisher.publish(event)

    async def handle_control(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """A control message every bot pod reads; the pod running the stream acts."""
        control = decode(record, spb.StreamControl)
        if control is None:
            return
        kind = control.WhichOneof("payload")
        if kind == "cancel":
            self.cancel_local(control.tenant_id, control.conversation_id, control.message_id)
        elif kind == "snapshot_request":
            await self.publish_snapshot(
                control.tenant_id, control.conversation_id, control.message_id
            )

    # -- one stream ------------------------------------------------------------

    async def _stored_reply(self, request: StreamRequest) -> pb.Message | None:
        sender = current_caller().user_id
        newest = await self._conversations.messages_before(
            request.conversation_id, _NEWEST, _REPLY_LOOKBACK
        )
        for message in newest:
            if message.sender_id == sender and message.client_msg_id == request.client_msg_id:
                return message
        return None

    def _event(self, running: _Running, index: int) -> spb.StreamEvent:
        return spb.StreamEvent(
            event_id=new_id(),
            tenant_id=running.request.tenant_id,
            conversation_id=running.request.conversation_id,
            message_id=running.message_id,
            sender_id=running.sender_id,
            sender_name=running.sender_name,
            index=index,
        )

    async def _run(self, running: _Running) -> StreamOutcome:
        started = self._event(running, 0)
        started.started.SetInParent()
        await self._publisher.publish(started)
        usage: list[int] = [0, 0]
        pieces: list[str] = []
        state: pb.StreamState.ValueType = pb.STREAM_STATE_COMPLETE
        refused = False
        try:
            chunks = await self._open(running)
            await self._pump(running, chunks, pieces, usage)
        except _Stop as stop:
            state, refused = stop.state, stop.refused
        text = running.shown
        if state == pb.STREAM_STATE_FAILED:
            text = (text + FAILED_MARKER) if text.strip() else NO_TEXT_FAILED
        elif state == pb.STREAM_STATE_STOPPED:
            text = (text + STOPPED_MARKER) if text.strip() else NO_TEXT_STOPPED
        elif not text.strip():
            text, state = NO_TEXT_FAILED, pb.STREAM_STATE_FAILED
        message = await self._commit(running, text, state)
        ended = self._event(running, running.index + 1)
        ended.ended.state = state
        ended.ended.message.CopyFrom(message)
        await self._publisher.publish(ended)
        STREAMS.labels(pb.StreamState.Name(state)).inc()
        tokens_out = usage[1] or len(pieces)
        return StreamOutcome(message, state, usage[0], tokens_out, refused)

    async def _open(self, running: _Running) -> _Chunks:
        """The model's stream, read up to its first token; retried until then."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def attempt() -> _Chunks:
            chunks = await self._create(running.request)
            try:
                async with asyncio.timeout(settings.first_token_timeout_seconds):
                    await chunks.first_token()
            except BaseException:
                await chunks.close()
                raise
            return chunks

        async def retrying() -> _Chunks:
            async for tried in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                wait=_Wait(settings),
                stop=stop_after_attempt(settings.attempts),
                reraise=True,
            ):
                with tried:
                    return await attempt()
            raise AssertionError("tenacity ends with a result or an error")

        opening = asyncio.ensure_future(retrying())
        cancelled = asyncio.ensure_future(running.cancelled.wait())
        try:
            await asyncio.wait({opening, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await opening
            raise _Stop(pb.STREAM_STATE_STOPPED)
        try:
            chunks = opening.result()
        except Exception as exc:
            ATTEMPTS.labels("failed").inc()
            log.warning(
                "model stream did not start",
                extra={"conversation_id": running.request.conversation_id, "error": repr(exc)},
            )
            raise _Stop(pb.STREAM_STATE_FAILED) from exc
        ATTEMPTS.labels("opened").inc()
        FIRST_TOKEN_SECONDS.observe(loop.time() - began)
        return chunks

    async def _create(self, request: StreamRequest) -> _Chunks:
        params: dict[str, Any] = {}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_completion_tokens"] = request.max_tokens
        client = self._clients.client(request.base_url)
        stream = await client.chat.completions.create(
            model=request.model or self._settings.model,
            messages=[to_openai(t) for t in request.turns],
            stream=True,
            stream_options={"include_usage": True},
            **params,
        )
        return _Chunks(stream)

    async def _pump(
        self, running: _Running, chunks: _Chunks, pieces: list[str], usage: list[int]
    ) -> None:
        """Reads the model's chunks into coalesced deltas until the stream ends,
        is cancelled, goes idle, or the check refuses it."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        pending: list[str] = []
        flush_at = 0.0
        idle_at = loop.time() + settings.idle_timeout_seconds
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        reader = asyncio.create_task(chunks.feed(queue))
        watcher = asyncio.create_task(_forward_cancel(running.cancelled, queue))
        try:
            while True:
                if running.cancelled.is_set():
                    raise _Stop(pb.STREAM_STATE_STOPPED)
                now = loop.time()
                deadline = min(idle_at, flush_at) if pending else idle_at
                try:
                    async with asyncio.timeout(max(0.0, deadline - now)):
                        kind, value = await queue.get()
                except TimeoutError:
                    if pending and loop.time() >= flush_at:
                        await self._flush(running, pending)
                        continue
                    raise _Stop(pb.STREAM_STATE_FAILED) from None
                if kind == "piece":
                    TOKENS.inc()
                    pieces.append(value)
                    if not pending:
                        flush_at = loop.time() + settings.coalesce_seconds
                    pending.append(value)
                    idle_at = loop.time() + settings.idle_timeout_seconds
                    if len(pending) >= settings.coalesce_tokens:
                        await self._flush(running, pending)
                elif kind == "usage":
                    usage[0], usage[1] = value
                elif kind == "end":
                    if pending:
                        await self._flush(running, pending)
                    return
                elif kind == "cancel":
                    # What the reader had is not shown: the user asked to stop.
                    raise _Stop(pb.STREAM_STATE_STOPPED)
                else:
                    log.warning(
                        "model stream failed after its first token",
                        extra={"conversation_id": running.request.conversation_id, "error": value},
                    )
                    if pending:
                        await self._flush(running, pending)
                    raise _Stop(pb.STREAM_STATE_FAILED)
        finally:
            watcher.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await chunks.close()

    async def _flush(self, running: _Running, pending: list[str]) -> None:
        delta = "".join(pending)
        pending.clear()
        room = MAX_TEXT_CHARS - len(running.shown) - len(FAILED_MARKER)
        if room <= 0:
            raise _Stop(pb.STREAM_STATE_COMPLETE)
        delta = delta[:room]
        check = running.request.check
        if check is not None and not check(running.shown + delta):
            raise _Stop(pb.STREAM_STATE_STOPPED, refused=True)
        running.index += 1
        running.shown += delta
        event = self._event(running, running.index)
        event.delta.text = delta
        await self._publisher.publish(event)
        DELTAS.inc()

    async def _commit(
        self, running: _Running, text: str, state: pb.StreamState.ValueType
    ) -> pb.Message:
        request = running.request
        async for tried in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, ConfabError) and e.http_status >= 500),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            stop=stop_after_attempt(5),
            reraise=True,
        ):
            with tried:
                return await self._conversations.send_streamed(
                    request.conversation_id,
                    request.client_msg_id,
                    text,
                    message_id=running.message_id,
                    stream_state=state,
                )
        raise AssertionError("tenacity ends with a result or an error")


async def _forward_cancel(cancelled: asyncio.Event, queue: asyncio.Queue[tuple[str, Any]]) -> None:
    await cancelled.wait()
    queue.put_nowait(("cancel", None))


class _Chunks:
    """One model stream: the text pieces read so far and the iterator behind them."""

    def __init__(self, stream: openai.AsyncStream[ChatCompletionChunk]) -> None:
        self._stream = stream
        self._it: AsyncIterator[ChatCompletionChunk] = stream.__aiter__()
        self._early: list[tuple[str, Any]] = []
        self._ended = False

    def _parse(self, chunk: ChatCompletionChunk) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if chunk.usage is not None:
            out.append(("usage", (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)))
        for choice in chunk.choices:
            if choice.delta.content:
                out.append(("piece", choice.delta.content))
            if choice.finish_reason is not None:
                out.append(("finish", choice.finish_reason))
        return out

    async def first_token(self) -> None:
        """Reads until the first text piece (or a finished, empty reply). A stream
        that ends before either is an error, retried like a failed call."""
        async for chunk in self._it:
            parsed = self._parse(chunk)
            self._early += parsed
            if any(kind in ("piece", "finish") for kind, _ in parsed):
                return
        raise httpx2.RemoteProtocolError("model stream ended before its first token")

    async def feed(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        finished = False
        for kind, value in self._early:
            finished = finished or kind == "finish"
            if kind != "finish":
                queue.put_nowait((kind, value))
        try:
            async for chunk in self._it:
                for kind, value in self._parse(chunk):
                    finished = finished or kind == "finish"
                    if kind != "finish":
                        queue.put_nowait((kind, value))
        except (openai.APIError, httpx2.HTTPError) as exc:
            queue.put_nowait(("error", repr(exc)))
            return
        # A stream without a finish_reason was cut, even if its body ended cleanly.
        queue.put_nowait(("end", None) if finished else ("error", "no finish_reason"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.close()
