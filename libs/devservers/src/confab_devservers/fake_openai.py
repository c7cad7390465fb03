"""Deterministic OpenAI-compatible chat-completions server (stdlib, in a thread).

This is the one stand-in of the fleet: no model is reachable from dev boxes or
CI, so the AI features talk to this server through the real ``openai`` SDK.
Response shapes follow the public Chat Completions API closely enough for the
SDK's typed models to parse them (streaming and non-streaming).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from ._ports import HOST, free_port

log = logging.getLogger(__name__)

ReplyFn = Callable[[dict[str, Any]], str]

DEFAULT_MODEL = "confab-fake-1"


def message_text(message: dict[str, Any]) -> str:
    """Text of a chat message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def echo_reply(body: dict[str, Any]) -> str:
    """Default reply: ``"echo: "`` + the text of the last user message."""
    messages = body.get("messages") or []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return "echo: " + message_text(message)
    return "echo: "


def _count_tokens(text: str) -> int:
    # Whitespace words: deterministic and good enough for usage assertions.
    return len(text.split())


def _stream_pieces(text: str) -> list[str]:
    # Word-sized deltas (whitespace kept attached) so that concatenating the
    # deltas reproduces the reply byte for byte.
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    status: int
    received_at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    remaining: int
    status: int
    message: str
    # Seconds the client is told to wait (Retry-After); the tiny default keeps
    # the SDK's automatic retries from adding its own backoff to every test.
    retry_after: float = 0.001


@dataclass
class _Cut:
    remaining: int
    after_chunks: int


@dataclass
class _Slow:
    # None: every request until reset.
    remaining: int | None
    per_token: float
    first_token: float


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class _Invalid(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _validate_chat(body: dict[str, Any]) -> None:
    """Rejects what the real Chat Completions API rejects with a 400, naming the param."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("'messages' must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Invalid(f"messages[{i}] must be an object", f"messages[{i}]")
        if message.get("role") not in _ROLES:
            raise _Invalid(f"invalid value for messages[{i}].role", f"messages[{i}].role")
        content = message.get("content")
        if content is None and message.get("role") != "assistant":
            raise _Invalid(f"messages[{i}].content is required", f"messages[{i}].content")
        if content is not None and not isinstance(content, str | list):
            raise _Invalid(
                f"messages[{i}].content must be a string or an array", f"messages[{i}].content"
            )
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise _Invalid("temperature must be a number between 0 and 2", "temperature")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _Invalid(f"{name} must be an integer of at least 1", name)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _Invalid("stream must be a boolean", "stream")
    if body.get("stream_options") is not None and not stream:
        raise _Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.1 with chunked streams, like the real API: a stream cut short then
    # ends without its last chunk, which the client sees as a broken response,
    # not as a body that merely stopped. Every response still closes its
    # connection, so no test shares one with another.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake-openai: " + format, *args)

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()


class FakeOpenAI:
    """OpenAI-compatible HTTP server on 127.0.0.1 with scripted, recorded behaviour.

    * ``POST /v1/chat/completions`` (plain JSON or ``stream: true`` SSE)
    * ``GET /v1/models``

    The reply is ``reply_fn(request_body)``; by default :func:`echo_reply`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        model: str = DEFAULT_MODEL,
        reply: ReplyFn | None = None,
    ) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.model = model
        self._lock = threading.Lock()
        self._reply: ReplyFn = reply or echo_reply
        self._recorded: list[RecordedRequest] = []
        self._failure: _Failure | None = None
        self._cut: _Cut | None = None
        self._slow: _Slow | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self.port), self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="confab-fake-openai",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        log.info("fake OpenAI listening on %s", self.base_url)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting ------------------------------------------------------------

    def set_reply(self, fn: ReplyFn | None) -> None:
        """Compute replies with ``fn(request_body)``; ``None`` restores the echo reply."""
        with self._lock:
            self._reply = fn or echo_reply

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        message: str = "injected failure",
        *,
        retry_after: float = 0.001,
    ) -> None:
        """Answer the next ``n`` requests (any endpoint) with an OpenAI-style error ``status``
        (429, 500, 503...), telling the client to retry after ``retry_after`` seconds
        (``Retry-After`` and ``retry-after-ms``, as the real API sends them).

        Note the SDK retries 408/409/429/5xx itself (``max_retries``, default 2),
        and every attempt consumes one failure.
        """
        with self._lock:
            self._failure = (
                _Failure(remaining=n, status=status, message=message, retry_after=retry_after)
                if n > 0
                else None
            )

    def cut_next(self, after_chunks: int, n: int = 1) -> None:
        """Close the next ``n`` streamed responses after ``after_chunks`` SSE chunks
        (the role chunk counts), without the final chunk or ``[DONE]``."""
        with self._lock:
            self._cut = _Cut(remaining=n, after_chunks=max(0, after_chunks)) if n > 0 else None

    def set_slow(
        self, *, per_token: float = 0.0, first_token: float = 0.0, n: int | None = None
    ) -> None:
        """Stream slowly: wait ``first_token`` seconds before the first content chunk and
        ``per_token`` between the others, for the next ``n`` streamed requests (None: all)."""
        with self._lock:
            if per_token <= 0 and first_token <= 0:
                self._slow = None
            else:
                self._slow = _Slow(n, max(0.0, per_token), max(0.0, first_token))

    def set_chunk_delay(self, seconds: float) -> None:
        """Pause before every streamed content chunk, to test slow streams and cancellation."""
        self.set_slow(per_token=seconds, first_token=seconds)

    def reset(self) -> None:
        """Forget recorded requests, failure modes and the custom reply."""
        with self._lock:
            self._recorded.clear()
            self._failure = None
            self._cut = None
            self._slow = None
            self._reply = echo_reply

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of every POST received so far (failed ones included), oldest first."""
        with self._lock:
            return [r.body for r in self._recorded if r.body is not None]

    @property
    def request_log(self) -> list[RecordedRequest]:
        """Every request received so far, with method, path, headers and answered status."""
        with self._lock:
            return list(self._recorded)

    # -- request handling -----------------------------------------------------

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None:
                return None
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failure = None
            return _Failure(0, failure.status, failure.message, failure.retry_after)

    def _take_stream_modes(self) -> tuple[_Cut | None, _Slow | None]:
        with self._lock:
            cut, slow = self._cut, self._slow
            if cut is not None:
                cut.remaining -= 1
                if cut.remaining <= 0:
                    self._cut = None
            if slow is not None and slow.remaining is not None:
                slow.remaining -= 1
                if slow.remaining <= 0:
                    self._slow = None
            return cut, slow

    def _record(self, req: _Handler, method: str, body: dict[str, Any] | None, status: int) -> None:
        with self._lock:
            self._recorded.append(
                RecordedRequest(
                    method=method,
                    path=req.path,
                    headers={k.lower(): v for k, v in req.headers.items()},
                    body=body,
                    status=status,
                )
            )

    def _handle(self, req: _Handler, method: str) -> None:
        body: dict[str, Any] | None = None
        if method == "POST":
            length = int(req.headers.get("Content-Length") or 0)
            raw = req.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw or b"{}")
            except ValueError:
                self._record(req, method, None, 400)
                req.send_json(400, _error_payload("request body is not valid JSON", 400))
                return
            body = parsed if isinstance(parsed, dict) else {"_": parsed}

        path = req.path.split("?", 1)[0].rstrip("/")
        failure = self._take_failure()
        if failure is not None:
            self._record(req, method, body, failure.status)
            req.send_json(
                failure.status,
                _error_payload(failure.message, failure.status),
                headers={
                    "retry-after-ms": str(max(1, round(failure.retry_after * 1000))),
                    "retry-after": str(max(0, round(failure.retry_after))),
                },
            )
            return

        if method == "GET" and path == "/v1/models":
            self._record(req, method, body, 200)
            req.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": self.model, "object": "model", "created": 0, "owned_by": "confab"}
                    ],
                },
            )
            return
        if method == "POST" and path == "/v1/chat/completions" and body is not None:
            self._chat_completion(req, body)
            return
        self._record(req, method, body, 404)
        req.send_json(404, _error_payload(f"unknown endpoint {method} {path}", 404))

    def _chat_completion(self, req: _Handler, body: dict[str, Any]) -> None:
        try:
            _validate_chat(body)
        except _Invalid as exc:
            self._record(req, "POST", body, 400)
            req.send_json(400, _error_payload(exc.message, 400, exc.param))
            return
        with self._lock:
            reply_fn = self._reply
        try:
            text = reply_fn(body)
        except Exception as exc:
            log.exception("fake OpenAI reply function failed")
            self._record(req, "POST", body, 500)
            req.send_json(500, _error_payload(f"reply function raised {exc!r}", 500))
            return

        self._record(req, "POST", body, 200)
        model = str(body.get("model") or self.model)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        prompt_tokens = sum(
            _count_tokens(message_text(m))
            for m in body.get("messages") or []
            if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _count_tokens(text),
            "total_tokens": prompt_tokens + _count_tokens(text),
        }

        if not body.get("stream"):
            req.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in _stream_pieces(text) if piece]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**chunk({}, None), "choices": [], "usage": usage})

        cut, slow = self._take_stream_modes()
        req.close_connection = True
        try:
            req.send_response(200)
            req.send_header("Content-Type", "text/event-stream; charset=utf-8")
            req.send_header("Cache-Control", "no-cache")
            req.send_header("Transfer-Encoding", "chunked")
            req.send_header("Connection", "close")
            req.end_headers()
            for i, event in enumerate(events):
                if cut is not None and i >= cut.after_chunks:
                    # No terminating chunk: the client reads an incomplete body.
                    req.wfile.flush()
                    return
                if slow is not None and 0 < i < len(events) - 1:
                    time.sleep(slow.first_token if i == 1 else slow.per_token)
                req.write_chunk(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")
            req.write_chunk(b"data: [DONE]\n\n")
            req.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up mid-stream (e.g. a cancelled generation).
            log.debug("fake OpenAI: client disconnected during stream")


def _error_payload(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        phrase = "error"
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": phrase}}
