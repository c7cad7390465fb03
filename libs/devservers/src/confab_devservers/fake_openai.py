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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: every response ends with the connection, so a streamed body
    # needs neither Content-Length nor chunked encoding.
    protocol_version = "HTTP/1.0"

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
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


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
        self._chunk_delay = 0.0
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

    def fail_next(self, n: int = 1, status: int = 500, message: str = "injected failure") -> None:
        """Answer the next ``n`` requests (any endpoint) with an OpenAI-style error ``status``.

        Note the SDK retries 408/409/429/5xx itself (``max_retries``, default 2),
        and every attempt consumes one failure.
        """
        with self._lock:
            self._failure = _Failure(remaining=n, status=status, message=message) if n > 0 else None

    def set_chunk_delay(self, seconds: float) -> None:
        """Pause between streamed chunks, to test slow streams and cancellation."""
        with self._lock:
            self._chunk_delay = max(0.0, seconds)

    def reset(self) -> None:
        """Forget recorded requests, pending failures, custom reply and chunk delay."""
        with self._lock:
            self._recorded.clear()
            self._failure = None
            self._reply = echo_reply
            self._chunk_delay = 0.0

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
            return _Failure(remaining=0, status=failure.status, message=failure.message)

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
            # A tiny retry-after keeps the SDK's automatic retries from adding
            # its default exponential backoff (~0.5 s+) to every test.
            req.send_json(
                failure.status,
                _error_payload(failure.message, failure.status),
                headers={"retry-after-ms": "1"},
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
        with self._lock:
            reply_fn, delay = self._reply, self._chunk_delay
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

        try:
            req.send_response(200)
            req.send_header("Content-Type", "text/event-stream; charset=utf-8")
            req.send_header("Cache-Control", "no-cache")
            req.end_headers()
            for i, event in enumerate(events):
                if delay and 0 < i < len(events) - 1:
                    time.sleep(delay)
                req.wfile.write(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")
                req.wfile.flush()
            req.wfile.write(b"data: [DONE]\n\n")
            req.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up mid-stream (e.g. a cancelled generation).
            log.debug("fake OpenAI: client disconnected during stream")


def _error_payload(message: str, status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        phrase = "error"
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": phrase}}
