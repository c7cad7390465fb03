"""versitygw (an S3-compatible gateway) with its posix backend, as a child process.

Built from the Go module proxy by scripts/install-s3.sh into
.cache/versitygw/bin; ``ensure_versitygw`` runs that script when the binary is
missing. Objects are plain files under the workdir (metadata in extended
attributes), and one bucket exists before the server counts as ready.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from ._ports import HOST, stable_ports
from ._process import ChildServer
from .kafka_server import find_repo_root

log = logging.getLogger(__name__)

VERSITYGW_VERSION = "v1.8.0"
REGION = "us-east-1"
# Dev-only root credentials: the server listens on loopback and holds test data.
ACCESS_KEY = "confab-dev-access"
SECRET_KEY = "confab-dev-secret-not-for-production"
BUCKET = "confab-files"


def ensure_versitygw(repo_root: Path | None = None) -> Path:
    """The versitygw binary, built by scripts/install-s3.sh if missing."""
    root = find_repo_root(repo_root)
    binary = root / ".cache" / "versitygw" / "bin" / "versitygw"
    stamp = binary.parent / f".complete-{VERSITYGW_VERSION}"
    if not (binary.is_file() and stamp.is_file()):
        script = root / "scripts" / "install-s3.sh"
        log.info("versitygw missing; running %s", script)
        result = subprocess.run(
            ["bash", str(script)], cwd=root, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{script} failed with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
    return binary


class S3Server(ChildServer):
    """versitygw on a free 127.0.0.1 port; objects and the bucket survive restarts."""

    name = "s3"
    region = REGION
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY

    def __init__(self, workdir: Path, repo_root: Path | None = None, *, bucket: str = BUCKET):
        super().__init__(workdir)
        self._repo_root = repo_root
        self._binary: Path | None = None
        self.bucket = bucket
        self.port = stable_ports(self.workdir / "s3.ports.json", ("s3",))["s3"]

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def client(self, timeout: float = 5.0) -> Any:
        """A synchronous botocore S3 client for this server (setup and checks in tests)."""
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1},
                signature_version="s3v4",
                s3={"addressing_style": "path"},
            ),
        )

    def _prepare(self, deadline: float) -> None:
        self._binary = ensure_versitygw(self._repo_root)
        self.data_dir.mkdir(exist_ok=True)

    def _env(self) -> dict[str, str]:
        # Credentials through the environment, not argv, where `ps` would show them.
        return {
            **os.environ,
            "ROOT_ACCESS_KEY_ID": ACCESS_KEY,
            "ROOT_SECRET_ACCESS_KEY": SECRET_KEY,
            "VGW_REGION": REGION,
        }

    def _command(self) -> list[str]:
        assert self._binary is not None
        return [
            str(self._binary),
            "--port",
            f"{HOST}:{self.port}",
            # Per-request access lines would grow the log by megabytes in a test run.
            "--quiet",
            "posix",
            str(self.data_dir),
        ]

    def _probe(self, timeout: float) -> None:
        client = self.client(timeout=min(timeout, 2.0))
        try:
            client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise
            client.create_bucket(Bucket=self.bucket)
        finally:
            client.close()
