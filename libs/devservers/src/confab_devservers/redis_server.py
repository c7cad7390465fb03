"""Debian's redis-server as a child process."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from ._ports import HOST, stable_ports
from ._process import ChildServer


class RedisServer(ChildServer):
    """redis-server on a free 127.0.0.1 port; no persistence (a restart starts empty)."""

    name = "redis"

    def __init__(
        self, workdir: Path, repo_root: Path | None = None, *, binary: str | None = None
    ) -> None:
        # repo_root is accepted for a uniform constructor across servers.
        del repo_root
        super().__init__(workdir)
        self._binary = binary
        self.port = stable_ports(self.workdir / "redis.ports.json", ("redis",))["redis"]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _prepare(self, deadline: float) -> None:
        if self._binary is None:
            self._binary = shutil.which("redis-server")
            if self._binary is None:
                raise FileNotFoundError(
                    "redis-server not found on PATH; run scripts/install-redis.sh"
                )

    def _command(self) -> list[str]:
        assert self._binary is not None
        return [
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]

    def _probe(self, timeout: float) -> None:
        client = redis.Redis(
            host=HOST,
            port=self.port,
            socket_connect_timeout=min(timeout, 1.0),
            socket_timeout=min(timeout, 2.0),
        )
        try:
            if not client.ping():
                raise ConnectionError("PING not answered")
        finally:
            client.close()
