"""The systems under test: Confab's whole fleet, and the bare python-socketio baseline.

A target knows how to make a room with given members, what a connecting socket
presents, which event sends a message, and which processes to meter.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
from confab_devfleet import Fleet, FleetOptions

from gateway.ratelimit import Action

BENCH_TENANT = "bench"
UNLIMITED = "1000000000"
RUST_SECANTUS_DEFAULT = "/tmp/secrs/bin/secantusd-rs"


def raise_fd_limit(wanted: int = 200_000) -> int:
    """Sockets need descriptors on both sides; children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (wanted, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return target
        except (ValueError, OSError):
            continue
    return soft


class Target:
    name = "target"
    send_event = "message:send"

    @property
    def url(self) -> str:
        raise NotImplementedError

    def urls(self) -> list[str]:
        return [self.url]

    def auth(self, user: str, rooms: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def make_room(self, members: list[str], kind: str = "group") -> str:
        raise NotImplementedError

    def send_payload(self, conv: str, client_msg_id: str, text: str) -> dict[str, Any]:
        return {"conversation_id": conv, "client_msg_id": client_msg_id, "text": text}

    def server_pids(self) -> dict[str, int | None]:
        """The processes that do the fan-out (deliveries per CPU-second are per these)."""
        raise NotImplementedError

    def all_pids(self) -> dict[str, int | None]:
        return self.server_pids()

    def python_pids(self) -> dict[str, int | None]:
        """The processes py-spy can sample."""
        return self.server_pids()

    def facts(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        pass


class ConfabTarget(Target):
    name = "confab"

    def __init__(self, workdir: Path, gateways: int = 1, secantus_bin: str | None = None) -> None:
        binary = secantus_bin or os.environ.get("CONFAB_SECANTUS_BIN") or ""
        if not binary and Path(RUST_SECANTUS_DEFAULT).exists():
            binary = RUST_SECANTUS_DEFAULT
        if binary:
            os.environ["CONFAB_SECANTUS_BIN"] = binary
        self.secantus = binary or "python -m secantus"
        limits = {
            # Every action (sends, connects, typing...): the bench measures the
            # system, not the limiter's refusals.
            "GATEWAY_RATE_LIMITS": json.dumps(
                {a: {"user": int(UNLIMITED), "tenant": int(UNLIMITED)} for a in Action}
            ),
            # The production default; the dev fleet's 5 s is for quick tests.
            "GATEWAY_HEARTBEAT_SECONDS": "20",
        }
        self.fleet = Fleet(
            FleetOptions(workdir=workdir, gateways=gateways, extra_env={"gateway": limits})
        )
        started = time.perf_counter()
        try:
            self.fleet.start()
        except BaseException:
            self.fleet.stop()
            raise
        self.start_seconds = time.perf_counter() - started
        self._rooms = 0

    @property
    def url(self) -> str:
        return self.fleet.gateway_url(0)

    def urls(self) -> list[str]:
        return [g.url for g in self.fleet.gateways]

    def token(self, user: str) -> str:
        return self.fleet.token(BENCH_TENANT, user, ttl_seconds=6 * 3600)

    def auth(self, user: str, rooms: list[str]) -> dict[str, Any]:
        return {"token": self.token(user)}

    def api(self, user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=60,
        )

    async def make_room(self, members: list[str], kind: str = "group") -> str:
        """Created by the first member; others are added 999 at a time (the create limit)."""
        self._rooms += 1
        owner, others = members[0], members[1:]
        async with self.api(owner) as api:
            resp = await api.post(
                "/conversations",
                json={"kind": kind, "member_ids": others[:999], "title": f"bench {self._rooms}"},
            )
            resp.raise_for_status()
            conv = str(resp.json()["conversation"]["id"])
            for i in range(999, len(others), 1000):
                r = await api.post(
                    f"/conversations/{conv}/members", json={"user_ids": others[i : i + 1000]}
                )
                r.raise_for_status()
        return conv

    def server_pids(self) -> dict[str, int | None]:
        return {g.name: g.pid for g in self.fleet.gateways}

    def all_pids(self) -> dict[str, int | None]:
        pids: dict[str, int | None] = dict(self.server_pids())
        pids.update({name: svc.pid for name, svc in self.fleet.services.items()})
        pids.update({s.name: s.pid for s in self.fleet.servers})
        return pids

    def metrics_urls(self) -> dict[str, str]:
        urls = {g.name: g.metrics_url for g in self.fleet.gateways}
        urls.update({name: svc.metrics_url for name, svc in self.fleet.services.items()})
        return urls

    def python_pids(self) -> dict[str, int | None]:
        pids: dict[str, int | None] = dict(self.server_pids())
        pids.update({name: svc.pid for name, svc in self.fleet.services.items()})
        return pids

    def facts(self) -> dict[str, str]:
        return {
            "gateways": str(len(self.fleet.gateways)),
            "mongo server": self.secantus,
            "fleet start": f"{self.start_seconds:.1f} s",
        }

    def stop(self) -> None:
        self.fleet.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BareSocketIOTarget(Target):
    name = "bare python-socketio"
    send_event = "send"

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        script = Path(__file__).resolve().parent.parent / "baselines" / "bare_socketio.py"
        workdir.mkdir(parents=True, exist_ok=True)
        self._log = (workdir / "bare_socketio.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"{self.url}/socket.io/?EIO=4&transport=polling", timeout=1
                ):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("bare python-socketio server did not start") from None
                time.sleep(0.1)
        self._rooms = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, user: str, rooms: list[str]) -> dict[str, Any]:
        return {"rooms": rooms}

    async def make_room(self, members: list[str], kind: str = "group") -> str:
        self._rooms += 1
        return f"room-{self._rooms}"

    def server_pids(self) -> dict[str, int | None]:
        return {"bare-socketio": self.proc.pid}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
