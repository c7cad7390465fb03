"""Measures the two SecantusDB servers on Confab's own write path.

Usage: uv run python bench/mongo_servers.py [--rust PATH_TO_secantusd-rs] [--n 300]

Each run starts a fresh server, then times what SendMessage does per message:
one transaction with a find_one_and_update on the conversation, an insert of
the message and an insert of its outbox record; then a page read of 50.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pymongo import AsyncMongoClient

from confab_devservers import MongoServer


async def workload(url: str, n: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    db = client["bench"]
    await db["messages"].create_index([("tenant_id", 1), ("conversation_id", 1), ("seq", 1)])
    await db["conversations"].insert_one({"_id": "c1", "tenant_id": "t", "last_seq": 0})
    lat: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        async with client.start_session() as session:

            async def txn(s: object, i: int = i) -> None:
                conv = await db["conversations"].find_one_and_update(
                    {"_id": "c1", "tenant_id": "t"}, {"$inc": {"last_seq": 1}}, session=s
                )
                assert conv is not None
                await db["messages"].insert_one(
                    {"tenant_id": "t", "conversation_id": "c1", "seq": i, "text": "x" * 100},
                    session=s,
                )
                await db["outbox"].insert_one({"k": "c1", "payload": b"x" * 200}, session=s)

            await session.with_transaction(txn)
        lat.append(time.perf_counter() - started)
    reads: list[float] = []
    for _ in range(50):
        started = time.perf_counter()
        cursor = db["messages"].find({"tenant_id": "t", "conversation_id": "c1"}).sort("seq", -1)
        docs = await cursor.limit(50).to_list()
        assert len(docs) == 50
        reads.append(time.perf_counter() - started)
    await client.close()
    lat.sort()
    reads.sort()
    return {
        "send_txn_p50_ms": statistics.median(lat) * 1000,
        "send_txn_p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "sends_per_s": n / sum(lat),
        "page50_p50_ms": statistics.median(reads) * 1000,
    }


def run(label: str, binary: str | None, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = MongoServer(Path(tmp), server_binary=binary)
        server.start()
        try:
            result = asyncio.run(workload(server.url, n))
        finally:
            server.stop()
    cells = ", ".join(f"{k}={v:.2f}" for k, v in result.items())
    print(f"{label}: start={server.startup_seconds:.2f}s, {cells}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rust", default=None)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    run("python secantus", None, args.n)
    if args.rust:
        run("rust secantusd-rs", args.rust, args.n)


if __name__ == "__main__":
    main()
