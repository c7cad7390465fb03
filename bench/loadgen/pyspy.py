"""py-spy attached to the fleet's processes while a scenario's clock runs.

Each process is sampled into a collapsed-stack file (`--format raw`, one line per
distinct stack with its sample count); `top()` turns one into the functions that
hold the CPU, by self and by inclusive share, which is what the report prints.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


def _binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@dataclass
class PySpy:
    """Samples ``pids`` (name -> pid) into ``outdir/<label>-<name>.txt`` until closed."""

    pids: dict[str, int | None]
    outdir: Path
    label: str
    rate: int = 250
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def __enter__(self) -> PySpy:
        binary = _binary()
        if binary is None:
            return self
        self.outdir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            if pid is None:
                continue
            out = self.outdir / f"{self.label}-{name}.txt"
            self.files[name] = out
            self.procs[name] = subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    str(self.rate),
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # SIGINT makes py-spy write what it sampled so far.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def summaries(self, n: int = 12) -> dict[str, dict[str, object]]:
        return {name: top(path, n) for name, path in self.files.items() if path.exists()}


def _frame(raw: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module.py)`: lines split one function."""
    name, _, where = raw.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})" if module else name


def top(path: Path, n: int = 12) -> dict[str, object]:
    """Samples, and the top functions by self share and by inclusive share (percent)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        # The first frame is the thread; idle threads sample nothing with --nonblocking
        # unless they run Python code, so every line is CPU spent in the process.
        frames = [_frame(f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        own[frames[-1]] += samples
        for f in set(frames):
            inclusive[f] += samples

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {"samples": total, "self": pct(own), "inclusive": pct(inclusive)}
