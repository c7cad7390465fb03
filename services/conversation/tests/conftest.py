"""Real MongoDB-wire (and Kafka, for the relay) servers; handlers built directly on them.

The servers start once per run (shared with libs/core's tests); every test gets
its own database, so tests never see each other's documents.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from pymongo import MongoClient

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import LocalKeyFileProvider, write_local_key_file
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, Caller
from confab_core.kafka import EVENT_ID_HEADER, TENANT_ID_HEADER
from confab_core.mongo import Doc
from confab_core.sealed_events import open_event
from confab_devservers import ChildServer, KafkaServer, MongoServer
from confab_devservers.pytest_plugin import clamd_server, s3_server  # noqa: F401
from conversation.handlers.conversations import ConversationHandler, Created
from conversation.handlers.messages import MessageHandler, Sent
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database
from conversation.storage.outbox import opened_payload

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"


def _shared_server(
    request: pytest.FixtureRequest, name: str, make: Callable[[], ChildServer]
) -> ChildServer:
    """One server per pytest run, shared by every conftest that asks for it by ``name``.

    libs/core and services/conversation run in one session; starting Kafka and
    MongoDB once for both saves several seconds. The registry lives on the run's
    config object, which both conftests see.
    """
    registry: dict[str, ChildServer] = request.config.__dict__.setdefault(
        "_confab_shared_test_servers", {}
    )
    server = registry.get(name)
    if server is None:
        server = make()
        server.start(timeout=180)
        # Throwaway data in a temp dir: no need to wait for a clean shutdown.
        request.config.add_cleanup(server.kill)
        registry[name] = server
    return server


@pytest.fixture(scope="session")
def mongo_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> MongoServer:
    server = _shared_server(request, "mongo", lambda: MongoServer(tmp_path_factory.mktemp("mongo")))
    assert isinstance(server, MongoServer)
    return server


@pytest.fixture(scope="session")
def kafka_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> KafkaServer:
    server = _shared_server(request, "kafka", lambda: KafkaServer(tmp_path_factory.mktemp("kafka")))
    assert isinstance(server, KafkaServer)
    return server


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev key file every test database wraps its tenants' data keys with."""
    return write_local_key_file(tmp_path_factory.mktemp("keys") / "kek")


@dataclass
class _ModuleDatabase:
    name: str
    indexed: bool = False


@pytest.fixture(scope="module")
def _module_database(mongo_server: MongoServer) -> Iterator[_ModuleDatabase]:
    module_db = _ModuleDatabase(f"conv_{uuid.uuid4().hex[:12]}")
    yield module_db
    with MongoClient(mongo_server.url) as client:
        client.drop_database(module_db.name)


@pytest_asyncio.fixture
async def db(
    mongo_server: MongoServer, key_file: Path, _module_database: _ModuleDatabase
) -> AsyncIterator[Database]:
    """An empty database with every index, for one test.

    Its module's tests take turns on one database, emptied after each: building
    thirty collections' indexes costs ten times what emptying them does.
    """
    client = mongo.connect(mongo_server.url, "test")
    database = Database(client, _module_database.name, LocalKeyFileProvider(key_file))
    if not _module_database.indexed:
        await database.ensure_indexes()
        _module_database.indexed = True
    try:
        yield database
    finally:
        for collection in await database.db.list_collection_names():
            await database.db[collection].delete_many({})
        await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_db(mongo_server: MongoServer, key_file: Path) -> AsyncIterator[Database]:
    """One database for a whole module, for tests that isolate themselves by tenant.

    Building a database per test costs more than most permission checks; a test
    that takes a ``fresh_tenant()`` sees none of its neighbours' documents,
    because every query is tenant-scoped. Modules using it run on a module loop:
    ``pytestmark = pytest.mark.asyncio(loop_scope="module")``.
    """
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    database = Database(client, name, LocalKeyFileProvider(key_file))
    await database.ensure_indexes()
    try:
        yield database
    finally:
        await client.drop_database(name)
        await client.close()


def fresh_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wakeup() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def unit(db: Database, clock: FakeClock, wakeup: asyncio.Event) -> UnitOfWork:
    return UnitOfWork(db, clock, wakeup)


@pytest.fixture
def conversations(unit: UnitOfWork) -> ConversationHandler:
    return ConversationHandler(unit)


@pytest.fixture
def messages(unit: UnitOfWork) -> MessageHandler:
    return MessageHandler(unit)


def user(name: str, tenant: str = TENANT_A, *roles: str) -> Caller:
    return Caller(
        tenant_id=tenant,
        user_id=name,
        roles=frozenset(roles or (ROLE_MEMBER,)),
        display_name=name.capitalize(),
        email=f"{name}@{tenant}.example",
    )


ALICE = user("alice")
# Channels are created by agents and admins.
ALICE_AGENT = user("alice", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
BOB = user("bob")
CAROL = user("carol")
# Another tenant, even with a colliding user id, is a stranger.
MALLORY = user("mallory", TENANT_B)
ALICE_B = user("alice", TENANT_B)


async def create(
    handler: ConversationHandler,
    caller: Caller,
    kind: int = pb.CONVERSATION_KIND_GROUP,
    members: list[str] | None = None,
    title: str = "",
    context: tuple[str, str] | None = None,
) -> Created:
    return await handler.create(
        caller,
        kind=kind,
        title=title,
        description="",
        member_ids=members if members is not None else [],
        context=context,
    )


async def send(
    handler: MessageHandler,
    caller: Caller,
    conversation_id: str,
    text: str = "hello",
    client_msg_id: str | None = None,
    kind: int = pb.MESSAGE_KIND_TEXT,
    thread_root_id: str = "",
    file: dict[str, Any] | None = None,
) -> Sent:
    return await handler.send(
        caller,
        conversation_id=conversation_id,
        client_msg_id=client_msg_id if client_msg_id is not None else uuid.uuid4().hex,
        text=text,
        kind=kind,
        thread_root_id=thread_root_id,
        file=file,
    )


async def outbox(db: Database, conversation_id: str | None = None) -> list[Doc]:
    """Every event record (published or not), in per-conversation order, with its
    payload opened (it is sealed with the tenant's key in the database)."""
    flt = {} if conversation_id is None else {"conversation_id": conversation_id}
    cursor = db.db["outbox"].find(flt).sort([("conversation_id", 1), ("event_seq", 1)])
    out = []
    async for doc in cursor:
        keys = await db.keys.keys(str(doc["tenant_id"]))
        out.append({**doc, "payload": opened_payload(keys, doc)})
    return out


async def open_record(
    db: Database, record: ConsumerRecord[bytes, bytes]
) -> events_pb2.ConversationEvent:
    """A record the relay published, opened with its tenant's keys (as consumers do)."""
    headers = dict(record.headers)
    keys = await db.keys.keys(headers[TENANT_ID_HEADER].decode())
    assert record.value is not None
    return decode({"payload": open_event(keys, headers[EVENT_ID_HEADER].decode(), record.value)})


def decode(doc: Doc) -> events_pb2.ConversationEvent:
    event = events_pb2.ConversationEvent()
    event.ParseFromString(bytes(doc["payload"]))
    return event


async def count(db: Database, collection: str) -> int:
    return await db.db[collection].count_documents({})


async def pending(db: Database) -> list[int]:
    """Event seqs still waiting for the relay."""
    cursor = db.db["outbox"].find({"published": {"$ne": True}}).sort("event_seq", 1)
    return [d["event_seq"] async for d in cursor]


CORE_COLLECTIONS = ("conversations", "members", "messages", "outbox")


async def snapshot(db: Database, *, tenant: str | None = None) -> dict[str, list[Doc]]:
    """Every document of the conversation, member, message and outbox collections.

    Two equal snapshots mean nothing was written in between (``tenant`` narrows
    it to one tenant's documents).
    """
    flt = {} if tenant is None else {"tenant_id": tenant}
    return {
        name: [doc async for doc in db.db[name].find(flt).sort("_id", 1)]
        for name in CORE_COLLECTIONS
    }
