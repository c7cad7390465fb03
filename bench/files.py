"""Files: upload throughput and memory for a 100 MiB file, and time to preview for a
5 MB photo, on each object store (GridFS in the MongoDB-wire server, versitygw as S3),
over the whole fleet with a real clamd. Writes bench/results/<date>-files.md.

Usage (from the repository root):
    uv run python -m bench.files                       # both backends (`make bench`)
    uv run python -m bench.files --backends s3 --size-mib 50

Memory: VmRSS of the gateway and of the conversation service (and their children),
from /proc/<pid>/status every 20 ms on a thread. "Idle" is the median over one second
after a warm-up upload of 1 MiB (so first-use imports and pools are not counted as
upload memory); "peak" is the highest sample while the 100 MiB upload's request is in
flight. The target: peak under idle + 50 MiB for both, i.e. the file is streamed, not
held. The file is a ZIP archive (stored, not deflated) of random bytes, read from
disk by the client in 64 KiB pieces, so the client holds none of it either.

Time to preview: from the start of the photo's upload to the ``file:updated`` event
that says it is clean with a thumbnail (scan, EXIF strip, thumbnail, re-seal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio
from confab_devfleet import Fleet, FleetOptions

from gateway.ratelimit import Action
from tests.e2e.files_helpers import MIB, file_of, noisy_jpeg, set_file_policy

from .loadgen.targets import RUST_SECANTUS_DEFAULT, UNLIMITED
from .run import machine_facts

log = logging.getLogger("bench.files")

TENANT = "bench-files"
# Room for the 100 MiB file under the tenant's policy (the default is 25 MiB).
POLICY_MAX_BYTES = 128 * MIB
RSS_TARGET_MIB = 50


def vm_rss(pid: int) -> int:
    """Resident bytes of a process and its children (VmRSS from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Sampler:
    """Samples the RSS of named processes on a thread until stopped."""

    def __init__(self, pids: dict[str, int], every: float = 0.02) -> None:
        self.pids = pids
        self.every = every
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.samples[name].append(vm_rss(pid))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for name, pid in self.pids.items():
            self.samples[name].append(vm_rss(pid))


@dataclass
class Bench:
    backend: str
    fleet: Fleet

    @property
    def url(self) -> str:
        return self.fleet.gateway_url(0)

    def api(self, user: str, **claims: Any) -> httpx.AsyncClient:
        token = self.fleet.token(TENANT, user, ttl_seconds=6 * 3600, **claims)
        return httpx.AsyncClient(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )

    def pids(self) -> dict[str, int]:
        gateway, conversation = self.fleet.gateways[0].pid, self.fleet.services["conversation"].pid
        assert gateway and conversation
        return {"gateway": gateway, "conversation": conversation}


class Events:
    """A socket that keeps every ``file:updated`` it hears."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._changed = asyncio.Event()

        @self.sio.on("file:updated")
        async def _updated(data: dict[str, Any]) -> None:
            self.seen.append((time.perf_counter(), file_of(data)))
            self._changed.set()

    async def wait(self, file_id: str, within: float) -> tuple[float, dict[str, Any]]:
        """When the file left pending, and how."""

        async def find() -> tuple[float, dict[str, Any]]:
            while True:
                self._changed.clear()
                for at, f in self.seen:
                    if f["id"] == file_id and f["status"] != "pending":
                        return at, f
                await self._changed.wait()

        return await asyncio.wait_for(find(), within)


@contextmanager
def fleet_on(backend: str, workdir: Path) -> Iterator[Bench]:
    if not os.environ.get("CONFAB_SECANTUS_BIN") and Path(RUST_SECANTUS_DEFAULT).exists():
        os.environ["CONFAB_SECANTUS_BIN"] = RUST_SECANTUS_DEFAULT
    limits = {a: {"user": int(UNLIMITED), "tenant": int(UNLIMITED)} for a in Action}
    fleet = Fleet(
        FleetOptions(
            workdir=workdir,
            gateways=1,
            files_backend=backend,
            extra_env={"gateway": {"GATEWAY_RATE_LIMITS": json.dumps(limits)}},
        )
    )
    try:
        fleet.start()
        yield Bench(backend, fleet)
    finally:
        fleet.stop()


def random_zip(path: Path, size: int) -> Path:
    """A stored (not deflated) ZIP of random bytes: an archive, which the policy
    allows, that neither compression nor deduplication makes cheaper to move."""
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive,
        archive.open("random.bin", "w", force_zip64=True) as member,
    ):
        left = size - 200
        while left > 0:
            piece = min(left, MIB)
            member.write(os.urandom(piece))
            left -= piece
    return path


async def upload_file(
    api: httpx.AsyncClient, conv: str, path: Path, content_type: str
) -> httpx.Response:
    with path.open("rb") as f:
        return await api.post(
            f"/conversations/{conv}/files", files={"file": (path.name, f, content_type)}
        )


def mib(n: float) -> float:
    return round(n / MIB, 1)


async def run_backend(bench: Bench, tmp: Path, size_mib: int, photo_mib: float) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": bench.backend}
    owner = "bench-owner"
    admin = bench.api("bench-admin", roles=["tenant_admin"])
    api = bench.api(owner)
    events = Events()
    try:
        policy = await set_file_policy(admin, max_size_bytes=POLICY_MAX_BYTES)
        assert policy.status_code == 200, policy.text
        created = await api.post("/conversations", json={"kind": "group", "member_ids": ["b"]})
        assert created.status_code in (200, 201), created.text
        conv = created.json()["conversation"]["id"]
        await events.sio.connect(
            bench.url,
            auth={"token": bench.fleet.token(TENANT, owner)},
            transports=["websocket"],
            wait_timeout=10,
        )

        warm = random_zip(tmp / "warm-up.zip", MIB)
        resp = await upload_file(api, conv, warm, "application/zip")
        assert resp.status_code in (200, 201), resp.text
        await events.wait(file_of(resp.json())["id"], within=120)

        big = random_zip(tmp / "big.zip", size_mib * MIB)
        pids = bench.pids()
        with Sampler(pids) as idle:
            await asyncio.sleep(1)
        with Sampler(pids) as during:
            started = time.perf_counter()
            resp = await upload_file(api, conv, big, "application/zip")
            took = time.perf_counter() - started
        assert resp.status_code in (200, 201), resp.text
        uploaded = file_of(resp.json())
        assert uploaded["size_bytes"] == big.stat().st_size
        out["upload"] = {
            "size_mib": mib(big.stat().st_size),
            "seconds": round(took, 2),
            "mib_per_s": round(big.stat().st_size / MIB / took, 1),
        }
        for name in pids:
            base = statistics.median(idle.samples[name])
            peak = max(during.samples[name])
            out["upload"][f"{name}_idle_mib"] = mib(base)
            out["upload"][f"{name}_peak_mib"] = mib(peak)
            out["upload"][f"{name}_growth_mib"] = mib(peak - base)
        # The scan of the big file, for context (clamd reads it all).
        with Sampler(pids) as scanning:
            try:
                at, done = await events.wait(uploaded["id"], within=300)
                out["big_file_processed"] = {
                    "status": done["status"],
                    "seconds_after_upload": round(at - started - took, 1),
                }
            except TimeoutError:
                out["big_file_processed"] = {"status": "still pending after 300 s"}
        out["big_file_processed"]["conversation_peak_mib"] = mib(
            max(scanning.samples["conversation"])
        )

        photo = tmp / "photo.jpg"
        photo.write_bytes(noisy_jpeg(int(photo_mib * 1_000_000)))
        started = time.perf_counter()
        resp = await upload_file(api, conv, photo, "image/jpeg")
        answered = time.perf_counter()
        assert resp.status_code in (200, 201), resp.text
        at, done = await events.wait(file_of(resp.json())["id"], within=300)
        out["preview"] = {
            "photo_mb": round(photo.stat().st_size / 1_000_000, 2),
            "dimensions": f"{done.get('width')}x{done.get('height')}",
            "status": done["status"],
            "has_thumbnail": done.get("has_thumbnail"),
            "upload_s": round(answered - started, 2),
            "time_to_preview_s": round(at - started, 2),
            "processing_after_upload_s": round(at - answered, 2),
        }
    finally:
        if events.sio.connected:
            await events.sio.disconnect()
        await api.aclose()
        await admin.aclose()
    return out


def verdicts(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        up = r.get("upload")
        if not up:
            rows.append([f"{r['backend']}: memory flat during upload", "n/a", "not measured"])
            continue
        worst = max(up["gateway_growth_mib"], up["conversation_growth_mib"])
        rows.append(
            [
                f"{r['backend']}: RSS < idle + {RSS_TARGET_MIB} MiB during a "
                f"{up['size_mib']:.0f} MiB upload",
                f"gateway +{up['gateway_growth_mib']} MiB, "
                f"conversation +{up['conversation_growth_mib']} MiB",
                "meets" if worst < RSS_TARGET_MIB else "MISSES",
            ]
        )
    return rows


def write(out_dir: Path, facts: dict[str, str], results: list[dict[str, Any]]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now(UTC).strftime('%Y-%m-%d-%H%M%S')}-files.md"
    lines = ["# Files benchmark: upload throughput and memory, time to preview", ""]
    lines += ["## Machine and versions", "", "| fact | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "## Targets (from issue 13)", "", "| target | measured | verdict |"]
    lines += ["| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in verdicts(results)]
    lines += ["", "## Every number", ""]
    for r in results:
        lines += [f"### {r['backend']}", "", "| measure | value |", "| --- | --- |"]
        for section, values in r.items():
            if isinstance(values, dict):
                lines += [f"| {section}.{k} | {v} |" for k, v in values.items()]
            elif section != "backend":
                lines += [f"| {section} | {values} |"]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="gridfs,s3")
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--photo-mb", type=float, default=5.0)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("confab_devservers", "confab_devfleet", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    facts = machine_facts()
    facts["secantus"] = os.environ.get("CONFAB_SECANTUS_BIN") or (
        RUST_SECANTUS_DEFAULT if Path(RUST_SECANTUS_DEFAULT).exists() else "python -m secantus"
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="confab-bench-files-") as tmp:
        for backend in args.backends.split(","):
            root = Path(tmp) / backend
            root.mkdir()
            log.info("files bench on %s", backend)
            try:
                with fleet_on(backend, root / "fleet") as bench:
                    result = asyncio.run(run_backend(bench, root, args.size_mib, args.photo_mb))
            except Exception as exc:
                log.exception("files bench on %s failed", backend)
                result = {"backend": backend, "error": f"{type(exc).__name__}: {exc}"}
            log.info("%s -> %s", backend, json.dumps(result))
            results.append(result)
    print(f"wrote {write(Path(args.out), facts, results)}")


if __name__ == "__main__":
    main()
