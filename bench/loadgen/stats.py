"""What a run records: latencies in an HdrHistogram, deliveries, losses, repeats, order."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

# 1 microsecond .. 120 s, 3 significant digits; values are recorded in microseconds.
_LOWEST_US = 1
_HIGHEST_US = 120_000_000


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, 3)


def summarize(hist: HdrHistogram) -> dict[str, float]:
    """Milliseconds at the usual percentiles, and the count."""
    if hist.get_total_count() == 0:
        return {"count": 0}
    return {
        "count": hist.get_total_count(),
        "p50_ms": hist.get_value_at_percentile(50) / 1000,
        "p90_ms": hist.get_value_at_percentile(90) / 1000,
        "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "p999_ms": hist.get_value_at_percentile(99.9) / 1000,
        "max_ms": hist.get_max_value() / 1000,
    }


def record_seconds(hist: HdrHistogram, seconds: float) -> None:
    hist.record_value(min(max(int(seconds * 1_000_000), _LOWEST_US), _HIGHEST_US))


@dataclass
class Deliveries:
    """Every delivery of every receiver, checked against what the senders had acked.

    A receiver is one socket; per (receiver, conversation) it keeps the set of seqs it
    has, so a seq seen again is a duplicate and a seq below the highest seen (and new)
    is an order violation. Losses are computed at the end: every acked seq of a
    conversation that a receiver listening to it never got.
    """

    latency: HdrHistogram = field(default_factory=new_histogram)
    # client_msg_id -> the loop time the open-loop schedule meant to send it at
    intended: dict[str, float] = field(default_factory=dict)
    seen: dict[tuple[int, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    highest: dict[tuple[int, str], int] = field(default_factory=dict)
    acked: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    count: int = 0
    duplicates: int = 0
    order_violations: int = 0
    unknown: int = 0
    recording: bool = True
    first_at: float | None = None
    last_at: float | None = None

    def on_message(self, receiver: int, data: dict[str, Any], now: float) -> None:
        conv = str(data.get("conversation_id", ""))
        seq = int(data.get("seq", 0))
        key = (receiver, conv)
        got = self.seen[key]
        if seq in got:
            self.duplicates += 1
            return
        got.add(seq)
        if seq < self.highest.get(key, 0):
            self.order_violations += 1
        else:
            self.highest[key] = seq
        self.count += 1
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        sent_at = self.intended.get(str(data.get("client_msg_id", "")))
        if sent_at is None:
            self.unknown += 1
        elif self.recording:
            record_seconds(self.latency, now - sent_at)

    def on_replayed(self, receiver: int, conv: str, seqs: list[int]) -> None:
        """Messages a ``sync`` returned: they fill gaps, overlap with live ones by design."""
        got = self.seen[(receiver, conv)]
        for seq in seqs:
            if seq not in got:
                got.add(seq)
                self.highest[(receiver, conv)] = max(self.highest.get((receiver, conv), 0), seq)

    def losses(self, listeners: dict[str, list[int]]) -> int:
        """``listeners``: conversation -> the receivers that should have every message."""
        lost = 0
        for conv, seqs in self.acked.items():
            for receiver in listeners.get(conv, []):
                lost += len(seqs - self.seen.get((receiver, conv), set()))
        return lost

    def expected(self, listeners: dict[str, list[int]]) -> int:
        return sum(len(seqs) * len(listeners.get(c, [])) for c, seqs in self.acked.items())


class ProcessMeter:
    """CPU seconds and RSS of named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int | None], include_self: bool = True) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self._self = psutil.Process() if include_self else None
        self._cpu0: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.rss_mib: dict[str, float] = {}
        self.wall = 0.0
        self._t0 = 0.0
        self._self0 = 0.0
        self.loadgen_cpu = 0.0

    @staticmethod
    def _cpu_of(p: psutil.Process) -> float:
        total = 0.0
        for proc in [p, *p.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def _own_cpu(self) -> float:
        """The load generator itself (not its children: the fleet is metered apart)."""
        if self._self is None:
            return 0.0
        t = self._self.cpu_times()
        return float(t.user + t.system)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._cpu0 = {n: self._cpu_of(p) for n, p in self.procs.items()}
        self._self0 = self._own_cpu()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = {n: self._cpu_of(p) - self._cpu0[n] for n, p in self.procs.items()}
        self.rss_mib = {n: rss_bytes(p) / 2**20 for n, p in self.procs.items()}
        self.loadgen_cpu = self._own_cpu() - self._self0


def rss_bytes(p: psutil.Process) -> int:
    total = 0
    for proc in [p, *p.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def buckets(text: str, metric: str, match: str = "") -> dict[float, float]:
    """Cumulative bucket counts of one Prometheus histogram, summed over the series
    whose labels contain ``match``."""
    out: dict[float, float] = defaultdict(float)
    prefix = f"{metric}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix) or match not in line:
            continue
        labels, _, value = line.rpartition(" ")
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        out[float("inf") if le == "+Inf" else float(le)] += float(value)
    return dict(out)


def bucket_quantiles(
    before: dict[float, float], after: dict[float, float]
) -> dict[str, float | str]:
    """p50/p90/p99 of what a histogram recorded between two scrapes, as the upper
    bound of the bucket each falls in (so "≤ x ms")."""
    delta = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return {"count": 0}
    out: dict[str, float | str] = {"count": total}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        le = next(le for le, n in delta if n >= q * total)
        out[f"{name}_le_ms"] = "inf" if le == float("inf") else round(le * 1000, 1)
    return out
