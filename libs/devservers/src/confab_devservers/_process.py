"""Child-process lifecycle shared by the Kafka, Mongo and Redis servers."""

from __future__ import annotations

import abc
import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def _load_prctl() -> Callable[[int, int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def call(option: int, a2: int, a3: int, a4: int, a5: int) -> int:
        return int(prctl(option, a2, a3, a4, a5))

    return call


# Resolved before any fork: the preexec hook runs in the forked child, where
# loading a shared library (taking the loader lock) is not safe.
_prctl = _load_prctl()


def tail_file(path: Path, lines: int = 60, max_bytes: int = 16384) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Every child this process started and has not yet reaped. Strong references on
# purpose: a server object that is garbage-collected must not orphan its child.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_atexit_registered = False


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # Each child leads its own process group (start_new_session), so this also
    # reaches anything the server itself spawned.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _reap_all_at_exit() -> None:
    with _live_lock:
        procs = list(_live)
        _live.clear()
    if not procs:
        return
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


def _track(proc: subprocess.Popen[bytes]) -> None:
    global _atexit_registered
    with _live_lock:
        _live.add(proc)
        if not _atexit_registered:
            atexit.register(_reap_all_at_exit)
            _atexit_registered = True


def _untrack(proc: subprocess.Popen[bytes]) -> None:
    with _live_lock:
        _live.discard(proc)


def spawn(
    cmd: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group with stdout+stderr appended to ``log_path``.

    On Linux the child also gets PR_SET_PDEATHSIG=SIGKILL so that a parent that
    dies without running atexit (SIGKILL, segfault, OOM) leaves no orphan. The
    kernel ties that signal to the *thread* that forked, so it is only armed
    when spawning from the main thread; a short-lived worker thread (e.g.
    asyncio.to_thread) would otherwise take the server down when it exits.
    The atexit hook covers the remaining cases.
    """
    parent_pid = os.getpid()
    arm_pdeathsig = _prctl is not None and threading.current_thread() is threading.main_thread()
    prctl = _prctl

    def preexec() -> None:
        if arm_pdeathsig and prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            # The parent may have died between fork and prctl; the signal would
            # then never come.
            if os.getppid() != parent_pid:
                os._exit(1)

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log_file.write(f"\n===== {stamp} confab-devservers starting: {' '.join(cmd)}\n".encode())
        log_file.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )
    _track(proc)
    return proc


class ChildServer(abc.ABC):
    """A real server running as a child process, restartable on the same ports and data."""

    #: Short name used for log/data file names inside the workdir.
    name: str = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self.startup_seconds: float | None = None

    # -- to implement -------------------------------------------------------

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """Argv of the server process."""

    @abc.abstractmethod
    def _probe(self, timeout: float) -> None:
        """Raise unless the server answers its real protocol within ``timeout``."""

    def _prepare(self, deadline: float) -> None:  # noqa: B027 - optional hook, not abstract
        """Runs before every start: config files, first-time storage formatting."""

    def _env(self) -> dict[str, str] | None:
        return None

    # -- lifecycle ------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self, timeout: float = 90.0) -> None:
        """Start the server (no-op if running) and block until it is truly ready."""
        with self._lock:
            if self.running:
                return
            started = time.monotonic()
            deadline = started + timeout
            self._prepare(deadline)
            proc = spawn(self._command(), log_path=self.log_path, cwd=self.workdir, env=self._env())
            self._proc = proc
            try:
                self._wait_ready(proc, deadline, timeout)
            except BaseException:
                self._terminate(proc, graceful=False, timeout=10.0)
                raise
            self.startup_seconds = time.monotonic() - started
            log.info(
                "%s ready in %.2fs (pid %d, log %s)",
                self.name,
                self.startup_seconds,
                proc.pid,
                self.log_path,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean exit; SIGKILL if it takes longer than ``timeout``."""
        with self._lock:
            proc = self._proc
            if proc is not None:
                self._terminate(proc, graceful=True, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the server (simulates a crash); data is kept for the next start."""
        with self._lock:
            proc = self._proc
            if proc is not None:
                self._terminate(proc, graceful=False, timeout=10.0)

    def restart(self, timeout: float = 90.0) -> None:
        """Stop (gracefully) and start again on the same ports and data."""
        with self._lock:
            self.stop()
            self.start(timeout=timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        return tail_file(self.log_path, lines=lines)

    # -- internals ------------------------------------------------------------

    def _terminate(self, proc: subprocess.Popen[bytes], *, graceful: bool, timeout: float) -> None:
        if proc.poll() is None:
            if graceful:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "%s (pid %d) ignored SIGTERM for %.0fs; killing",
                        self.name,
                        proc.pid,
                        timeout,
                    )
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        # The leader is gone; sweep any helper it left in its group.
        _signal_group(proc, signal.SIGKILL)
        _untrack(proc)
        log.info("%s (pid %d) exited with %s", self.name, proc.pid, proc.returncode)

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float, timeout: float) -> None:
        last_error: BaseException | None = None
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before becoming ready "
                    f"(cmd: {proc.args!r}).\n"
                    f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"{self.name} (pid {proc.pid}) not ready after {timeout:.0f}s; "
                    f"last probe error: {last_error!r}.\n"
                    f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
                )
            try:
                self._probe(min(remaining, 5.0))
                return
            except Exception as exc:  # any failure just means "not yet"
                last_error = exc
            # Doubles as the poll interval and returns at once if the child dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
