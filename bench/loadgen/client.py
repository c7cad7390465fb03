"""A lean Socket.IO v5 / Engine.IO v4 client over one aiohttp websocket.

python-socketio's AsyncClient costs a few tasks, a queue and a reconnect manager per
socket; thousands of them make the load generator, not the server, the bottleneck.
This client speaks only what the benchmark needs, on the websocket transport:

- ``0{...}`` open, ``2``/``3`` ping/pong (the server pings, we answer),
- ``40{auth}`` namespace connect, ``40{sid}`` accepted, ``44{...}`` refused,
- ``42[event, data]`` events, ``42<id>[event, data]`` calls, ``43<id>[data]`` acks.

Binary attachments, namespaces other than ``/`` and long-polling are not spoken.

``IdleSocket`` is leaner still, for sockets that connect and then only stay: an
``asyncio.Protocol`` straight on the transport (no aiohttp, no task), answering
websocket and Engine.IO pings, a few KiB each, so tens of thousands fit in a process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

EventHandler = Callable[[str, Any], None]


class SocketRefused(Exception):
    pass


class RawSocket:
    """One Socket.IO connection; ``on_event`` is called synchronously for each event."""

    def __init__(self, session: aiohttp.ClientSession, url: str, on_event: EventHandler) -> None:
        base = url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
        self._url = f"{base}/socket.io/?EIO=4&transport=websocket"
        self._session = session
        self._on_event = on_event
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_callbacks: dict[int, Callable[[Any], None]] = {}
        self._next_id = 0
        self.connected = False
        self.closed = asyncio.Event()
        self.error: str | None = None

    async def connect(self, auth: dict[str, Any] | None = None, wait_s: float = 30) -> None:
        self._ws = await self._session.ws_connect(
            self._url,
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
            # uvicorn pings at the websocket level and closes (1011) a socket that
            # leaves them unanswered for ~40 s; Engine.IO's own pings are answered below.
            autoping=True,
            max_msg_size=0,
        )
        opened = await asyncio.wait_for(self._ws.receive(), wait_s)
        if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
            raise SocketRefused(f"no engine.io open packet: {opened!r}")
        await self._ws.send_str("40" + json.dumps(auth or {}))
        while True:
            msg = await asyncio.wait_for(self._ws.receive(), wait_s)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise SocketRefused(f"closed during connect: {msg!r}")
            if msg.data == "2":
                await self._ws.send_str("3")
                continue
            if msg.data.startswith("40"):
                break
            if msg.data.startswith("44"):
                raise SocketRefused(msg.data[2:])
        self.connected = True
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data: str = msg.data
                kind = data[:2]
                if kind == "42":
                    body = data[2:]
                    if body[:1] != "[":  # a server-side call with an ack id: not used
                        body = body[body.index("[") :]
                    event, *args = json.loads(body)
                    self._on_event(event, args[0] if args else None)
                elif kind == "43":
                    body = data[2:]
                    cut = body.index("[")
                    ack_id = int(body[:cut])
                    args = json.loads(body[cut:])
                    value = args[0] if args else None
                    fut = self._acks.pop(ack_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(value)
                    cb = self._ack_callbacks.pop(ack_id, None)
                    if cb is not None:
                        cb(value)
                elif data == "2":
                    await ws.send_str("3")
                elif kind == "41":
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug here must not pass for a server's close
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.error is None and ws.close_code is not None:
                self.error = f"closed by peer, code {ws.close_code}"
            self.connected = False
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("socket closed"))
            self._acks.clear()
            self.closed.set()

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def emit(self, event: str, data: Any) -> None:
        assert self._ws is not None
        await self._ws.send_str("42" + json.dumps([event, data], separators=(",", ":")))

    async def call(self, event: str, data: Any, wait_s: float = 30) -> Any:
        assert self._ws is not None
        ack_id = self._id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        await self._ws.send_str(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))
        try:
            return await asyncio.wait_for(fut, wait_s)
        finally:
            self._acks.pop(ack_id, None)

    async def send_with_callback(
        self, event: str, data: Any, callback: Callable[[Any], None]
    ) -> None:
        """Sends without waiting for the ack; ``callback`` gets it when it comes."""
        assert self._ws is not None
        ack_id = self._id()
        self._ack_callbacks[ack_id] = callback
        await self._ws.send_str(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_str("41")
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        self.connected = False


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x8, 0x9, 0xA
# Handshake states of an IdleSocket.
_UPGRADING, _OPENING, _JOINING, _OPEN, _CLOSED = range(5)


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = random.getrandbits(32).to_bytes(4, "big")
    if not n:
        return head + mask
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


class IdleSocket(asyncio.Protocol):
    """One Socket.IO connection that connects, then only answers pings.

    The same handshake as ``RawSocket`` (same request headers as aiohttp's, so the
    server sees the same sockets): HTTP upgrade, ``0{...}`` open, ``40{auth}`` and its
    ``40``/``44`` answer. Then websocket pings get pongs and Engine.IO ``2`` gets
    ``3``; every other message is only counted. No task and no buffer while idle.
    """

    __slots__ = ("_auth", "_buf", "_frag", "_key", "_ready", "_state", "_transport", "error")
    # ``events``: messages other than pings and the handshake (one counter for all).
    events = 0

    def __init__(self, auth: dict[str, Any], ready: asyncio.Future[None]) -> None:
        self._auth = auth
        self._ready: asyncio.Future[None] | None = ready
        self._state = _UPGRADING
        self._buf = b""
        self._frag: bytes | None = None
        self._key = b""
        self._transport: asyncio.Transport | None = None
        self.error: str | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        auth: dict[str, Any],
        source: str | None = None,
        wait_s: float = 30,
    ) -> IdleSocket:
        """Connects from ``source`` (a local address) and waits for the namespace."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        sock = cls(auth, ready)
        transport, _ = await asyncio.wait_for(
            loop.create_connection(
                lambda: sock, host, port, local_addr=(source, 0) if source else None
            ),
            wait_s,
        )
        key = base64.b64encode(os.urandom(16))
        sock._key = key
        transport.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            b"Host: %s:%d\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: %s\r\n"
            b"Accept: */*\r\n"
            b"Accept-Encoding: gzip, deflate\r\n"
            b"User-Agent: Python/3.11 aiohttp/3.14.5\r\n\r\n" % (host.encode(), port, key)
        )
        try:
            await asyncio.wait_for(ready, wait_s)
        except BaseException:
            sock.abort()
            raise
        sock._ready = None
        return sock

    @property
    def connected(self) -> bool:
        return self._state == _OPEN

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state != _CLOSED and self.error is None:
            self.error = f"connection lost: {exc}" if exc else "closed by peer"
        self._state = _CLOSED
        self._transport = None
        self._fail(ConnectionError(self.error or "closed"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self._state == _UPGRADING:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            if not self._upgraded(buf[:end]):
                return
            buf = buf[end + 4 :]
        while buf and self._state != _CLOSED:
            used = self._frame(buf)
            if not used:
                break
            buf = buf[used:]
        self._buf = buf if self._state != _CLOSED else b""

    # --- internals ----------------------------------------------------------------

    def _upgraded(self, head: bytes) -> bool:
        status, _, headers = head.partition(b"\r\n")
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
        ok = status.startswith(b"HTTP/1.1 101") and any(
            line.partition(b":")[2].strip() == accept
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-accept:")
        )
        if not ok:
            self._refuse(SocketRefused(f"websocket upgrade refused: {status!r}"))
            return False
        self._state = _OPENING
        return True

    def _frame(self, buf: bytes) -> int:
        """Handles the first frame of ``buf``; returns its length, 0 if incomplete."""
        if len(buf) < 2:
            return 0
        b0, b1 = buf[0], buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return 0
            n, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return 0
            n, at = struct.unpack_from("!Q", buf, 2)[0], 10
        mask = b""
        if b1 & 0x80:  # servers do not mask, but a masked frame is still readable
            mask, at = buf[at : at + 4], at + 4
        if len(buf) < at + n:
            return 0
        payload = buf[at : at + n]
        if mask:
            key = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
                n, "big"
            )
        opcode, fin = b0 & 0x0F, b0 & 0x80
        if opcode == _OP_PING:
            self._send(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            self._refuse(ConnectionError(f"closed by peer, code {code}"), echo=payload[:2])
        elif opcode in (_OP_TEXT, _OP_CONT):
            if opcode == _OP_TEXT and fin:
                self._text(payload)
            elif opcode == _OP_TEXT:
                self._frag = payload
            elif self._frag is not None:
                self._frag += payload
                if fin:
                    whole, self._frag = self._frag, None
                    self._text(whole)
        return at + n

    def _text(self, payload: bytes) -> None:
        if payload == b"2":
            self._send(_OP_TEXT, b"3")
        elif self._state == _OPEN:
            if payload[:2] == b"41":
                self._refuse(ConnectionError("disconnected by the server"))
            else:
                IdleSocket.events += 1
        elif self._state == _OPENING and payload[:1] == b"0":
            self._state = _JOINING
            self._send(_OP_TEXT, b"40" + json.dumps(self._auth).encode())
            self._auth = {}
        elif self._state == _JOINING and payload[:2] == b"40":
            self._state = _OPEN
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif self._state == _JOINING and payload[:2] == b"44":
            self._refuse(SocketRefused(payload[2:].decode(errors="replace")))

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_masked_frame(opcode, payload))

    def _fail(self, exc: BaseException) -> None:
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(exc)

    def _refuse(self, exc: BaseException, echo: bytes | None = None) -> None:
        """Ends the socket from our side after ``exc`` (a refusal or the peer's close)."""
        if self.error is None:
            self.error = str(exc)
        self._fail(exc)
        if echo is not None:
            self._send(_OP_CLOSE, echo)
        self._state = _CLOSED
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self._state = _CLOSED
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Engine.IO close and a websocket close frame, then the transport."""
        if self._state == _OPEN:
            self._send(_OP_TEXT, b"41")
        if self._state != _CLOSED:
            self._send(_OP_CLOSE, struct.pack("!H", 1000))
        self._state = _CLOSED
        if self._transport is not None:
            self._transport.close()


class SourcePool:
    """One aiohttp session per 127.0.0.x source address; sockets are spread round robin.

    A TCP client to one server address and port has ~28k ephemeral ports per source
    address, so 50,000 connections need several sources.
    """

    def __init__(self, sources: int = 8) -> None:
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    local_addr=(f"127.0.0.{i + 2}", 0), limit=0, force_close=False
                )
            )
            for i in range(sources)
        ]
        self._next = 0

    def session(self) -> aiohttp.ClientSession:
        s = self._sessions[self._next % len(self._sessions)]
        self._next += 1
        return s

    async def close(self) -> None:
        for s in self._sessions:
            await s.close()
