"""The audit chain: appends inside transactions, concurrency, verify, tamper, purge."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.requestinfo import RequestInfo, serving
from confab_devservers import MongoServer
from conversation.handlers.audit import AuditTrail
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.audit import Target
from conversation.storage.conversations import Claim
from conversation.storage.db import Database, Transaction
from conversation.storage.moderation import KIND_PII, KIND_REPORT

from .conftest import ALICE, BOB, MALLORY, TENANT_A, TENANT_B, create, user

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, "tenant_admin")


async def test_records_chain_and_carry_the_request(db: Database, clock: FakeClock) -> None:
    trail = AuditTrail(db, clock)
    with serving(RequestInfo.of("req-1", "203.0.113.7")):
        first = await trail.record(ADMIN, "user.muted", Target("user", "bob"), {}, {"until": None})
    second = await trail.record(ADMIN, "user.unmuted", Target("user", "bob"))
    assert (first.seq, first.prev_hash) == (1, "")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (first.entry.request_id, first.entry.client_ip) == ("req-1", "203.0.113.7")
    assert second.entry.request_id == ""
    verified = await trail.verify_tenant(TENANT_A)
    assert (verified.checked, verified.broken) == (2, None)


async def test_concurrent_appends_never_fork(db: Database, clock: FakeClock) -> None:
    # Two trails with lock tables of their own: two replicas, whose appends
    # conflict on the chain head and retry.
    trail, other = AuditTrail(db, clock), AuditTrail(db, clock)
    records = await asyncio.gather(
        *(
            (trail if i % 2 else other).record(ADMIN, "user.muted", Target("user", f"u{i}"))
            for i in range(12)
        )
    )
    assert sorted(r.seq for r in records) == list(range(1, 13))
    assert len({r.prev_hash for r in records}) == 12
    assert (await trail.verify_tenant(TENANT_A)).broken is None


async def test_an_append_commits_with_the_unit_or_not_at_all(
    db: Database, unit: UnitOfWork, clock: FakeClock
) -> None:
    from conversation.handlers.conversations import ConversationHandler

    trail = AuditTrail(db, clock)
    conv = (await create(ConversationHandler(unit), ALICE, members=["bob"])).conversation

    async def failing(t: Taken) -> None:
        await trail.in_unit(t, "member.role_changed", Target("member", "bob"))
        raise RuntimeError("the change fails")

    async def inside(t: Taken) -> None:
        await trail.in_unit(t, "member.role_changed", Target("member", "bob"))

    with pytest.raises(RuntimeError, match="the change fails"):
        await unit.one(Change(ALICE, conv.id, Claim(events=0), audited=True), failing)
    # A change that audits says so, and so queues on the chain's writer lock.
    with pytest.raises(RuntimeError, match="audited=True"):
        await unit.one(Change(ALICE, conv.id, Claim(events=0)), inside)
    assert await db.db["audit"].count_documents({}) == 0

    await unit.one(Change(ALICE, conv.id, Claim(events=0), audited=True), inside)
    [doc] = [d async for d in db.db["audit"].find({})]
    assert (doc["conversation_id"], doc["actor_id"], doc["seq"]) == (conv.id, "alice", 1)


async def test_tampering_is_reported_at_the_first_broken_link(
    db: Database, clock: FakeClock
) -> None:
    trail = AuditTrail(db, clock)
    for i in range(5):
        await trail.record(ADMIN, "user.banned", Target("user", f"u{i}"), {}, {"scope": "tenant"})
    # Before and after are sealed: the tamperer swaps in another record's, which
    # opens under this record's id only if the sealing binds nothing.
    other = await db.db["audit"].find_one({"tenant_id": TENANT_A, "seq": 4})
    assert other is not None
    await db.db["audit"].update_one(
        {"tenant_id": TENANT_A, "seq": 3}, {"$set": {"values": other["values"]}}
    )
    verified = await trail.verify_tenant(TENANT_A)
    assert verified.broken is not None
    assert (verified.broken.seq, verified.broken.reason) == (3, "malformed")
    assert verified.checked == 2


async def test_a_deleted_record_or_a_cut_tail_is_reported(db: Database, clock: FakeClock) -> None:
    trail = AuditTrail(db, clock)
    for i in range(4):
        await trail.record(ADMIN, "user.banned", Target("user", f"u{i}"))
    await db.db["audit"].delete_one({"tenant_id": TENANT_A, "seq": 4})
    cut = await trail.verify_tenant(TENANT_A)
    assert cut.broken is not None and (cut.broken.seq, cut.broken.reason) == (4, "missing")
    await db.db["audit"].delete_one({"tenant_id": TENANT_A, "seq": 2})
    gap = await trail.verify_tenant(TENANT_A)
    assert gap.broken is not None and (gap.broken.seq, gap.broken.reason) == (2, "missing")


async def test_a_purge_anchors_the_chain_so_it_still_verifies(
    db: Database, clock: FakeClock
) -> None:
    trail = AuditTrail(db, clock)
    for i in range(6):
        await trail.record(ADMIN, "user.muted", Target("user", f"u{i}"))
        clock.advance(86_400)
    cutoff = clock.now() - timedelta(days=3, hours=12)
    assert await trail.purge_older_than(TENANT_A, cutoff) == 3
    verified = await trail.verify_tenant(TENANT_A)
    assert (verified.first_seq, verified.last_seq, verified.broken) == (4, 6, None)
    # Appends continue the chain after a purge.
    await trail.record(ADMIN, "user.muted", Target("user", "late"))
    assert (await trail.verify_tenant(TENANT_A)).broken is None
    # Deleting the first kept record is still a broken link.
    await db.db["audit"].delete_one({"tenant_id": TENANT_A, "seq": 4})
    after = await trail.verify_tenant(TENANT_A)
    assert after.broken is not None and (after.broken.seq, after.broken.reason) == (4, "missing")


async def test_chains_are_per_tenant(db: Database, clock: FakeClock) -> None:
    trail = AuditTrail(db, clock)
    await trail.record(ADMIN, "user.muted", Target("user", "bob"))
    other = await trail.record(
        user("root", TENANT_B, "tenant_admin"), "user.muted", Target("user", "m")
    )
    assert other.seq == 1
    assert [r.entry.target.id for r in await trail.query(ADMIN)] == ["bob"]
    assert (await trail.verify_tenant(TENANT_B)).checked == 1


async def test_the_queue_takes_one_entry_per_message_and_reporter(db: Database) -> None:
    now = FakeClock().now()

    async def add(tx: Transaction, kind: str, reporter: str) -> bool:
        _, created = await tx.for_tenant(TENANT_A).moderation.add(
            kind=kind,
            conversation_id="c1",
            message_id="m1",
            author_id="alice",
            now=now,
            reporter_id=reporter,
            reason="spam" if kind == KIND_REPORT else "",
            pii_kinds=("card",) if kind == KIND_PII else (),
        )
        return created

    assert await db.transaction(lambda tx: add(tx, KIND_PII, ""))
    assert not await db.transaction(lambda tx: add(tx, KIND_PII, ""))
    assert await db.transaction(lambda tx: add(tx, KIND_REPORT, BOB.user_id))
    assert not await db.transaction(lambda tx: add(tx, KIND_REPORT, BOB.user_id))
    assert await db.transaction(lambda tx: add(tx, KIND_REPORT, "carol"))
    entries = await db.for_tenant(TENANT_A).moderation.page(
        status="", kind="", limit=10, after=None
    )
    assert sorted((e.kind, e.reporter_id) for e in entries) == [
        ("pii", ""),
        ("report", "bob"),
        ("report", "carol"),
    ]
    assert (
        await db.for_tenant(MALLORY.tenant_id).moderation.page(
            status="", kind="", limit=10, after=None
        )
        == []
    )


async def test_the_verify_command_names_the_first_broken_link(
    db: Database, clock: FakeClock, mongo_server: MongoServer, key_file: Path
) -> None:
    trail = AuditTrail(db, clock)
    for i in range(3):
        await trail.record(ADMIN, "member.role_changed", Target("user", f"u{i}"))
    env = {
        **os.environ,
        "CONVERSATION_MONGO_URL": mongo_server.url,
        "CONVERSATION_CLAMD_REQUIRED": "false",
        "CONVERSATION_MONGO_DATABASE": db.db.name,
        "CONVERSATION_KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
        "CONVERSATION_INTERNAL_KEY": "k" * 32,
        # The command opens the database like the service: with the tenants' keys.
        "CONVERSATION_KEY_FILE": str(key_file),
    }

    async def run() -> tuple[int, dict[str, object]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "conversation.audit",
            "verify",
            "--tenant",
            TENANT_A,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, json.loads(out)

    code, body = await run()
    assert (code, body["ok"], body["checked"]) == (0, True, 3)
    await db.db["audit"].update_one({"tenant_id": TENANT_A, "seq": 2}, {"$set": {"actor_id": "x"}})
    code, body = await run()
    assert (code, body["ok"], body["broken_seq"], body["broken_reason"]) == (1, False, 2, "hash")


async def test_the_query_filters_pages_and_is_for_tenant_admins(
    db: Database, clock: FakeClock
) -> None:
    trail = AuditTrail(db, clock)
    other_admin = user("boss", TENANT_A, "tenant_admin")
    start = clock.now()
    for i in range(5):
        actor = ADMIN if i % 2 == 0 else other_admin
        await trail.record(actor, "user.muted", Target("user", f"u{i}"))
        clock.advance(60)
    await trail.record(ADMIN, "user.banned", Target("user", "u0"))

    async def seqs(**filters: object) -> list[int]:
        return [r.seq for r in await trail.query(ADMIN, **filters)]  # type: ignore[arg-type]

    assert await seqs() == [6, 5, 4, 3, 2, 1]
    assert await seqs(actor_id="boss") == [4, 2]
    assert await seqs(action="user.banned") == [6]
    assert await seqs(target_kind="user", target_id="u0") == [6, 1]
    assert await seqs(since=start + timedelta(minutes=1), until=start + timedelta(minutes=3)) == [
        3,
        2,
    ]
    assert await seqs(limit=2) == [6, 5]
    assert await seqs(limit=2, before_seq=5) == [4, 3]
    with pytest.raises(PermissionDenied):
        await trail.query(BOB)
    with pytest.raises(PermissionDenied):
        await trail.verify(BOB)
    with pytest.raises(InvalidArgument) as bad:
        await trail.query(ADMIN, since=start, until=start)
    assert bad.value.code == "invalid_time_range"
    assert (await trail.verify(ADMIN)).checked == 6
