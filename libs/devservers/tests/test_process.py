from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from confab_devservers import ChildServer, ServerStartError, free_port


class _Script(ChildServer):
    name = "script"

    def __init__(self, workdir: Path, code: str) -> None:
        super().__init__(workdir)
        self._code = code

    def _command(self) -> list[str]:
        return [sys.executable, "-u", "-c", self._code]

    def _probe(self, timeout: float) -> None:
        raise ConnectionRefusedError("never ready")


def test_free_port_is_unique_and_bindable() -> None:
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(1024 < p < low for p in ports)


def test_early_exit_reports_code_and_log_tail(tmp_path: Path) -> None:
    server = _Script(tmp_path, "print('boom: bad flag'); raise SystemExit(3)")
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        server.start(timeout=30)
    assert time.monotonic() - started < 10  # noticed the exit, did not wait for the deadline
    assert "exited with code 3" in str(info.value)
    assert "boom: bad flag" in str(info.value)
    assert not server.running


def test_timeout_reports_probe_error_and_kills(tmp_path: Path) -> None:
    server = _Script(tmp_path, "import time; print('still booting'); time.sleep(60)")
    with pytest.raises(ServerStartError) as info:
        server.start(timeout=1.0)
    message = str(info.value)
    assert "not ready after" in message
    assert "never ready" in message
    assert "still booting" in message
    assert not server.running


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from confab_devservers import RedisServer
    server = RedisServer(Path(sys.argv[1]))
    server.start()
    print(json.dumps({"pid": server.pid, "port": server.port}), flush=True)
    if sys.argv[2] == "crash":
        os.kill(os.getpid(), 9)   # no atexit, no finally: only PDEATHSIG can help
    # "exit": fall off the end without stopping; atexit must clean up
    """
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists"; it counts as dead here.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["crash", "exit"])
def test_no_orphans_when_parent_dies(tmp_path: Path, how: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path), how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    info = json.loads(proc.stdout.strip().splitlines()[0])
    if how == "crash":
        assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _pid_alive(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(info["pid"]), f"redis-server {info['pid']} outlived its parent ({how})"
