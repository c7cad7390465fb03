"""Runs the benchmark suite and writes bench/results/<date>.md.

Usage (from the repository root):
    uv run python -m bench.run --profile short      # `make bench`, a few minutes
    uv run python -m bench.run --profile full       # `make bench-full`, long
    uv run python -m bench.run --only rooms10,bare  # some scenarios of a profile

Confab runs as its whole fleet of real processes (libs/devfleet) on the Rust
SecantusDB server when one is found (CONFAB_SECANTUS_BIN, or /tmp/secrs/bin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from .loadgen import scenarios as sc
from .loadgen.targets import BareSocketIOTarget, ConfabTarget, Target, raise_fd_limit
from .report import write_report

log = logging.getLogger("bench")

# Each profile: scenario name -> parameters. `short` is `make bench` (under 5 minutes on
# 2 cores); `full` is what the targets are stated at.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "short": {
        # First, on a fresh gateway: RSS it has freed since is reused, not grown.
        "idle": {"n": 1000},
        "direct": {"pairs": 20, "rate": 50, "duration": 10},
        "rooms10": {"size": 10, "rooms": 10, "rate": 100, "duration": 10},
        "rooms100": {"size": 100, "rooms": 2, "rate": 10, "duration": 10},
        "broadcast": {"members": 1000, "messages": 10, "rate": 1},
        "storm": {"clients": 500, "room_size": 10, "rate": 20, "window": 10},
        "history": {
            "preload": 100_000,
            "page_rate": 20,
            "duration": 10,
            "dm_pairs": 10,
            "dm_rate": 20,
        },
        # The baselines run the rooms10 and rooms100 scenarios with the same parameters.
        "bare": {"size": 10, "rooms": 10, "rate": 100, "duration": 10},
        "bare100": {"size": 100, "rooms": 2, "rate": 10, "duration": 10},
    },
    "full": {
        # First, on a fresh gateway: RSS it has freed since is reused, not grown.
        "idle": {"n": 50_000},
        "direct": {"pairs": 500, "rate": 1000, "duration": 60},
        "rooms10": {"size": 10, "rooms": 100, "rate": 1000, "duration": 60},
        "rooms10_2k": {"size": 10, "rooms": 200, "rate": 2000, "duration": 60},
        "rooms100": {"size": 100, "rooms": 10, "rate": 100, "duration": 60},
        "broadcast": {"members": 5000, "messages": 60, "rate": 1},
        "storm": {"clients": 5000, "room_size": 10, "rate": 100, "window": 10},
        "history": {
            "preload": 1_000_000,
            "page_rate": 200,
            "duration": 60,
            "dm_pairs": 200,
            "dm_rate": 500,
        },
        "bare": {"size": 10, "rooms": 100, "rate": 1000, "duration": 60},
        "bare100": {"size": 100, "rooms": 10, "rate": 100, "duration": 60},
    },
}


async def run_confab(target: ConfabTarget, plan: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    steps = {
        "idle": lambda p: sc.idle_connections(target, p["n"]),
        "direct": lambda p: sc.direct_messages(target, p["pairs"], p["rate"], p["duration"]),
        "rooms10": lambda p: sc.rooms_of(target, p["size"], p["rooms"], p["rate"], p["duration"]),
        "rooms10_2k": lambda p: sc.rooms_of(
            target, p["size"], p["rooms"], p["rate"], p["duration"]
        ),
        "rooms100": lambda p: sc.rooms_of(target, p["size"], p["rooms"], p["rate"], p["duration"]),
        "broadcast": lambda p: sc.broadcast(target, p["members"], p["messages"], p["rate"]),
        "storm": lambda p: sc.reconnect_storm(
            target, p["clients"], p["room_size"], p["rate"], p["window"]
        ),
        "history": lambda p: sc.history_under_load(
            target, p["preload"], p["page_rate"], p["duration"], p["dm_pairs"], p["dm_rate"]
        ),
    }
    for name, params in plan.items():
        if name not in steps:
            continue
        log.info("confab: %s %s", name, params)
        started = time.perf_counter()
        try:
            out[name] = await steps[name](params)
        except Exception as exc:
            log.exception("scenario %s failed", name)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name]["params"] = params
        out[name]["scenario_s"] = round(time.perf_counter() - started, 1)
        log.info("confab: %s -> %s", name, json.dumps(out[name], default=str))
    return out


async def run_bare(target: Target, params: dict[str, Any]) -> dict[str, Any]:
    result = await sc.rooms_of(
        target, params["size"], params["rooms"], params["rate"], params["duration"]
    )
    result["params"] = params
    return result


def machine_facts() -> dict[str, str]:
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "n/a"

    cpu = "n/a"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python-socketio / engineio": (
            f"{version('python-socketio')} / {version('python-engineio')}"
        ),
        "aiohttp (load generator)": version("aiohttp"),
        "git commit": cmd("git", "rev-parse", "--short", "HEAD")
        + (" (dirty work tree)" if cmd("git", "status", "--porcelain") else ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--workdir", default="")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SCENARIO.PARAM=VALUE",
        help="override one parameter of the profile, e.g. rooms10.rate=100",
    )
    parser.add_argument(
        "--py-spy", default="", help="sample the Python processes into this directory"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("confab_devservers", "confab_devfleet", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    plan = dict(PROFILES[args.profile])
    if args.only:
        wanted = set(args.only.split(","))
        plan = {k: v for k, v in plan.items() if k in wanted}
    for override in args.set:
        key, _, value = override.partition("=")
        scenario, _, param = key.partition(".")
        if scenario not in plan or param not in plan[scenario]:
            parser.error(f"--set {override}: no such scenario parameter")
        plan[scenario] = {**plan[scenario], param: type(plan[scenario][param])(value)}
    if args.py_spy:
        sc.PROFILE_DIR = Path(args.py_spy)
    fds = raise_fd_limit()
    facts = machine_facts()
    facts["open files limit"] = str(fds)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="confab-bench-") as tmp:
        root = Path(args.workdir or tmp)
        # The baseline first, on a quiet machine, then Confab.
        for name in [k for k in plan if k.startswith("bare")]:
            bare = BareSocketIOTarget(root / name)
            try:
                log.info("%s (python-socketio): %s", name, plan[name])
                results[name] = asyncio.run(run_bare(bare, plan[name]))
                log.info("%s -> %s", name, json.dumps(results[name], default=str))
            finally:
                bare.stop()
        confab_plan = {k: v for k, v in plan.items() if not k.startswith("bare")}
        if confab_plan:
            confab = ConfabTarget(root / "fleet", gateways=args.gateways)
            facts.update(confab.facts())
            try:
                results["confab"] = asyncio.run(run_confab(confab, confab_plan))
            finally:
                confab.stop()
    facts["suite wall time"] = f"{time.perf_counter() - started:.0f} s"
    facts["profile"] = args.profile
    path = write_report(Path(args.out), args.profile, facts, plan, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
