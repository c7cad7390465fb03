"""Encryption at rest: what MongoDB holds after real traffic, key rotation while
traffic goes on, crypto-shredding, and the KeyService's callers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import bson
import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import keys_pb2, keys_pb2_grpc
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import (
    AwsKmsProvider,
    KeysShreddedError,
    LocalKeyFileProvider,
    UndecryptableError,
    blob_key_id,
)
from confab_core.errors import (
    ERROR_CODE_METADATA_KEY,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
)
from confab_core.grpcx.client import channel
from confab_core.identity import ROLE_MEMBER, ROLE_SERVICE, ROLE_TENANT_ADMIN, Caller, acting_as
from confab_core.servicetoken import GATEWAY, PRESENCE, InternalAuth
from confab_devservers import KmsServer, MongoServer
from conversation import app
from conversation import keys as keys_cli
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.reencrypt import ReencryptRunner
from conversation.settings import ConversationSettings
from conversation.storage.db import Database
from conversation.storage.keys import SEALED

from .conftest import create, send

# Transit seals the outbox's payloads (whole events); everything else is ours.
SEALED_ELSEWHERE = frozenset({"outbox"})


def person(user_id: str, tenant: str, name: str, *roles: str) -> Caller:
    return Caller(
        tenant_id=tenant,
        user_id=user_id,
        roles=frozenset(roles or (ROLE_MEMBER,)),
        display_name=name,
        email=f"{name.lower().replace(' ', '.')}@secret-mail.example",
    )


def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def clocked(
    mongo_server: MongoServer, key_file: Path
) -> AsyncIterator[tuple[Database, FakeClock]]:
    clock = FakeClock()
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    db = Database(
        client,
        name,
        LocalKeyFileProvider(key_file),
        clock,
        key_cache_ttl=timedelta(seconds=60),
        rotation_delay=timedelta(seconds=120),
    )
    await db.ensure_indexes()
    try:
        yield db, clock
    finally:
        await client.drop_database(name)
        await client.close()


class Workload:
    """Sends, edits, threads, reactions, files, titles, names and emails: every kind
    of user content the conversation service stores."""

    def __init__(self, db: Database, clock: FakeClock, tenant_id: str) -> None:
        unit = UnitOfWork(db, clock, asyncio.Event())
        self.conversations = ConversationHandler(unit)
        self.messages = MessageHandler(unit)
        self.tenant_id = tenant_id
        self.alice = person("u-alice", tenant_id, "Wilhelmina Quokkafeather", ROLE_MEMBER)
        self.admin = person("u-admin", tenant_id, "Ottoline Marrowbone", ROLE_TENANT_ADMIN)
        self.bob = person("u-bob", tenant_id, "Barnaby Thistlewick")
        self.secrets: list[str] = [
            self.alice.display_name,
            self.alice.email,
            self.admin.display_name,
            self.admin.email,
            self.bob.display_name,
            self.bob.email,
        ]
        self.sent: list[tuple[str, str]] = []

    def _secret(self, label: str) -> str:
        text = f"{label}{uuid.uuid4().hex[:8]}"
        self.secrets.append(text)
        return text

    async def run(self, rounds: int) -> None:
        title, topic, description = (
            self._secret(x) for x in ("titleword", "topicword", "descword")
        )
        conv = (
            await self.conversations.create(
                self.admin,
                kind=pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
                title=title,
                description=description,
                member_ids=[self.alice.user_id, self.bob.user_id],
                context=None,
            )
        ).conversation.id
        await self.conversations.update(self.admin, conv, title=None, description=None, topic=topic)
        direct = (
            await create(self.conversations, self.alice, pb.CONVERSATION_KIND_DIRECT, ["u-bob"])
        ).conversation.id
        for i in range(rounds):
            where = conv if i % 2 else direct
            text = f"{self._secret('zephyrword')} and {self._secret('quillword')}"
            sent = (await send(self.messages, self.alice, where, text=text)).message
            self.sent.append((where, sent.id))
            edited = f"edited {self._secret('marmaladeword')}"
            await self.messages.edit(
                self.alice, conversation_id=where, message_id=sent.id, text=edited
            )
            reply = (
                await send(
                    self.messages,
                    self.bob,
                    where,
                    text=self._secret("threadreply"),
                    thread_root_id=sent.id,
                )
            ).message
            self.sent.append((where, reply.id))
            await self.messages.react(
                self.bob, conversation_id=where, message_id=sent.id, emoji="+1"
            )
            filed = (
                await send(
                    self.messages,
                    self.bob,
                    where,
                    text="",
                    kind=pb.MESSAGE_KIND_FILE,
                    file={
                        "url": f"https://files.example/{self._secret('fileurl')}",
                        "name": f"{self._secret('filename')}.pdf",
                        "content_type": "application/pdf",
                        "size_bytes": 1234,
                    },
                )
            ).message
            self.sent.append((where, filed.id))


async def raw_dump(db: Database) -> dict[str, bytes]:
    """Every collection's documents as the bytes MongoDB holds."""
    out: dict[str, bytes] = {}
    for name in await db.db.list_collection_names():
        docs = [bson.encode(doc) async for doc in db.db[name].find({})]
        out[name] = b"".join(docs)
    return out


def plaintext_found(dump: dict[str, bytes], secrets: list[str]) -> list[tuple[str, str]]:
    found = []
    for name, raw in dump.items():
        if name in SEALED_ELSEWHERE:
            continue
        low = raw.lower()
        for secret in secrets:
            if secret.encode().lower() in low:
                found.append((name, secret))
    return found


@pytest.mark.asyncio
async def test_no_plaintext_of_any_message_name_or_email_at_rest(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    work = Workload(db, clock, tenant())
    await work.run(rounds=4)
    dump = await raw_dump(db)
    assert {"messages", "message_search", "users", "conversations"} <= set(dump)
    assert plaintext_found(dump, work.secrets) == []
    # Yet every word still reads back through the handlers, and search finds whole words.
    conv_id, msg_id = work.sent[0]
    page = await work.messages.page(
        work.alice, conversation_id=conv_id, after_seq=0, before_seq=0, limit=50
    )
    texts = " ".join(m.text for m in page.messages)
    assert "edited marmaladeword" in texts
    word = next(s for s in work.secrets if s.startswith("marmaladeword"))
    hits = await work.messages.search(work.alice, query=word, conversation_id="", limit=10)
    assert [h.id for h in hits] == [msg_id]
    assert (
        await work.messages.search(work.alice, query=word[:-2], conversation_id="", limit=10) == []
    )
    profiles = await db.for_tenant(work.tenant_id).users.get_many(["u-alice", "u-bob"])
    assert profiles["u-alice"].email == work.alice.email
    assert profiles["u-bob"].display_name == work.bob.display_name
    browsed = await work.conversations.browse(work.bob, "TITLEWORD", 10)
    assert len(browsed) == 1 and browsed[0].topic.startswith("topicword")


@pytest.mark.asyncio
async def test_a_ciphertext_copied_to_another_document_does_not_open(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    work = Workload(db, clock, tenant())
    await work.run(rounds=1)
    (conv_id, first), (_, second) = work.sent[0], work.sent[1]
    raw = db.db["messages"]
    blob = (await raw.find_one({"_id": first}))["text"]
    await raw.update_one({"_id": second}, {"$set": {"text": blob}})
    store = db.for_tenant(work.tenant_id)
    assert (await store.messages.get(conv_id, first)) is not None
    with pytest.raises(UndecryptableError):
        await store.messages.get(conv_id, second)


@pytest.mark.asyncio
async def test_tenants_have_their_own_keys(clocked: tuple[Database, FakeClock]) -> None:
    db, _ = clocked
    a, b = await asyncio.gather(db.keys.keys("t-a"), db.keys.keys("t-b"))
    assert a.current.key != b.current.key and a.search_key != b.search_key
    # Two replicas creating one tenant's keys at once end with one set.
    other = Database(db.client, db.db.name, LocalKeyFileProvider(_key_file(db)))
    first, second = await asyncio.gather(db.keys.fresh_keys("t-c"), other.keys.fresh_keys("t-c"))
    assert first.current.key == second.current.key
    assert await db.db["tenant_keys"].count_documents({"tenant_id": "t-c"}) == 1
    raw = await db.db["tenant_keys"].find_one({"tenant_id": "t-c"})
    assert first.current.key not in bson.encode(raw)


def _key_file(db: Database) -> Path:
    provider = db.keys._provider
    assert isinstance(provider, LocalKeyFileProvider)
    return provider.path


async def _all_on(db: Database, tenant_id: str, key_id: str) -> list[str]:
    """The sealed fields not on ``key_id``, as collection/id/field."""
    off = []
    for name, (_, fields) in SEALED.items():
        async for doc in db.db[name].find({"tenant_id": tenant_id}):
            for field in fields:
                value = doc.get(field)
                if isinstance(value, bytes) and blob_key_id(value) != key_id:
                    off.append(f"{name}/{doc['_id']}/{field}")
                elif isinstance(value, str) and value:
                    off.append(f"{name}/{doc['_id']}/{field} (plain)")
    return off


@pytest.mark.asyncio
async def test_rotation_mid_workload_with_a_restarted_job(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    work = Workload(db, clock, tenant())
    keys = KeyHandler(db)
    await work.run(rounds=3)
    staged = await keys.rotate(work.tenant_id)
    assert staged.key_id == "k2"
    # Staged: readable everywhere at once, written only after the delay.
    await work.run(rounds=2)
    assert (await keys.status(work.tenant_id)).current_key_id == "k1"
    clock.advance(121)
    assert (await keys.status(work.tenant_id)).current_key_id == "k2"
    await work.run(rounds=2)
    first = ReencryptRunner(db, batch_size=5, poll_seconds=1, lease_seconds=30, owner="a")
    # Not due until no replica can still be writing with k1.
    assert await first.run_once() == 0
    clock.advance(61)
    assert await first.run_once(max_batches=3) == 3
    status = await keys.status(work.tenant_id)
    job = status.jobs[0]
    assert job.state == "running" and 0 < job.done < job.total
    # The replica dies; more traffic; another takes over once the lease runs out.
    await work.run(rounds=1)
    second = ReencryptRunner(db, batch_size=5, poll_seconds=1, lease_seconds=30, owner="b")
    assert await second.run_once() == 0, "the first replica's lease still holds"
    clock.advance(31)
    assert await second.run_once() > 0
    job = (await keys.status(work.tenant_id)).jobs[0]
    assert job.state == "done" and job.done >= job.total > 0
    assert await _all_on(db, work.tenant_id, "k2") == []
    for conv_id, msg_id in work.sent:
        assert (await db.for_tenant(work.tenant_id).messages.get(conv_id, msg_id)) is not None
    assert plaintext_found(await raw_dump(db), work.secrets) == []


@pytest.mark.asyncio
async def test_legacy_plaintext_is_sealed_by_the_rotation_job(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    t = tenant()
    await db.db["users"].insert_one(
        {"tenant_id": t, "user_id": "old", "display_name": "Plain Legacyname", "email": "p@l.x"}
    )
    conv = "legacy-conv"
    await db.db["messages"].insert_one(
        {
            "_id": "legacy-msg",
            "tenant_id": t,
            "conversation_id": conv,
            "seq": 1,
            "sender_id": "old",
            "sender_name": "Plain Legacyname",
            "client_msg_id": "c1",
            "kind": pb.MESSAGE_KIND_TEXT,
            "text": "legacy plaintext words",
            "created_at": clock.now(),
            "deleted": False,
            "search_terms": ["legacy", "plaintext", "words"],
        }
    )
    await db.db["message_search"].insert_one(
        {
            "_id": "legacy-msg",
            "tenant_id": t,
            "conversation_id": conv,
            "created_at": clock.now(),
            "search_terms": ["legacy", "plaintext", "words"],
        }
    )
    store = db.for_tenant(t)
    assert (await store.users.get_many(["old"]))["old"].display_name == "Plain Legacyname"
    await KeyHandler(db).rotate(t)
    clock.advance(181)
    await ReencryptRunner(db, batch_size=10, poll_seconds=1, lease_seconds=30).run_once()
    raw = await db.db["users"].find_one({"tenant_id": t, "user_id": "old"})
    assert isinstance(raw["display_name"], bytes) and blob_key_id(raw["display_name"]) == "k2"
    assert (await store.users.get_many(["old"]))["old"].email == "p@l.x"
    dump = await raw_dump(db)
    assert plaintext_found(dump, ["Plain Legacyname", "plaintext"]) == []
    found = await store.messages.search([conv], ["plaintext"], 10)
    assert [m.text for m in found] == ["legacy plaintext words"]


@pytest.mark.asyncio
async def test_crypto_shredding_leaves_nothing_that_decrypts(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    work = Workload(db, clock, tenant())
    await work.run(rounds=2)
    keep = Workload(db, clock, tenant())
    await keep.run(rounds=1)
    before = await db.keys.fresh_keys(work.tenant_id)
    await KeyHandler(db).shred(work.tenant_id)
    with pytest.raises(KeysShreddedError) as info:
        await work.messages.page(
            work.alice, conversation_id=work.sent[0][0], after_seq=0, before_seq=0, limit=5
        )
    assert isinstance(info.value, FailedPrecondition) and info.value.code == "keys_shredded"
    # No replica mints new keys for an erased tenant.
    with pytest.raises(KeysShreddedError):
        await db.keys.fresh_keys(work.tenant_id)
    raw_keys = await db.db["tenant_keys"].find_one({"tenant_id": work.tenant_id})
    assert raw_keys["keys"] == [] and "search_key" not in raw_keys
    # What is left in MongoDB: sealed blobs naming keys nobody holds any more.
    sealed = 0
    for name, (_, fields) in SEALED.items():
        async for doc in db.db[name].find({"tenant_id": work.tenant_id}):
            for field in fields:
                if isinstance(doc.get(field), bytes):
                    sealed += 1
                    with pytest.raises(KeysShreddedError):
                        await db.keys.fresh_keys(work.tenant_id)
                    assert blob_key_id(doc[field]) in before.by_id
    assert sealed > 10
    assert plaintext_found(await raw_dump(db), work.secrets) == []
    # The other tenant is untouched.
    page = await keep.messages.page(
        keep.alice, conversation_id=keep.sent[0][0], after_seq=0, before_seq=0, limit=5
    )
    assert page.messages


@pytest.mark.asyncio
async def test_key_handler_serves_only_services_their_own_tenant(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, _ = clocked
    handler = KeyHandler(db)
    member = person("u1", "t-1", "Someone")
    with pytest.raises(PermissionDenied) as info:
        await handler.tenant_keys(member)
    assert info.value.code == "service_only"
    service = Caller(tenant_id="t-1", user_id="gateway", roles=frozenset({ROLE_SERVICE}))
    keys = await handler.tenant_keys(service)
    assert keys.tenant_id == "t-1"
    assert keys.current.key == (await db.keys.keys("t-1")).current.key


@pytest.mark.asyncio
async def test_key_service_over_grpc(mongo_server: MongoServer, key_file: Path) -> None:
    internal_key = "key-service-tests-internal-key-32b"
    settings = ConversationSettings(
        mongo_url=mongo_server.url,
        kafka_bootstrap_servers="127.0.0.1:9",
        mongo_database=f"conv_{uuid.uuid4().hex[:12]}",
        grpc_port=0,
        internal_key=internal_key,  # type: ignore[arg-type]
        key_file=key_file,
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with app.running(settings, FakeClock()) as port:
        target = f"127.0.0.1:{port}"

        async def call(issuer: str, caller: Caller) -> keys_pb2.GetTenantKeysResponse:
            auth = InternalAuth(issuer, internal_key.encode(), FakeClock())
            async with channel(target, auth, "conversation") as chan:
                stub = keys_pb2_grpc.KeyServiceStub(chan)
                with acting_as(caller):
                    return await stub.GetTenantKeys(keys_pb2.GetTenantKeysRequest())

        service = Caller(tenant_id="t-9", user_id="gateway", roles=frozenset({ROLE_SERVICE}))
        got = await call(GATEWAY, service)
        assert got.tenant_id == "t-9" and got.current_key_id == "k1"
        assert [k.key_id for k in got.keys] == ["k1"] and len(got.keys[0].key) == 32
        assert len(got.search_key) == 32
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(GATEWAY, person("u1", "t-9", "Some One"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Presence never acts with the service role: its token is refused.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(PRESENCE, service)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Shredded by another replica (this one never cached the tenant's keys).
        client = mongo.connect(mongo_server.url, "test")
        try:
            await KeyHandler(app.database(settings, client, FakeClock())).shred("t-10")
        finally:
            await client.close()
        shredded = Caller(tenant_id="t-10", user_id="gateway", roles=frozenset({ROLE_SERVICE}))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(GATEWAY, shredded)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        trailers = dict(info.value.trailing_metadata() or ())
        assert trailers[ERROR_CODE_METADATA_KEY] == "keys_shredded"


@pytest.mark.asyncio
async def test_rotate_and_status_commands(mongo_server: MongoServer, key_file: Path) -> None:
    settings = ConversationSettings(
        mongo_url=mongo_server.url,
        kafka_bootstrap_servers="127.0.0.1:9",
        mongo_database=f"conv_{uuid.uuid4().hex[:12]}",
        internal_key="key-command-tests-internal-key-32b",  # type: ignore[arg-type]
        key_file=key_file,
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    clock = FakeClock()
    rotated = json.loads(await keys_cli.run(["rotate", "--tenant", "t-cli"], settings, clock))
    assert rotated["staged"]["key_id"] == "k2"
    status = json.loads(await keys_cli.run(["status", "--tenant", "t-cli"], settings, clock))
    assert status["current_key_id"] == "k1"
    assert [k["key_id"] for k in status["keys"]] == ["k1", "k2"]
    assert status["jobs"][0]["state"] == "pending"
    with pytest.raises(SystemExit):
        await keys_cli.run(["rotate"], settings, clock)
    with pytest.raises(InvalidArgument):
        await keys_cli.run(["status", "--tenant", ""], settings, clock)


@pytest.mark.asyncio
async def test_a_backup_of_the_keys_is_useless_after_a_shred_with_per_tenant_kms_keys(
    mongo_server: MongoServer, tmp_path: Path
) -> None:
    kms = KmsServer(tmp_path / "kms")
    kms.start(timeout=120)
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    try:
        provider = AwsKmsProvider(
            "alias/confab-{tenant}",
            region=kms.region,
            endpoint_url=kms.url,
            access_key_id="dev",
            secret_access_key="dev",
        )
        clock = FakeClock()
        db = Database(client, name, provider, clock)
        await db.ensure_indexes()
        work = Workload(db, clock, tenant())
        await work.run(rounds=1)
        backup = await db.db["tenant_keys"].find_one({"tenant_id": work.tenant_id})
        await KeyHandler(db).shred(work.tenant_id)
        # Restoring the backup brings the wrapped keys back, but not their KMS key.
        await db.db["tenant_keys"].replace_one({"tenant_id": work.tenant_id}, backup)
        with pytest.raises(UndecryptableError):
            await db.keys.fresh_keys(work.tenant_id)
    finally:
        await client.drop_database(name)
        await client.close()
        kms.kill()
