"""The official JavaScript client (socket.io-client, pinned in tests/e2e/node) against
the gateway: connect with a token, join, send, receive, reconnect, sync.

The client is unchanged and used only through its public API; tests/e2e/node/client.mjs
drives it over JSON lines on stdin/stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from confab_devfleet import Fleet

from .conftest import TENANT_A
from .resume import ResumingClient

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "client.mjs"


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def node_ready() -> Path:
    """``npm ci`` of tests/e2e/node when its node_modules is missing (``make test``
    installs it up front)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the official-client test")
    if not (NODE_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True,
            timeout=300,
        )
    return Path(node)


class NodeClient:
    """One ``node client.mjs`` process: commands in, every line it prints kept in order."""

    def __init__(self, node: Path) -> None:
        self.node = node
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._ids = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            str(self.node),
            str(SCRIPT),
            cwd=str(NODE_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            self.lines.append(json.loads(raw))
            self._changed.set()
        self._changed.set()

    async def command(self, cmd: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """Sends a command and returns its answer: an ack (emits) or done."""
        assert self._proc is not None and self._proc.stdin is not None
        self._ids += 1
        ident = self._ids
        self._proc.stdin.write((json.dumps({"id": ident, "cmd": cmd, **fields}) + "\n").encode())
        await self._proc.stdin.drain()
        answer = await self.wait_for(lambda x: x.get("id") == ident, timeout=timeout)
        assert answer["type"] in ("ack", "done"), answer
        return answer

    async def emit(self, event: str, data: Any) -> dict[str, Any]:
        ack = (await self.command("emit", event=event, data=data))["data"]
        return dict(ack)

    async def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], *, timeout: float = 10, start: int = 0
    ) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            seen = start
            while True:
                for line in self.lines[seen:]:
                    if pred(line):
                        return line
                seen = max(seen, len(self.lines))
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"node exited: {await self.stderr()}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no such line within {timeout}s; got {self.lines}") from None

    def events(self, name: str, start: int = 0) -> list[Any]:
        return [
            x["data"] for x in self.lines[start:] if x["type"] == "event" and x["event"] == name
        ]

    async def stderr(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self._proc.stderr.read(), 2)).decode()
        return ""

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.write(b'{"cmd": "exit"}\n')
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await self._reader


@pytest_asyncio.fixture(loop_scope="session")
async def node_clients(node_ready: Path) -> AsyncIterator[Callable[[], Any]]:
    made: list[NodeClient] = []

    async def make() -> NodeClient:
        client = NodeClient(node_ready)
        await client.start()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_official_client_sends_receives_reconnects_and_syncs(
    fleet: Fleet, users, node_clients, transport: str
) -> None:
    alice, bob = uid("alice"), uid("bob")
    api = users(TENANT_A, alice)
    conv = (await api.create("group", [bob], "official client"))["id"]
    py = ResumingClient(
        alice, [fleet.gateway_url()], fleet.token(TENANT_A, alice), conversations=[conv]
    )
    await py.start()
    node = await node_clients()
    try:
        await node.command(
            "connect",
            url=fleet.gateway_url(),
            token=fleet.token(TENANT_A, bob),
            transports=[transport],
        )
        connected = await node.wait_for(lambda x: x["type"] in ("connect", "connect_error"))
        assert connected["type"] == "connect" and connected["transport"] == transport, connected

        joined = await node.emit("conversation:join", {"conversation_id": conv})
        assert joined["ok"] and joined["conversation"]["id"] == conv, joined

        # Send from the official client; the Python client hears it.
        cmid = uid("node")
        ack = (
            await node.command(
                "send",
                data={"conversation_id": conv, "text": "hi from node", "client_msg_id": cmid},
            )
        )["data"]
        assert ack["ok"] and ack["created"] is True and ack["message"]["seq"] == 1, ack
        await py.wait_applied(conv, 1, timeout=10)
        assert py.messages(conv)[0]["text"] == "hi from node"
        assert py.messages(conv)[0]["sender_id"] == bob

        # A message from the Python client reaches the official one.
        sent = await py.call(
            "message:send",
            {"conversation_id": conv, "text": "hi from py", "client_msg_id": uid("p")},
        )
        got = await node.wait_for(
            lambda x: (
                x["type"] == "event"
                and x["event"] == "message:new"
                and x["data"]["id"] == sent["message"]["id"]
            )
        )
        assert got["data"]["seq"] == 2 and got["data"]["text"] == "hi from py"

        # The transport breaks: the library reconnects by itself.
        mark = len(node.lines)
        await node.command("drop")
        gone = await node.wait_for(lambda x: x["type"] == "disconnect", start=mark)
        assert gone["reason"] in ("forced close", "transport close"), gone
        await node.wait_for(lambda x: x["type"] == "reconnect", start=mark, timeout=20)
        await node.wait_for(lambda x: x["type"] == "connect", start=mark, timeout=20)
        synced = (await node.command("sync", data={"conversations": {conv: 2}}))["data"]
        assert synced == {"ok": True, "messages": {conv: []}, "errors": {}}, synced
        third = (await api.send(conv, "after the reconnect", uid("m"))).json()["message"]
        live = await node.wait_for(
            lambda x: (
                x["type"] == "event"
                and x["event"] == "message:new"
                and x["data"]["id"] == third["id"]
            ),
            start=mark,
        )
        assert live["data"]["seq"] == 3

        # Away on purpose; two messages are missed, and sync brings exactly those.
        mark = len(node.lines)
        await node.command("disconnect")
        gone = await node.wait_for(lambda x: x["type"] == "disconnect", start=mark)
        assert gone["reason"] == "io client disconnect"
        missed = [(await api.send(conv, f"missed {i}", uid("m"))).json()["message"] for i in (4, 5)]
        await py.wait_applied(conv, 5, timeout=10)
        await node.command("reconnect")
        await node.wait_for(lambda x: x["type"] == "connect", start=mark, timeout=20)
        synced = (await node.command("sync", data={"conversations": {conv: 3}}))["data"]
        assert synced["ok"] and synced["errors"] == {}
        assert [(m["seq"], m["id"]) for m in synced["messages"][conv]] == [
            (m["seq"], m["id"]) for m in missed
        ]
        by_events = (
            await node.command(
                "sync",
                data={"conversations": {conv: live["data"]["event_seq"]}, "mode": "events"},
            )
        )["data"]
        assert by_events["ok"] and by_events["resync_required"] == {conv: False}
        assert [(e["event"], e["data"]["id"]) for e in by_events["events"][conv]] == [
            ("message:new", m["id"]) for m in missed
        ]

        # A retried send of the first message is recognised, not stored again.
        again = (
            await node.command(
                "send",
                data={"conversation_id": conv, "text": "hi from node", "client_msg_id": cmid},
            )
        )["data"]
        assert again["ok"] and again["created"] is False
        assert again["message"]["id"] == ack["message"]["id"]

        # Each message reached the official client live exactly once, or by sync.
        live_seqs = [m["seq"] for m in node.events("message:new") if m["conversation_id"] == conv]
        assert live_seqs == [1, 2, 3]
        page = (await api.client.get(f"/conversations/{conv}/messages")).json()["messages"]
        assert [m["seq"] for m in page] == [1, 2, 3, 4, 5]
        assert py.seqs(conv) == [1, 2, 3, 4, 5] and py.errors == []
    finally:
        await py.close()


async def test_official_client_reads_the_refusal_code(fleet: Fleet, node_clients) -> None:
    node = await node_clients()
    await node.command("connect", url=fleet.gateway_url(), token="not-a-jwt")
    refused = await node.wait_for(lambda x: x["type"] in ("connect", "connect_error"))
    assert refused["type"] == "connect_error", refused
    assert refused["data"]["code"] == "invalid_token", refused
