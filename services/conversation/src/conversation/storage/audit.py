"""The audit log: append-only, hash-chained per tenant.

Each record names its seq in the tenant's chain, the previous record's hash and
its own hash over a canonical encoding of everything it says (``canonical``).
The chain head (last seq and hash) is one document per tenant in
``audit_heads``; appending claims it with a write inside the transaction of the
audited change, so two concurrent appends conflict and one runs again: the
chain never forks and has no gaps.

A purge (retention) deletes a prefix of the chain and first writes an anchor on
the head: the seq of the first kept record and the hash that record names as
its predecessor. Verification starts at the anchor, so a purged chain still
verifies, and a record deleted after the anchor is still a broken link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.inserts import insert_all

AUDIT_COLLECTION = "audit"
HEADS_COLLECTION = "audit_heads"
GENESIS_HASH = ""

# Before/after values stay small and flat: ids, roles, flags, counts, times as
# ISO strings. Never message content: the log keeps the request, not the data.
Value = str | int | bool | None
Fields = dict[str, Value]


@dataclass(frozen=True, slots=True)
class Target:
    kind: str
    id: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What an audited action appends; the chain adds seq, hashes and time."""

    actor_id: str
    action: str
    target: Target
    before: Fields = field(default_factory=dict)
    after: Fields = field(default_factory=dict)
    # The conversation the action happened in, if any: the query API filters on it.
    conversation_id: str = ""
    request_id: str = ""
    client_ip: str = ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    prev_hash: str
    hash: str
    at: datetime
    entry: AuditEntry


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor_id: str = ""
    action: str = ""
    target_kind: str = ""
    target_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    # Newest first: records with a seq below this one.
    before_seq: int = 0
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Broken:
    """The first link of a chain that does not hold, and why."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    first_seq: int
    last_seq: int
    broken: Broken | None


def _stored_time(at: datetime) -> datetime:
    """The time as MongoDB keeps it (UTC, milliseconds): the hash must be over
    what reading the record back gives."""
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def canonical(tenant_id: str, seq: int, prev_hash: str, at: datetime, e: AuditEntry) -> bytes:
    """The bytes a record's hash covers: sorted keys, no whitespace, UTF-8."""
    body = {
        "tenant_id": tenant_id,
        "seq": seq,
        "prev_hash": prev_hash,
        "at": _stored_time(at).isoformat(timespec="milliseconds"),
        "actor_id": e.actor_id,
        "action": e.action,
        "target_kind": e.target.kind,
        "target_id": e.target.id,
        "conversation_id": e.conversation_id,
        "before": e.before,
        "after": e.after,
        "request_id": e.request_id,
        "client_ip": e.client_ip,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(tenant_id: str, seq: int, prev_hash: str, at: datetime, e: AuditEntry) -> str:
    return hashlib.sha256(canonical(tenant_id, seq, prev_hash, at, e)).hexdigest()


def _fields(value: object) -> Fields:
    if not isinstance(value, Mapping):
        return {}
    out: Fields = {}
    for k, v in value.items():
        out[str(k)] = v if isinstance(v, str | int | bool) or v is None else str(v)
    return out


def _document(tenant_id: str, r: AuditRecord) -> Doc:
    e = r.entry
    return {
        "_id": f"{tenant_id}:{r.seq:012d}",
        "seq": r.seq,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
        "at": r.at,
        "actor_id": e.actor_id,
        "action": e.action,
        "target_kind": e.target.kind,
        "target_id": e.target.id,
        "conversation_id": e.conversation_id,
        "before": dict(e.before),
        "after": dict(e.after),
        "request_id": e.request_id,
        "client_ip": e.client_ip,
    }


def _record(doc: Doc) -> AuditRecord:
    return AuditRecord(
        seq=int(doc["seq"]),
        prev_hash=str(doc["prev_hash"]),
        hash=str(doc["hash"]),
        at=doc["at"],
        entry=AuditEntry(
            actor_id=str(doc["actor_id"]),
            action=str(doc["action"]),
            target=Target(str(doc["target_kind"]), str(doc["target_id"])),
            before=_fields(doc.get("before")),
            after=_fields(doc.get("after")),
            conversation_id=str(doc.get("conversation_id", "")),
            request_id=str(doc.get("request_id", "")),
            client_ip=str(doc.get("client_ip", "")),
        ),
    )


class AuditRepo:
    """One tenant's chain. ``append`` belongs inside a transaction (a unit of
    work's ``Taken.store`` or ``Transaction.for_tenant``): the head claim and
    the record commit with the audited change, or neither does."""

    def __init__(
        self,
        records: TenantCollection,
        heads: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._records = records
        self._heads = heads
        self._session = session
        self._head_id = f"audit:{records.tenant_id}"

    async def append(self, entry: AuditEntry, now: datetime) -> AuditRecord:
        return (await self.append_many([entry], now))[0]

    async def append_many(self, entries: list[AuditEntry], now: datetime) -> list[AuditRecord]:
        """Appends in order with one head claim and one insert, whatever their number."""
        if self._session is None:
            raise RuntimeError("audit appends run inside a transaction")
        if not entries:
            return []
        tenant = self._records.tenant_id
        # The $inc is the claim: a second transaction appending to this chain
        # conflicts on this document and runs again after this one commits.
        head = await self._heads.find_one_and_update(
            {"_id": self._head_id},
            {"$inc": {"seq": len(entries)}, "$setOnInsert": {"hash": GENESIS_HASH}},
            upsert=True,
            session=self._session,
        )
        if head is None:
            raise RuntimeError("audit head upsert returned nothing")
        seq = int(head["seq"]) - len(entries)
        prev = str(head.get("hash", GENESIS_HASH))
        at = _stored_time(now)
        records: list[AuditRecord] = []
        for entry in entries:
            seq += 1
            digest = chain_hash(tenant, seq, prev, at, entry)
            records.append(AuditRecord(seq, prev, digest, at, entry))
            prev = digest
        await self._heads.update_one(
            {"_id": self._head_id}, {"$set": {"hash": prev}}, session=self._session
        )
        await insert_all(self._records, [_document(tenant, r) for r in records], self._session)
        return records

    async def query(self, q: AuditQuery) -> list[AuditRecord]:
        flt: Doc = {}
        if q.actor_id:
            flt["actor_id"] = q.actor_id
        if q.action:
            flt["action"] = q.action
        if q.target_kind:
            flt["target_kind"] = q.target_kind
        if q.target_id:
            flt["target_id"] = q.target_id
        at: Doc = {}
        if q.since is not None:
            at["$gte"] = q.since
        if q.until is not None:
            at["$lt"] = q.until
        if at:
            flt["at"] = at
        if q.before_seq > 0:
            flt["seq"] = {"$lt": q.before_seq}
        cursor = self._records.find(flt, sort=[("seq", -1)], limit=q.limit, session=self._session)
        return [_record(doc) async for doc in cursor]

    async def verify(self) -> Verification:
        """Walks the chain from its anchor in seq order, recomputing every hash;
        the first record that does not follow from the one before is reported."""
        tenant = self._records.tenant_id
        head = await self._heads.find_one({"_id": self._head_id}, session=self._session)
        if head is None:
            return Verification(0, 0, 0, None)
        expect_seq = int(head.get("anchor_seq", 1))
        expect_prev = str(head.get("anchor_prev_hash", GENESIS_HASH))
        first = expect_seq
        checked = 0
        cursor = self._records.find(
            {"seq": {"$gte": expect_seq}}, sort=[("seq", 1)], session=self._session
        )
        async for doc in cursor:
            try:
                rec = _record(doc)
            except (KeyError, TypeError, ValueError):
                return Verification(checked, first, expect_seq - 1, Broken(expect_seq, "malformed"))
            if rec.seq != expect_seq:
                return Verification(checked, first, expect_seq - 1, Broken(expect_seq, "missing"))
            if rec.prev_hash != expect_prev:
                return Verification(checked, first, rec.seq - 1, Broken(rec.seq, "prev_hash"))
            if chain_hash(tenant, rec.seq, rec.prev_hash, rec.at, rec.entry) != rec.hash:
                return Verification(checked, first, rec.seq - 1, Broken(rec.seq, "hash"))
            checked += 1
            expect_prev = rec.hash
            expect_seq += 1
        last = expect_seq - 1
        # Records cut from the end leave the head ahead of the last one found.
        if int(head.get("seq", 0)) != last or str(head.get("hash", "")) != expect_prev:
            return Verification(checked, first, last, Broken(last + 1, "missing"))
        return Verification(checked, first, last, None)

    async def purge_older_than(self, cutoff: datetime, batch: int = 1000) -> int:
        """Deletes the records before the first one at or after ``cutoff`` (a
        prefix of the chain), anchoring the chain at that record first. The
        newest record is always kept, so the anchor stays a record."""
        newest = [
            doc
            async for doc in self._records.find(
                {}, sort=[("seq", -1)], limit=1, session=self._session
            )
        ]
        if not newest:
            return 0
        keep = [
            doc
            async for doc in self._records.find(
                {"at": {"$gte": cutoff}},
                sort=[("seq", 1)],
                limit=1,
                session=self._session,
                projection={"seq": 1, "prev_hash": 1},
            )
        ]
        anchor = keep[0] if keep else newest[0]
        anchor_seq = int(anchor["seq"])
        head = await self._heads.find_one({"_id": self._head_id}, session=self._session)
        # A purge never moves the anchor back (two purges racing, an older cutoff).
        if head is not None and int(head.get("anchor_seq", 1)) < anchor_seq:
            await self._heads.update_one(
                {"_id": self._head_id},
                {"$set": {"anchor_seq": anchor_seq, "anchor_prev_hash": str(anchor["prev_hash"])}},
                session=self._session,
            )
        else:
            anchor_seq = int(head.get("anchor_seq", 1)) if head is not None else anchor_seq
        deleted = 0
        while True:
            ids = [
                doc["_id"]
                async for doc in self._records.find(
                    {"seq": {"$lt": anchor_seq}},
                    limit=batch,
                    session=self._session,
                    projection={"_id": 1},
                )
            ]
            if not ids:
                return deleted
            result = await self._records.delete_many({"_id": {"$in": ids}}, session=self._session)
            deleted += result.deleted_count
