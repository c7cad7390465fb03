"""TenantCollection against a real MongoDB-wire server: every call is tenant scoped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from confab_core import mongo
from confab_core.mongo import Doc, TenantCollection, tenant_collection
from confab_devservers import MongoServer


@pytest_asyncio.fixture
async def client(mongo_server: MongoServer) -> AsyncIterator[AsyncMongoClient[Doc]]:
    c = mongo.connect(mongo_server.url, "core-tests")
    try:
        yield c
    finally:
        await c.close()


@pytest_asyncio.fixture
async def raw(client: AsyncMongoClient[Doc]) -> AsyncIterator[AsyncCollection[Doc]]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    db = client[name]
    yield db["items"]
    await client.drop_database(name)


async def all_docs(raw: AsyncCollection[Doc]) -> list[Doc]:
    return [d async for d in raw.find({}).sort("_id", 1)]


def test_empty_tenant_is_refused(raw: AsyncCollection[Doc]) -> None:
    with pytest.raises(ValueError):
        TenantCollection(raw, "")


@pytest.mark.asyncio
async def test_insert_stamps_tenant(raw: AsyncCollection[Doc]) -> None:
    a = TenantCollection(raw, "A")
    await a.insert_one({"_id": "1", "name": "x"})
    assert await all_docs(raw) == [{"_id": "1", "name": "x", "tenant_id": "A"}]
    # Naming its own tenant is fine; naming another is not.
    await a.insert_one({"_id": "2", "tenant_id": "A"})
    with pytest.raises(ValueError):
        await a.insert_one({"_id": "3", "tenant_id": "B"})
    assert [d["_id"] for d in await all_docs(raw)] == ["1", "2"]


@pytest.mark.asyncio
async def test_tenants_do_not_see_each_other(raw: AsyncCollection[Doc]) -> None:
    a = tenant_collection(raw.database, raw.name, "A")
    b = tenant_collection(raw.database, raw.name, "B")
    for i in range(3):
        await a.insert_one({"_id": f"a{i}", "name": "same", "n": i})
    await b.insert_one({"_id": "b0", "name": "same", "n": 0})

    assert (await a.find_one({"name": "same", "n": 0}))["_id"] == "a0"  # type: ignore[index]
    assert (await b.find_one({"name": "same", "n": 0}))["_id"] == "b0"  # type: ignore[index]
    assert await b.find_one({"_id": "a0"}) is None
    assert [d["_id"] async for d in a.find({"name": "same"}, sort=[("n", -1)])] == [
        "a2",
        "a1",
        "a0",
    ]
    assert [d["_id"] async for d in b.find({"name": "same"})] == ["b0"]
    assert [d["_id"] async for d in a.find({}, sort=[("n", 1)], limit=2)] == ["a0", "a1"]
    projected = await a.find_one({"_id": "a1"}, projection={"n": 1})
    assert projected == {"_id": "a1", "n": 1}
    assert await a.count({"name": "same"}) == 3
    assert await b.count({}) == 1


@pytest.mark.asyncio
async def test_updates_are_scoped(raw: AsyncCollection[Doc]) -> None:
    a = TenantCollection(raw, "A")
    b = TenantCollection(raw, "B")
    await a.insert_one({"_id": "a", "name": "same", "n": 0})
    await b.insert_one({"_id": "b", "name": "same", "n": 0})

    result = await b.update_one({"_id": "a"}, {"$set": {"n": 99}})
    assert result.matched_count == 0
    result = await a.update_one({"name": "same"}, {"$inc": {"n": 1}})
    assert result.modified_count == 1
    assert await b.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}}) is None
    after = await a.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}})
    assert after is not None and after["n"] == 2  # returns the document after the update

    await a.insert_one({"_id": "a2", "name": "same", "n": 0})
    result = await a.update_many({"name": "same"}, {"$inc": {"n": 10}})
    assert result.modified_count == 2  # both of A's, none of B's

    by_id = {d["_id"]: d for d in await all_docs(raw)}
    assert by_id["a"]["n"] == 12
    assert by_id["a2"]["n"] == 10
    assert by_id["b"]["n"] == 0


@pytest.mark.asyncio
async def test_upserts_land_in_the_callers_tenant(raw: AsyncCollection[Doc]) -> None:
    a = TenantCollection(raw, "A")
    b = TenantCollection(raw, "B")
    await a.update_one({"user_id": "u"}, {"$set": {"v": 1}}, upsert=True)
    await b.update_one({"user_id": "u"}, {"$set": {"v": 2}}, upsert=True)
    created = await b.find_one_and_update({"key": "k"}, {"$set": {"v": 3}}, upsert=True)
    assert created is not None and created["tenant_id"] == "B"
    rows = sorted(
        (d["tenant_id"], d.get("user_id", d.get("key")), d["v"]) for d in await all_docs(raw)
    )
    assert rows == [("A", "u", 1), ("B", "k", 3), ("B", "u", 2)]


@pytest.mark.asyncio
async def test_delete_is_scoped(raw: AsyncCollection[Doc]) -> None:
    a = TenantCollection(raw, "A")
    b = TenantCollection(raw, "B")
    await a.insert_one({"_id": "a", "name": "same"})
    await b.insert_one({"_id": "b", "name": "same"})
    assert (await b.delete_many({"_id": "a"})).deleted_count == 0
    assert (await a.delete_many({"name": "same"})).deleted_count == 1
    assert [d["_id"] for d in await all_docs(raw)] == ["b"]


@pytest.mark.asyncio
async def test_every_method_refuses_a_filter_naming_another_tenant(
    raw: AsyncCollection[Doc],
) -> None:
    await raw.insert_one({"_id": "b", "tenant_id": "B"})
    a = TenantCollection(raw, "A")
    other: dict[str, Any] = {"tenant_id": "B"}
    sneaky: dict[str, Any] = {"tenant_id": {"$in": ["A", "B"]}}
    for flt in (other, sneaky):
        with pytest.raises(ValueError):
            await a.find_one(flt)
        with pytest.raises(ValueError):
            a.find(flt)
        with pytest.raises(ValueError):
            await a.update_one(flt, {"$set": {"x": 1}})
        with pytest.raises(ValueError):
            await a.update_many(flt, {"$set": {"x": 1}})
        with pytest.raises(ValueError):
            await a.find_one_and_update(flt, {"$set": {"x": 1}})
        with pytest.raises(ValueError):
            await a.count(flt)
        with pytest.raises(ValueError):
            await a.delete_many(flt)
    # Naming its own tenant explicitly is allowed.
    assert await a.count({"tenant_id": "A"}) == 0
    assert await all_docs(raw) == [{"_id": "b", "tenant_id": "B"}]


@pytest.mark.asyncio
async def test_an_update_cannot_move_a_document_to_another_tenant(
    raw: AsyncCollection[Doc],
) -> None:
    a = TenantCollection(raw, "A")
    await a.insert_one({"_id": "a", "n": 0})
    for update in (
        {"$set": {"tenant_id": "B"}},
        {"$unset": {"tenant_id": ""}},
        {"$rename": {"tenant_id": "old_tenant"}},
        {"$rename": {"n": "tenant_id"}},
        {"$setOnInsert": {"tenant_id": "B"}},
    ):
        with pytest.raises(ValueError):
            await a.update_one({"_id": "a"}, update)
        with pytest.raises(ValueError):
            await a.update_many({"_id": "a"}, update)
        with pytest.raises(ValueError):
            await a.find_one_and_update({"_id": "a"}, update)
    # Setting its own tenant again is harmless.
    await a.update_one({"_id": "a"}, {"$set": {"tenant_id": "A", "n": 1}})
    assert await all_docs(raw) == [{"_id": "a", "n": 1, "tenant_id": "A"}]
