"""The idle scenario (A) over several load-generator processes.

Every socket needs a descriptor in the load generator as well as in the gateway, and a
process may hold at most its open-files limit (20,000 here, hard, not raisable), so
50,000 idle sockets need several client processes (and several gateways: see
``check_gateways``). The parent makes every socket's auth (the tokens), starts
``workers`` copies of this module (``python -m bench.loadgen.idle_workers``), hands
each its share over stdin, and meters the gateways; each worker holds its sockets as
``IdleSocket``s (a few KiB each, no task) from its own source addresses until told to
close them.

Worker protocol, JSON lines: the parent writes a spec ``{"sources", "concurrency",
"count"}``, then ``count`` lines ``[url, auth]``; the worker connects them all and
answers ``{"connected", "refused", "connect_s", "errors"}``. Then ``"count"`` asks for
``{"alive", "rss"}``, and ``"close"`` closes every socket (``{"closed": n}``) and ends
the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from .client import IdleSocket
from .stats import ProcessMeter, rss_bytes
from .targets import Target, raise_fd_limit

Result = dict[str, Any]

# Sockets one load-generator process holds, at most: its open-files limit less room
# for everything else it opens.
MAX_PER_PROCESS = 18_000
_FD_MARGIN = 2_000
# The gateway side: descriptors a gateway needs besides its sockets.
_GATEWAY_FD_MARGIN = 500
# Connects in flight per worker.
CONCURRENCY = 64
_REPO = Path(__file__).resolve().parents[2]


def per_process_limit() -> int:
    """How many sockets this process (and so each worker, which inherits the limit)
    may hold."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, min(MAX_PER_PROCESS, soft - _FD_MARGIN))


def check_gateways(target: Target, n: int) -> None:
    """Fails early when ``n`` sockets spread over the target's gateways would pass a
    gateway's open-files limit (then the run needs more gateways, not more time)."""
    urls = target.urls()
    per_gateway = math.ceil(n / len(urls))
    for name, pid in target.server_pids().items():
        if not pid:
            continue
        with contextlib.suppress(psutil.Error, AttributeError):
            soft, _ = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
            if 0 < soft < per_gateway + _GATEWAY_FD_MARGIN:
                raise RuntimeError(
                    f"{n} idle sockets over {len(urls)} gateway(s) is {per_gateway} on "
                    f"{name}, whose open-files limit is {soft}: run more gateways "
                    f"(bench.run --gateways {math.ceil(n / (soft - _GATEWAY_FD_MARGIN))})"
                )


class _Worker:
    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc

    async def send(self, *objs: Any) -> None:
        assert self.proc.stdin is not None
        for obj in objs:
            self.proc.stdin.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            code = await self.proc.wait()
            raise RuntimeError(f"idle worker {self.index} exited (code {code})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


async def idle_connections_in_workers(
    target: Target, n: int, users: list[str], sources: int = 8
) -> Result:
    """(A) over ``ceil(n / per_process_limit())`` worker processes; the same keys as
    the single-process scenario, and the workers' own size."""
    check_gateways(target, n)
    limit = per_process_limit()
    workers = math.ceil(n / limit)
    urls = target.urls()
    # Socket i goes to gateway i % len(urls); worker w holds sockets w, w + workers, ...
    # so every worker spreads over every gateway.
    shares: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(workers)]
    for i, user in enumerate(users[:n]):
        shares[i % workers].append((urls[i % len(urls)], target.auth(user, [])))
    procs = ProcessMeter(target.server_pids())
    started: list[_Worker] = []
    try:
        for w in range(workers):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.loadgen.idle_workers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=_REPO,
                limit=2**20,
            )
            started.append(_Worker(w, proc))
        await asyncio.sleep(1)
        before = sum(rss_bytes(p) for p in procs.procs.values())
        procs.start()
        t = time.perf_counter()
        for w, worker in enumerate(started):
            # Each worker its own source addresses: 127.0.0.2.. for the first, and on.
            first = 2 + w * sources
            spec = {
                "sources": [f"127.0.0.{first + k}" for k in range(sources)],
                "concurrency": CONCURRENCY,
                "count": len(shares[w]),
            }
            await worker.send(spec, *([url, auth] for url, auth in shares[w]))
        done = await asyncio.gather(*(worker.receive() for worker in started))
        connect_s = time.perf_counter() - t
        await asyncio.sleep(3)  # heartbeats and late allocations
        after = sum(rss_bytes(p) for p in procs.procs.values())
        procs.stop()
        for worker in started:
            await worker.send("count")
        counts = await asyncio.gather(*(worker.receive() for worker in started))
        alive = sum(c["alive"] for c in counts)
        made = sum(d["connected"] for d in done)
        errors: Counter[str] = Counter()
        for d in done:
            errors.update(d["errors"])
        loadgen_rss = sum(c["rss"] for c in counts)
        result: Result = {
            "target": target.name,
            "connections": alive,
            "refused": sum(d["refused"] for d in done),
            "connect_s": round(connect_s, 1),
            "connects_per_s": round(made / connect_s, 1) if connect_s else None,
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_connection": round((after - before) / max(alive, 1) / 1024, 2),
            "connect_cpu_s": round(sum(procs.cpu.values()), 2),
            "gateways": len(urls),
            "loadgen_workers": workers,
            "loadgen_rss_mib": round(loadgen_rss / 2**20, 1),
        }
        if errors:
            result["refusals"] = dict(errors.most_common(5))
        for worker in started:
            await worker.send("close")
        await asyncio.gather(*(worker.receive() for worker in started))
        return result
    finally:
        await asyncio.gather(*(worker.stop() for worker in started), return_exceptions=True)


# --- the worker ---------------------------------------------------------------------


async def _connect_all(
    lines: list[tuple[str, dict[str, Any]]], sources: list[str], concurrency: int
) -> tuple[list[IdleSocket], int, Counter[str]]:
    gate = asyncio.Semaphore(concurrency)
    socks: list[IdleSocket] = []
    errors: Counter[str] = Counter()
    refused = 0

    async def one(i: int, url: str, auth: dict[str, Any]) -> None:
        nonlocal refused
        source = sources[i % len(sources)]
        async with gate:
            for attempt in range(3):
                try:
                    socks.append(await IdleSocket.open(url, auth, source))
                    return
                except Exception as exc:
                    if attempt == 2:
                        refused += 1
                        errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                        return
                    await asyncio.sleep(0.5)

    # Started in batches: a coroutine per socket, not 18,000 at once.
    batch = concurrency * 16
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        await asyncio.gather(*(one(start + k, u, a) for k, (u, a) in enumerate(part)))
    return socks, refused, errors


async def _worker_main() -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout

    def answer(obj: Any) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    spec = json.loads(await reader.readline())
    lines: list[tuple[str, dict[str, Any]]] = []
    for _ in range(spec["count"]):
        url, auth = json.loads(await reader.readline())
        lines.append((url, auth))
    t = time.perf_counter()
    socks, refused, errors = await _connect_all(lines, spec["sources"], spec["concurrency"])
    lines.clear()
    answer(
        {
            "connected": len(socks),
            "refused": refused,
            "connect_s": round(time.perf_counter() - t, 2),
            "errors": dict(errors),
        }
    )
    me = psutil.Process()
    while True:
        line = await reader.readline()
        command = json.loads(line) if line.strip() else "close"
        if command == "count":
            answer({"alive": sum(1 for s in socks if s.connected), "rss": me.memory_info().rss})
        elif command == "close":
            for s in socks:
                s.close()
            await asyncio.sleep(1)  # let the close frames go out
            answer({"closed": len(socks)})
            return


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(_worker_main())
