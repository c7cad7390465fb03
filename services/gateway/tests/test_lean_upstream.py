"""What ``gateway/realtime/lean.py`` copies from, overrides or relies on upstream.

lean.py reaches into private parts of python-engineio, python-socketio and uvicorn,
which pyproject.toml pins exactly. Each upstream function or class it depends on is
recorded here with the sha256 of its source: after an upgrade, a changed hash names
what lean.py does with it and what to re-check there, before recording the new hash.
docs/fanout.md ("The gateway's lean sockets") says which upstream change would let
lean.py drop each piece.
"""

from __future__ import annotations

import hashlib
import inspect
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import engineio.async_server
import engineio.async_socket
import engineio.base_server
import engineio.base_socket
import pytest
import socketio.async_server
from engineio.async_drivers import asgi as engineio_asgi
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@dataclass(frozen=True)
class Upstream:
    name: str
    get: Callable[[], Any]
    sha256: str
    # What lean.py does with it, and so what to re-check when it changes.
    recheck: str


UPSTREAM = [
    Upstream(
        "engineio.async_socket.AsyncSocket.poll",
        lambda: engineio.async_socket.AsyncSocket.poll,
        "826f58a9f3606db208e5d1266f075ad655b6eeda47b0a5616748624899ca5954",
        "LeanAsyncSocket.poll is a copy (asyncio.timeout instead of asyncio.wait_for): "
        "port the change into it.",
    ),
    Upstream(
        "engineio.async_socket.AsyncSocket._websocket_handler",
        lambda: engineio.async_socket.AsyncSocket._websocket_handler,
        "27f120df4d717a24478b7b0f7389ce19eea8a881dd07e2c81fb1cf2493e006a5",
        "LeanAsyncSocket._websocket_handler is a copy (the reader awaits in place, no "
        "task per read): port the change into it.",
    ),
    Upstream(
        "engineio.async_socket.AsyncSocket.schedule_ping",
        lambda: engineio.async_socket.AsyncSocket.schedule_ping,
        "fe316639159cd70d34cdb911a055fc1a0056ff15615b8460a1ab6593c95e9372",
        "LeanAsyncSocket.schedule_ping replaces it with a loop timer: keep the same "
        "condition for scheduling a ping.",
    ),
    Upstream(
        "engineio.async_socket.AsyncSocket._send_ping",
        lambda: engineio.async_socket.AsyncSocket._send_ping,
        "67db82a704ea49d0ad34e967728cec06020d036431d67c1612162a907526cb43",
        "LeanAsyncSocket._ping does its work from a timer: keep the same checks and packet.",
    ),
    Upstream(
        "engineio.async_socket.AsyncSocket.send",
        lambda: engineio.async_socket.AsyncSocket.send,
        "0437276ccba7ab091471e29f4bc6a0f178da7b16a590c707d6c69a97609e6d14",
        "LeanAsyncSocket._ping inlines it for the PING packet (a timer callback cannot "
        "await): keep them alike.",
    ),
    Upstream(
        "engineio.base_socket.BaseSocket.__init__",
        lambda: engineio.base_socket.BaseSocket.__init__,
        "8532b631a4dc815f51afe4d3a7f782ddea8dbc32e26e29c2a3476ef1291ae6b9",
        "_LeanSockets switches a new socket's class to LeanAsyncSocket: it must still "
        "get its queue from server.create_queue (LeanQueue) and need no other state.",
    ),
    Upstream(
        "engineio.async_server.AsyncServer._handle_connect",
        lambda: engineio.async_server.AsyncServer._handle_connect,
        "5bd7edc1d1ae115ae973b4a39b435d3b243a3c9b1e3218f21bbeb7ef6aa37e93",
        "_LeanSockets relies on it storing the new AsyncSocket in self.sockets before "
        "sending, pinging or reading with it.",
    ),
    Upstream(
        "engineio.base_server.BaseServer.__init__",
        lambda: engineio.base_server.BaseServer.__init__,
        "a06b17502fbd9646e3f29ec85f1e53dbbcdc9ceecce6c2969eb83e4ef1726ee2",
        "LeanEngineIOServer.__init__ replaces self.sockets and swaps translate_request "
        "in self._async: both must still be set here.",
    ),
    Upstream(
        "engineio.async_server.AsyncServer.handle_request",
        lambda: engineio.async_server.AsyncServer.handle_request,
        "1a8c878e35166cfe868d2cef40cdeb33af620541363a705c4dd2eea76c0f27af",
        "It must still translate each request with self._async['translate_request'], "
        "which lean.translate_request wraps.",
    ),
    Upstream(
        "engineio.async_drivers.asgi.translate_request",
        lambda: engineio_asgi.translate_request,
        "39e74733f1fe46aa20e9ba2b651834a108bced1acee44c5a76927173dd7b09ff",
        "lean.translate_request wraps it and replaces environ['wsgi.input'] with "
        "_AsgiBody, which reads the body the same way: port a change of its reader.",
    ),
    Upstream(
        "socketio.async_server.AsyncServer._engineio_server_class",
        lambda: socketio.async_server.AsyncServer._engineio_server_class,
        "199c42bf149247e0325bd5fb6c8bcc6c3703c5576704530fa92b383e0f777dd4",
        "LeanSocketServer overrides it to run on LeanEngineIOServer.",
    ),
    Upstream(
        "uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol",
        lambda: WebSocketsSansIOProtocol,
        "0bbcec98938432f71b93ca20eea63487298f4650159242db8526a6f664902997",
        "LeanWebSocketProtocol subclasses it: __slots__ must list every attribute "
        "(test_lean.py checks), queue and writable must only use what LeanQueue and "
        "LeanEvent offer, and send() must still answer the upgrade before it drops "
        "request, response and the scope's headers.",
    ),
]


def _sha256(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


@pytest.mark.parametrize("upstream", UPSTREAM, ids=lambda u: u.name)
def test_upstream_source_is_the_one_lean_py_was_written_against(upstream: Upstream) -> None:
    got = _sha256(upstream.get())
    assert got == upstream.sha256, (
        f"{upstream.name} changed upstream. {upstream.recheck} "
        f"Then record its new sha256 {got} in tests/test_lean_upstream.py."
    )


def test_installed_versions_are_the_pinned_ones() -> None:
    """The hashes above were taken from these versions: an upgrade that keeps every
    hash still changes the pin on purpose, not by a resolver's choice."""
    pinned = {
        name: version
        for name, _, version in (
            spec.partition("==")
            for spec in tomllib.loads(_PYPROJECT.read_text())["project"]["dependencies"]
        )
        if version
    }
    assert set(pinned) >= {
        "uvicorn[standard]",
        "python-socketio",
        "python-engineio",
        "websockets",
    }
    for name, version in pinned.items():
        assert metadata.version(name.partition("[")[0]) == version, name
