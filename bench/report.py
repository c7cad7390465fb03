"""Writes one run's results as markdown: facts, configuration, targets, every number."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CENTRIFUGO_NOTE = (
    "not run: the Go module proxy answers `403 This module version is not available` for "
    "every version of `github.com/centrifugal/centrifugo/v6` (and v5, and "
    "`github.com/centrifugal/centrifuge`), so it cannot be built here"
)


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


def _verdict(ok: bool | None, at_target_scale: bool) -> str:
    if ok is None:
        return "not measured"
    word = "meets" if ok else "MISSES"
    return word if at_target_scale else f"{word} (at reduced scale, not the target's)"


def targets(profile: str, plan: dict[str, Any], res: dict[str, Any]) -> list[list[str]]:
    c = res.get("confab", {})
    bare = res.get("bare", {})
    rows: list[list[str]] = []

    r10 = c.get("rooms10", {})
    p99 = _get(r10, "latency", "p99_ms")
    rate = _get(r10, "rate")
    ok = None if p99 is None else p99 <= 25 and not r10.get("lost")
    rows.append(
        [
            "p99 ≤ 25 ms at 1,000 msg/s, rooms of 10",
            f"p99 {_fmt(p99, ' ms')} at {_fmt(rate)} msg/s, lost {_fmt(r10.get('lost'))}",
            _verdict(ok, rate is not None and rate >= 1000),
        ]
    )
    r2k = c.get("rooms10_2k", {})
    p99 = _get(r2k, "latency", "p99_ms")
    ok = None if p99 is None else p99 <= 100 and not r2k.get("lost")
    rows.append(
        [
            "≥ 2,000 msg/s with p99 ≤ 100 ms",
            f"p99 {_fmt(p99, ' ms')} at {_fmt(_get(r2k, 'rate'))} msg/s"
            if r2k
            else "not in this profile",
            _verdict(ok, True),
        ]
    )
    ours = _get(r10, "deliveries_per_fanout_cpu_s")
    theirs = _get(bare, "deliveries_per_fanout_cpu_s")
    ok = None if not (ours and theirs) else ours >= theirs
    rows.append(
        [
            "deliveries per gateway CPU-second ≥ bare python-socketio",
            f"Confab {_fmt(ours)} vs bare {_fmt(theirs)} "
            f"(ratio {_fmt(ours / theirs if ours and theirs else None)}x)",
            _verdict(ok, True),
        ]
    )
    rows.append(["… and ≥ 0.5x Centrifugo", CENTRIFUGO_NOTE, "not measured"])
    bc = c.get("broadcast", {})
    p99 = _get(bc, "latency", "p99_ms")
    size = _get(bc, "room_size")
    ok = None if p99 is None else p99 <= 100 and not bc.get("lost")
    rows.append(
        [
            "broadcast to a 5,000-member room: p99 ≤ 100 ms",
            f"p99 {_fmt(p99, ' ms')} to {_fmt(size)} members, lost {_fmt(bc.get('lost'))}",
            _verdict(ok, size is not None and size >= 5000),
        ]
    )
    idle = c.get("idle", {})
    kib = idle.get("kib_per_connection")
    n = idle.get("connections")
    rows.append(
        [
            "50,000 idle connections ≤ 24 KiB each",
            f"{_fmt(kib, ' KiB')} each over {_fmt(n)} connections",
            _verdict(None if kib is None else kib <= 24, n is not None and n >= 50_000),
        ]
    )
    hist = c.get("history", {})
    p99 = _get(hist, "page", "p99_ms")
    pre = hist.get("preload")
    rows.append(
        [
            "history page of 50: p99 ≤ 10 ms at 1M messages",
            f"p99 {_fmt(p99, ' ms')} over {_fmt(pre)} preloaded, "
            f"{_fmt(hist.get('page_rate'))} pages/s, while 1:1 at {_fmt(hist.get('rate'))} msg/s",
            _verdict(None if p99 is None else p99 <= 10, pre is not None and pre >= 1_000_000),
        ]
    )
    st = c.get("storm", {})
    p99 = _get(st, "catchup", "p99_ms")
    lost = st.get("lost")
    ok = None if p99 is None else p99 <= 2000 and lost == 0 and not st.get("sync_errors")
    rows.append(
        [
            "reconnect storm: zero loss, catch-up p99 ≤ 2 s",
            f"{_fmt(st.get('clients'))} clients in {_fmt(st.get('window_s'))} s: lost "
            f"{_fmt(lost)}, sync errors {_fmt(st.get('sync_errors'))}, catch-up p99 "
            f"{_fmt(p99, ' ms')}",
            _verdict(ok, (st.get("clients") or 0) >= 5000),
        ]
    )
    return rows


def _scenario_table(name: str, r: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if "error" in r:
        lines += [f"**failed**: `{r['error']}`", ""]
    lines += ["| key | value |", "| --- | --- |"]
    for k, v in r.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={_fmt(b)}" for a, b in v.items()) or "-"
        lines.append(f"| {k} | {_fmt(v) if not isinstance(v, str) else v} |")
    return [*lines, ""]


def write_report(
    out_dir: Path,
    profile: str,
    facts: dict[str, str],
    plan: dict[str, Any],
    results: dict[str, Any],
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    path = out_dir / f"{stamp}.md"
    if path.exists():
        path = out_dir / f"{datetime.now(UTC).strftime('%Y-%m-%d-%H%M%S')}.md"
    lines = [f"# Benchmark run {stamp} ({profile} profile)", ""]
    if profile != "full":
        lines += [
            "**Short profile**: reduced rates, sizes and durations so `make bench` ends in a "
            "few minutes. Numbers are indicative; the verdicts say when a target is stated at "
            "a larger scale than was run.",
            "",
        ]
    lines += ["## Machine and versions", "", "| fact | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "## Targets (from the issue)", "", "| target | measured | verdict |"]
    lines += ["| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(profile, plan, results)]
    lines += ["", "## Fan-out per CPU-second, as ratios to Confab", ""]
    lines += [
        "Same scenario, same rate, same clients. Confab's gateway CPU only, and its whole "
        "fleet (gateway + services + Kafka + MongoDB + Redis) for context. At low rates "
        "fixed costs (heartbeats, Kafka polling) weigh more.",
        "",
    ]
    for conf, base, label in (
        ("rooms10", "bare", "rooms of 10"),
        ("rooms100", "bare100", "rooms of 100"),
    ):
        ours = _get(results, "confab", conf, "deliveries_per_fanout_cpu_s")
        theirs = _get(results, base, "deliveries_per_fanout_cpu_s")
        fleet = _get(results, "confab", conf, "deliveries_per_fleet_cpu_s")
        lines += [
            f"**{label}** ({_fmt(_get(results, 'confab', conf, 'rate'))} msg/s)",
            "",
            "| system | deliveries per CPU-second | ratio to Confab gateway |",
            "| --- | --- | --- |",
            f"| Confab (gateway) | {_fmt(ours)} | 1.00 |",
            f"| Confab (whole fleet) | {_fmt(fleet)} | "
            f"{_fmt(fleet / ours if fleet and ours else None)} |",
            f"| bare python-socketio | {_fmt(theirs)} | "
            f"{_fmt(theirs / ours if theirs and ours else None)} |",
            "| Centrifugo | n/a | not built (see the targets) |",
            "",
        ]
    lines += [
        "## Configuration",
        "",
        "```json",
        json.dumps(plan, indent=2),
        "```",
        "",
        "## Every number",
        "",
    ]
    for name, r in results.get("confab", {}).items():
        lines += _scenario_table(f"confab: {name}", r)
    for name in ("bare", "bare100"):
        if name in results:
            size = _get(results, name, "room_size")
            lines += _scenario_table(f"bare python-socketio: rooms of {size}", results[name])
    path.write_text("\n".join(lines) + "\n")
    return path
