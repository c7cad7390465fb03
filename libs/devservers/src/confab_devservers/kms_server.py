"""local-kms (a server speaking the AWS KMS API) as a child process.

Built from the Go module proxy by scripts/install-local-kms.sh into
.cache/local-kms/bin; ``ensure_local_kms`` runs that script when the binary is
missing. The server starts seeded with one AES key and an alias, so a
provider can wrap and unwrap right away.
"""

from __future__ import annotations

import logging
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ._ports import HOST, stable_ports
from ._process import ChildServer
from .kafka_server import find_repo_root

log = logging.getLogger(__name__)

LOCAL_KMS_VERSION = "v0.0.0-20260228092603-2a5e92d09ab6"
REGION = "eu-west-2"
KEY_ID = "5c1fc8f5-34c4-4c3e-9d3b-6f0c1b2a9e11"
ALIAS = "alias/confab-dev"
# A fixed backing key: the seed is dev-only and makes restarts keep unwrapping.
_BACKING_KEY = "5b8c3a0e2f1d4c6b9a7e8d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a"


def ensure_local_kms(repo_root: Path | None = None) -> Path:
    """The local-kms binary, built by scripts/install-local-kms.sh if missing."""
    root = find_repo_root(repo_root)
    binary = root / ".cache" / "local-kms" / "bin" / "local-kms"
    stamp = binary.parent / f".complete-{LOCAL_KMS_VERSION}"
    if not (binary.is_file() and stamp.is_file()):
        script = root / "scripts" / "install-local-kms.sh"
        log.info("local-kms missing; running %s", script)
        result = subprocess.run(
            ["bash", str(script)], cwd=root, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{script} failed with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
    return binary


class KmsServer(ChildServer):
    """local-kms on a free 127.0.0.1 port, its keys kept in the workdir across restarts."""

    name = "kms"
    region = REGION
    key_id = KEY_ID
    alias = ALIAS

    def __init__(self, workdir: Path, repo_root: Path | None = None) -> None:
        super().__init__(workdir)
        self._repo_root = repo_root
        self._binary: Path | None = None
        self.port = stable_ports(self.workdir / "kms.ports.json", ("kms",))["kms"]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _prepare(self, deadline: float) -> None:
        self._binary = ensure_local_kms(self._repo_root)
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "seed.yaml").write_text(
            "Keys:\n"
            "  Symmetric:\n"
            "    Aes:\n"
            "      - Metadata:\n"
            f"          KeyId: {KEY_ID}\n"
            "        BackingKeys:\n"
            f"          - {_BACKING_KEY}\n"
            "Aliases:\n"
            f"  - AliasName: {ALIAS}\n"
            f"    TargetKeyId: {KEY_ID}\n",
            encoding="utf-8",
        )

    def _env(self) -> dict[str, str] | None:
        return {
            **os.environ,
            "PORT": str(self.port),
            "KMS_REGION": REGION,
            "KMS_DATA_PATH": str(self.workdir / "data"),
            "KMS_SEED_PATH": str(self.workdir / "seed.yaml"),
        }

    def _command(self) -> list[str]:
        assert self._binary is not None
        return [str(self._binary)]

    def _probe(self, timeout: float) -> None:
        request = urllib.request.Request(
            self.url,
            data=b"{}",
            headers={
                "X-Amz-Target": "TrentService.ListKeys",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=min(timeout, 2.0)) as response:
                response.read()
        except urllib.error.HTTPError:
            # Any HTTP answer means it is listening; ListKeys needs no signature anyway.
            return
