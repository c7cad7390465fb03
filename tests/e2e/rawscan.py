"""Reads what the fleet stored, byte for byte, the way someone holding a backup would.

MongoDB: every document of every collection of every database, as raw BSON.
Kafka: every record of every topic from the first offset, values and headers.
Redis: every key of every type, read with the command for its type.

Each scan returns the places where any of the given needles occurs, so a test can
say exactly which collection, topic or key still holds plaintext.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

SYSTEM_DATABASES = {"admin", "config", "local"}


def _hits(where: str, blob: bytes, needles: Iterable[bytes]) -> list[str]:
    return [f"{where}: {needle.decode(errors='replace')!r}" for needle in needles if needle in blob]


async def scan_mongo(url: str, needles: list[bytes]) -> tuple[int, list[str]]:
    """(documents read, hits)."""
    client: AsyncMongoClient[RawBSONDocument] = AsyncMongoClient(
        url, document_class=RawBSONDocument
    )
    found: list[str] = []
    read = 0
    try:
        for db_name in await client.list_database_names():
            if db_name in SYSTEM_DATABASES:
                continue
            db = client[db_name]
            for coll in await db.list_collection_names():
                async for doc in db[coll].find({}):
                    read += 1
                    found += _hits(f"mongo {db_name}.{coll}", doc.raw, needles)
    finally:
        await client.close()
    return read, found


async def scan_kafka(bootstrap: str, needles: list[bytes]) -> tuple[int, list[str]]:
    """(records read, hits), reading every partition of every topic to its end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    parts = [
        TopicPartition(topic["topic"], p["partition"])
        for topic in described
        if not topic["topic"].startswith("__")
        for p in topic["partitions"]
    ]
    if not parts:
        raise AssertionError("no Kafka topic to scan")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[str] = []
    read = 0
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=2000)
            for tp, records in batches.items():
                for rec in records:
                    read += 1
                    blob = (
                        (rec.key or b"") + (rec.value or b"") + b"".join(v for _, v in rec.headers)
                    )
                    found += _hits(f"kafka {tp.topic}", blob, needles)
                    if rec.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return read, found


async def _redis_value(client: aioredis.Redis, key: bytes) -> bytes:
    # Read per type rather than DUMP: DUMP may LZF-compress a long string, which
    # would hide plaintext from a byte search.
    kind = (await client.type(key)).decode()
    if kind == "string":
        return bytes(await client.get(key) or b"")
    if kind == "hash":
        pairs = await client.hgetall(key)
        return b"".join(k + v for k, v in pairs.items())
    if kind == "list":
        return b"".join(await client.lrange(key, 0, -1))
    if kind == "set":
        return b"".join(await client.smembers(key))
    if kind == "zset":
        return b"".join(await client.zrange(key, 0, -1))
    if kind == "stream":
        entries = await client.xrange(key)
        return b"".join(k + v for _, fields in entries for k, v in fields.items())
    return b""


async def scan_redis(url: str, needles: list[bytes]) -> tuple[int, list[str]]:
    """(keys read, hits); key names are searched too."""
    client = aioredis.from_url(url)
    found: list[str] = []
    read = 0
    try:
        async for key in client.scan_iter(count=1000):
            read += 1
            found += _hits(f"redis {key!r}", key + await _redis_value(client, key), needles)
    finally:
        await client.aclose()
    return read, found
