from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from confab_devservers import MongoServer


@pytest_asyncio.fixture
async def client(mongo_server: MongoServer) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_server.url, serverSelectionTimeoutMS=5000
    )
    try:
        yield c
    finally:
        await c.close()


@pytest.mark.asyncio
async def test_hello_reports_replica_set_primary(client: AsyncMongoClient[dict[str, Any]]) -> None:
    hello = await client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["setName"] == MongoServer.replica_set
    assert "logicalSessionTimeoutMinutes" in hello  # sessions, hence transactions


@pytest.mark.asyncio
async def test_transaction_commit_and_abort(client: AsyncMongoClient[dict[str, Any]]) -> None:
    coll = client.confab_test.tx_accounts
    await coll.delete_many({})
    await coll.insert_many([{"_id": "a", "balance": 100}, {"_id": "b", "balance": 0}])

    async with client.start_session() as session, await session.start_transaction():
        await coll.update_one({"_id": "a"}, {"$inc": {"balance": -30}}, session=session)
        await coll.update_one({"_id": "b"}, {"$inc": {"balance": 30}}, session=session)
        # Uncommitted writes are visible inside the transaction only.
        inside = await coll.find_one({"_id": "b"}, session=session)
        outside = await coll.find_one({"_id": "b"})
        assert inside is not None and inside["balance"] == 30
        assert outside is not None and outside["balance"] == 0

    balances = {d["_id"]: d["balance"] async for d in coll.find()}
    assert balances == {"a": 70, "b": 30}

    # Abort explicitly...
    async with client.start_session() as session:
        await session.start_transaction()
        await coll.update_one({"_id": "a"}, {"$inc": {"balance": -70}}, session=session)
        await coll.insert_one({"_id": "c", "balance": 70}, session=session)
        await session.abort_transaction()

    # ...and by an exception escaping the transaction block.
    with pytest.raises(RuntimeError):
        async with client.start_session() as session, await session.start_transaction():
            await coll.insert_one({"_id": "d", "balance": 1}, session=session)
            raise RuntimeError("roll back")

    balances = {d["_id"]: d["balance"] async for d in coll.find()}
    assert balances == {"a": 70, "b": 30}


@pytest.mark.asyncio
async def test_with_transaction_helper(client: AsyncMongoClient[dict[str, Any]]) -> None:
    coll = client.confab_test.tx_helper
    await coll.delete_many({})

    async def body(session: Any) -> None:
        await coll.insert_one({"_id": 1}, session=session)
        await coll.insert_one({"_id": 2}, session=session)

    async with client.start_session() as session:
        await session.with_transaction(body)
    assert await coll.count_documents({}) == 2


@pytest.mark.asyncio
async def test_data_survives_stop_start_and_kill(mongo_server: MongoServer) -> None:
    port = mongo_server.port

    async def write(doc_id: str) -> None:
        c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_server.url, serverSelectionTimeoutMS=5000
        )
        try:
            async with c.start_session() as session, await session.start_transaction():
                await c.confab_test.durable.insert_one({"_id": doc_id}, session=session)
        finally:
            await c.close()

    async def ids() -> set[str]:
        c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_server.url, serverSelectionTimeoutMS=5000
        )
        try:
            return {d["_id"] async for d in c.confab_test.durable.find()}
        finally:
            await c.close()

    await write("before-stop")
    mongo_server.stop()
    assert not mongo_server.running
    mongo_server.start()
    assert mongo_server.port == port
    assert "before-stop" in await ids()

    await write("before-kill")
    mongo_server.kill()
    mongo_server.start()
    assert {"before-stop", "before-kill"} <= await ids()


@pytest.mark.asyncio
async def test_client_reconnects_across_restart(
    mongo_server: MongoServer, client: AsyncMongoClient[dict[str, Any]]
) -> None:
    coll = client.confab_test.reconnect
    await coll.insert_one({"x": 1})
    await asyncio.to_thread(mongo_server.restart)
    # Same long-lived client, as a service would hold it.
    await coll.insert_one({"x": 2})
    assert await coll.count_documents({}) >= 2


@pytest.mark.asyncio
async def test_unique_index(client: AsyncMongoClient[dict[str, Any]]) -> None:
    coll = client.confab_test.users
    await coll.drop()
    await coll.create_index([("tenant", 1), ("email", 1)], unique=True)
    await coll.insert_one({"tenant": "t1", "email": "a@x"})
    await coll.insert_one({"tenant": "t2", "email": "a@x"})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"tenant": "t1", "email": "a@x"})


@pytest.mark.asyncio
async def test_find_one_and_update_upsert(client: AsyncMongoClient[dict[str, Any]]) -> None:
    coll = client.confab_test.counters
    await coll.drop()
    first = await coll.find_one_and_update(
        {"_id": "seq"},
        {"$inc": {"n": 1}, "$setOnInsert": {"created": True}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    second = await coll.find_one_and_update(
        {"_id": "seq"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert first == {"_id": "seq", "n": 1, "created": True}
    assert second == {"_id": "seq", "n": 2, "created": True}


@pytest.mark.asyncio
async def test_change_stream(client: AsyncMongoClient[dict[str, Any]]) -> None:
    coll = client.confab_test.events
    await coll.drop()
    async with await coll.watch(full_document="updateLookup") as stream:
        await coll.insert_one({"_id": 1, "body": "hi"})
        await coll.update_one({"_id": 1}, {"$set": {"body": "edited"}})
        first = await asyncio.wait_for(stream.next(), 10)
        second = await asyncio.wait_for(stream.next(), 10)
    assert first["operationType"] == "insert"
    assert first["fullDocument"] == {"_id": 1, "body": "hi"}
    assert second["operationType"] == "update"
    assert second["fullDocument"]["body"] == "edited"


@pytest.mark.asyncio
async def test_text_index_is_not_supported(client: AsyncMongoClient[dict[str, Any]]) -> None:
    # Documents a SecantusDB limitation: search needs another approach
    # (e.g. $regex or a dedicated index). If this starts failing, Secantus
    # gained text indexes.
    with pytest.raises(OperationFailure, match=r"text indexes.*not supported"):
        await client.confab_test.search.create_index([("body", "text")])
