"""Debian's clamd (ClamAV daemon) as a child process, with the EICAR test signature only.

No signature database can be downloaded here, so the server's database
directory holds two files the project writes: an MD5 signature of the EICAR
test file and a body signature matching any file that starts with it (the
EICAR standard allows trailing whitespace). Production runs a clamd kept up to
date by freshclam instead (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

from ._ports import HOST, stable_ports
from ._process import ChildServer

SIGNATURE_NAME = "Eicar-Test-Signature"
# Uploads may reach 100 MiB and more in the benchmarks; clamd's defaults (25 MiB
# stream, 100 MiB scan) would answer "size limit exceeded" instead of a verdict.
SCAN_LIMIT = "200M"


def eicar_bytes() -> bytes:
    """The standard 68-byte EICAR antivirus test file.

    Assembled from parts so that no file in the repository is itself the
    signature (scanners on developer machines would quarantine it).
    """
    head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
    tail = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    return (head + tail).encode("ascii")


def _signatures() -> dict[str, str]:
    data = eicar_bytes()
    return {
        # Hash signature: md5:size:name, an exact match of the file.
        "confab-test.hdb": f"{hashlib.md5(data).hexdigest()}:{len(data)}:{SIGNATURE_NAME}\n",
        # Body signature: name:target(0 = any file):offset:hex, the file's first bytes.
        "confab-test.ndb": f"{SIGNATURE_NAME}:0:0:{data.hex()}\n",
    }


class ClamdServer(ChildServer):
    """clamd on a free 127.0.0.1 TCP port, scanning with the project's test signatures."""

    name = "clamd"
    host = HOST

    def __init__(
        self, workdir: Path, repo_root: Path | None = None, *, binary: str | None = None
    ) -> None:
        # repo_root is accepted for a uniform constructor across servers.
        del repo_root
        super().__init__(workdir)
        self._binary = binary
        self.port = stable_ports(self.workdir / "clamd.ports.json", ("clamd",))["clamd"]

    @property
    def database_dir(self) -> Path:
        return self.workdir / "db"

    @property
    def config_path(self) -> Path:
        return self.workdir / "clamd.conf"

    def _prepare(self, deadline: float) -> None:
        if self._binary is None:
            # Debian installs it in /usr/sbin, which is not on every user's PATH.
            self._binary = shutil.which("clamd") or shutil.which(
                "clamd", path="/usr/sbin:/usr/local/sbin"
            )
            if self._binary is None:
                raise FileNotFoundError("clamd not found; run scripts/install-clamav.sh")
        self.database_dir.mkdir(exist_ok=True)
        for name, text in _signatures().items():
            (self.database_dir / name).write_text(text, encoding="ascii")
        lines = [
            "Foreground yes",
            f"TCPSocket {self.port}",
            f"TCPAddr {HOST}",
            f"DatabaseDirectory {self.database_dir}",
            "LogTime yes",
            f"StreamMaxLength {SCAN_LIMIT}",
            f"MaxFileSize {SCAN_LIMIT}",
            f"MaxScanSize {SCAN_LIMIT}",
            # The signature files never change while it runs; the default 10-minute
            # self-check would only reread them.
            "SelfCheck 0",
            # No bytecode.cvd is present; without this clamd would still look for one.
            "Bytecode no",
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="ascii")

    def _command(self) -> list[str]:
        assert self._binary is not None
        return [self._binary, "--config-file", str(self.config_path)]

    def _probe(self, timeout: float) -> None:
        with socket.create_connection((HOST, self.port), timeout=min(timeout, 2.0)) as sock:
            sock.sendall(b"zPING\0")
            reply = b""
            while not reply.endswith(b"\0"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
        if reply.rstrip(b"\0") != b"PONG":
            raise ConnectionError(f"clamd answered {reply!r} to PING")
