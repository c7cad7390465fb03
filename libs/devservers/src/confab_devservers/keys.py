"""The dev key file: the conversation service's local key-encryption key.

The same format as ``confab_core.crypto.LocalKeyFileProvider`` reads (base64 of
32 random bytes, owner-only); this lib does not depend on confab-core. An
existing file is never replaced: that would orphan every key it wrapped.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

_KEY_BYTES = 32


def dev_key_file(path: Path | None = None) -> Path:
    """Writes a key file at ``path`` unless one is there (default: one per process)."""
    if path is None:
        path = Path(tempfile.gettempdir()) / f"confab-dev-kek-{os.getpid()}"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii") + "\n")
    return path
