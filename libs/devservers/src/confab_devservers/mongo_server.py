"""SecantusDB (MongoDB wire protocol, WiredTiger storage) as a child Python process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pymongo

from ._ports import HOST, stable_ports
from ._process import ChildServer


class MongoServer(ChildServer):
    """A SecantusDB server on a free 127.0.0.1 port, data kept in ``workdir/mongo-data``.

    SecantusDB advertises itself as the primary of a single-node replica set
    named ``secantus``, which is what lets drivers use sessions, multi-document
    transactions and change streams against it.
    """

    name = "mongo"
    replica_set = "secantus"

    def __init__(
        self,
        workdir: Path,
        repo_root: Path | None = None,
        *,
        cache_size: str = "256M",
        sync_on_commit: bool = True,
        python: str | None = None,
        server_binary: str | None = None,
    ) -> None:
        # repo_root is accepted for a uniform constructor across servers.
        del repo_root
        super().__init__(workdir)
        self._cache_size = cache_size
        self._sync_on_commit = sync_on_commit
        self._python = python or sys.executable
        # The Rust build of SecantusDB (`cargo install secantus-mdb`, binary
        # `secantusd-rs`) takes the same flags; opt-in because it is not
        # installable from PyPI.
        self._server_binary = server_binary or os.environ.get("CONFAB_SECANTUS_BIN") or None
        self.port = stable_ports(self.workdir / "mongo.ports.json", ("mongo",))["mongo"]

    @property
    def url(self) -> str:
        # directConnection skips replica-set discovery (there is only one
        # node) while the driver still sees a replica-set primary, so
        # transactions and change streams work. `?replicaSet=secantus` works too.
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    @property
    def replica_set_url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?replicaSet={self.replica_set}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "mongo-data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "secantusd.toml"

    def _prepare(self, deadline: float) -> None:
        # An explicit (empty) config disables secantus' auto-discovery of
        # ./secantusd.toml, ~/.secantus/... and /etc/secantus/..., so a
        # developer's personal config cannot change test behaviour.
        if not self.config_path.exists():
            self.config_path.write_text("# settings come from the command line\n")

    def _command(self) -> list[str]:
        # Without --sync-on-commit SecantusDB keeps recent commits in
        # WiredTiger's in-process log buffer, and a kill() within ~1 s of an
        # acknowledged write loses it (measured). Crash tests need acked
        # writes to survive; the fsync cost is ~30% on small inserts here.
        durability = ["--sync-on-commit"] if self._sync_on_commit else []
        launcher = (
            [self._server_binary] if self._server_binary else [self._python, "-m", "secantus"]
        )
        return [
            *launcher,
            "--config",
            str(self.config_path),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir),
            "--cache-size",
            self._cache_size,
            "--log-level",
            "INFO",
            *durability,
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Otherwise the log file only fills when the buffer does, which
        # hides the reason of an early exit.
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _probe(self, timeout: float) -> None:
        ms = max(200, int(min(timeout, 2.0) * 1000))
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms * 2
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()
