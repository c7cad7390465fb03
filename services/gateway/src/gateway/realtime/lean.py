"""Leaner per-connection objects for idle Socket.IO connections.

An idle websocket costs what uvicorn, Engine.IO and Socket.IO keep for it while it
waits, and most of that is general-purpose machinery sized for busy sockets: an
``asyncio.Queue`` is four deques (~3 KiB) before it holds anything, an
``asyncio.Event`` one more, uvicorn's protocol has too many attributes for a shared-key
instance dict, the handshake's headers stay around for the life of the socket, Engine.IO
defines a new class for every request's body reader and keeps a task asleep per socket
for its next ping and another per read. Measured by the bench's ``idle`` scenario
(1,000 sockets, RSS): 44 KiB per socket stock, ~22.5 KiB with this module.

- ``LeanQueue``, ``LeanEvent``: what uvicorn and Engine.IO use of ``asyncio.Queue`` and
  ``asyncio.Event``, with nothing allocated until something waits or is queued; a
  waiting ``get()`` is one future, not a task, so ``asyncio.wait_for`` needs none.
  Engine.IO takes its queue from ``create_queue``, a public hook.
- ``LeanWebSocketProtocol``: uvicorn's websockets (sans-I/O) protocol, passed as
  uvicorn's public ``ws`` setting, with those and its attributes in slots, which lets
  go of the handshake (request, response, the scope's raw headers) once it is answered.
- ``LeanAsyncSocket``: Engine.IO's socket with its ping on a timer and its websocket
  reader awaiting in place under ``asyncio.timeout``.
- ``LeanEngineIOServer`` / ``LeanSocketServer``: Engine.IO with those sockets and
  queues, and a request translation whose body reader is one class for all requests.

Packets, their order, Engine.IO's ping interval and timeouts are unchanged on the wire.

What is private upstream, and pinned for that (pyproject.toml), with the source hash
of each piece in tests/test_lean_upstream.py: copies of ``AsyncSocket.poll`` and
``AsyncSocket._websocket_handler`` (python-engineio 4.15.1), overrides of
``AsyncSocket.schedule_ping`` and ``socketio.AsyncServer._engineio_server_class``,
and use of ``AsyncServer._async['translate_request']`` (wrapped, not copied),
``AsyncServer.sockets`` (no socket-class hook) and uvicorn's ``queue``, ``writable``,
``request`` and ``response``. The upstream change that would remove each is in
docs/fanout.md ("The gateway's lean sockets"): for Engine.IO, a ``socket_class``
attribute, a module-level ASGI body reader, and a socket that pings by timer and reads
its websocket without a task per read.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import Any

import engineio
import engineio.async_socket
import engineio.exceptions
import engineio.packet
import socketio
from engineio.async_drivers import asgi as engineio_asgi
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState


class LeanQueue:
    """An unbounded FIFO with ``asyncio.Queue``'s methods, allocated on first use.

    ``get()`` returns a future (awaitable, and cancellable by ``asyncio.wait_for``
    without a task around it). A put hands the item straight to a waiting getter, so
    a socket whose writer is waiting never needs a buffer at all.
    """

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("LeanQueue is unbounded")
        self._items: deque[Any] | None = None
        # Futures of waiting get() calls, oldest first (one at most, in practice).
        self._getters: list[asyncio.Future[Any]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        self._unfinished += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(item)
                return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def get(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._items:
            fut.set_result(self.get_nowait())
            return fut
        if self._getters is None:
            self._getters = []
        self._getters.append(fut)
        return fut

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for fut in joiners:
                if not fut.done():
                    fut.set_result(None)

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(fut)
        await fut


class LeanEvent:
    """``asyncio.Event`` whose waiter list exists only while someone waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            return await fut
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, with lean queue and event, which lets go
    of the handshake's request, response and raw headers once the upgrade is answered.

    Its ~40 attributes live in slots: as an instance dict they would be a ~1.6 KiB
    table per connection (past the 30 keys a class's instances may share). An
    attribute a newer uvicorn adds still works, in the dict (tests/test_lean.py tells).
    """

    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "curr_msg_data_type",
        "default_headers",
        "disconnected",
        "frames",
        "handshake_complete",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "request",
        "response",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = LeanQueue()  # type: ignore[assignment]
        writable = LeanEvent()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only to answer the upgrade (handle_connect and the accept above).
            # The parser generator of websockets keeps the request for the life of
            # the connection, so its headers are emptied, not just let go.
            request = getattr(self, "request", None)
            if request is not None:
                request.headers.clear()
                del self.request
            if hasattr(self, "response"):
                del self.response
            # The scope's raw headers (~1.2 KiB) too: the app has read them by now,
            # and Engine.IO keeps its own copy in the environ (HTTP_*).
            self.scope["headers"] = ()


class _AsgiBody:
    """``environ['wsgi.input']``: Engine.IO's ASGI body reader, as one class."""

    __slots__ = ("event", "payload", "receive")

    def __init__(self, event: dict[str, Any], receive: Any) -> None:
        self.event = event
        self.payload: bytes | None = None
        self.receive = receive

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self.event["type"] == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self.receive()
                if self.event["type"] == "http.request" and (
                    length is None or len(self.payload) < length
                ):
                    self.payload += self.event.get("body") or b""
        payload = self.payload or b""
        if length is None:
            r, self.payload = payload, b""
        else:
            r, self.payload = payload[:length], payload[length:]
        return r


async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    """Engine.IO's ASGI ``translate_request``, keeping less of each request.

    Upstream defines a new class for every request's ``wsgi.input`` (~3.8 KiB with its
    methods, measured), and Socket.IO keeps the connect request's environ for the life
    of the socket: the reader becomes an ``_AsgiBody`` (one class for all requests),
    and the header keys are interned so that every socket's environ shares them.
    """
    environ: dict[str, Any] = await engineio_asgi.translate_request(scope, receive, send)
    body = environ.get("wsgi.input")
    if body is None:
        return environ
    lean: dict[str, Any] = {sys.intern(key): value for key, value in environ.items()}
    lean["wsgi.input"] = _AsgiBody(body.event, receive)
    return lean


class LeanAsyncSocket(engineio.async_socket.AsyncSocket):  # type: ignore[misc]
    """Engine.IO's socket, waiting with fewer objects.

    - The next ping is a timer, not a task asleep for ``ping_interval``.
    - A websocket's reader awaits in the handler itself under ``asyncio.timeout``
      instead of in a task of its own under ``asyncio.wait_for``; the writer waits on
      the queue's future the same way.

    Timeouts, packets and their order are those of ``AsyncSocket``.
    """

    # Set by AsyncSocket (typed here: engineio has no annotations).
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool
    _ping_timer: asyncio.TimerHandle | None = None

    async def poll(self) -> list[Any]:
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                packets = [await self.queue.get()]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise engineio.exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while True:
            try:
                pkt = self.queue.get_nowait()
                self.queue.task_done()
                if pkt is None:
                    self.queue.put_nowait(None)
                    break
                packets.append(pkt)
            except asyncio.QueueEmpty:
                break
        return packets

    def schedule_ping(self) -> None:
        # Only schedule a new ping if the previous ping wait cycle completed.
        if self.last_ping:
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        # AsyncSocket.send, which cannot time out right after last_ping was set.
        self.queue.put_nowait(engineio.packet.Packet(engineio.packet.PING))
        self.server.logger.info("%s: Sending packet PING data None", self.sid)

    async def _websocket_handler(self, ws: Any) -> None:
        """AsyncSocket._websocket_handler, with the reader awaiting in place."""
        server = self.server

        async def websocket_wait() -> Any:
            data = await ws.wait()
            if data and len(data) > server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        if self.connected:
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
            try:
                pkt = await websocket_wait()
            except OSError:
                return
            decoded_pkt = engineio.packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != engineio.packet.PING or decoded_pkt.data != "probe":
                server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(engineio.packet.Packet(engineio.packet.PONG, data="probe").encode())
            await self.queue.put(engineio.packet.Packet(engineio.packet.NOOP))  # end poll
            try:
                pkt = await websocket_wait()
            except OSError:
                self.upgrading = False
                return
            decoded_pkt = engineio.packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != engineio.packet.UPGRADE:
                self.upgraded = False
                server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                    self.sid,
                    pkt,
                )
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        async def writer() -> None:
            while True:
                try:
                    packets = await self.poll()
                except engineio.exceptions.QueueEmpty:
                    break
                if not packets:
                    # empty packet list returned -> connection closed
                    break
                try:
                    for pkt in packets:
                        await ws.send(pkt.encode())
                except Exception:
                    break
            await ws.close()

        writer_task = asyncio.ensure_future(writer())
        server.logger.info("%s: Upgrade to websocket successful", self.sid)

        timeout = server.ping_interval + server.ping_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    p = await websocket_wait()
            except (Exception, asyncio.CancelledError):
                break
            if p is None:
                # connection closed by client
                break
            pkt = engineio.packet.Packet(encoded_packet=p)
            try:
                await self.receive(pkt)
            except engineio.exceptions.UnknownPacketError:
                pass
            except engineio.exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                # if we get an unexpected exception we log the error and exit
                # the connection properly
                server.logger.exception("Unknown receive error")

        await self.queue.put(None)  # unlock the writer task so it can exit
        await writer_task
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


class _LeanSockets(dict[str, Any]):
    """``AsyncServer.sockets``, which makes each socket stored in it a ``LeanAsyncSocket``.

    ``AsyncServer._handle_connect`` makes an ``AsyncSocket`` and stores it here before
    it sends, pings or reads anything, and engineio has no hook for the socket class:
    switching the class of the new socket here (a subclass with no state of its own)
    saves copying all of ``_handle_connect`` to change one name in it.
    """

    def __setitem__(self, sid: str, socket: Any) -> None:
        if type(socket) is engineio.async_socket.AsyncSocket:
            socket.__class__ = LeanAsyncSocket
        super().__setitem__(sid, socket)


class LeanEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO with ``LeanAsyncSocket``, ``LeanQueue`` and the shared body reader."""

    # Set by engineio.AsyncServer (typed here: engineio has no annotations).
    _async: dict[str, Any]
    sockets: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sockets = _LeanSockets()
        if self._async.get("translate_request") is engineio_asgi.translate_request:
            self._async = {**self._async, "translate_request": translate_request}

    def create_queue(self, *args: Any, **kwargs: Any) -> LeanQueue:
        return LeanQueue(*args, **kwargs)


class LeanSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """``socketio.AsyncServer`` on ``LeanEngineIOServer``."""

    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer
