"""Tenants' data keys (``tenant_keys``), field sealing, rotation jobs and crypto-shredding.

Each tenant has one document: its data keys and its search key, each wrapped
by the key provider (a key file in dev, a KMS in production), so MongoDB never
holds a usable key. Keys are created on first use; two replicas creating at
once both insert, the unique tenant index keeps one, and the loser reads it.

Rotation stages a new key: it is in every reader's key set at once, and
becomes the one writers use only ``rotation_delay`` later, which is at least
the longest any process caches keys (``cache_ttl``). No replica ever meets a
blob sealed with a key it does not hold. The re-encrypt job that moves old
records starts once no replica can still be writing with the old key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from confab_core.clock import Clock
from confab_core.crypto import (
    CachingKeySource,
    DataKey,
    KeyProvider,
    KeysShreddedError,
    TenantKeys,
    aad,
    blind_tokens,
    blob_key_id,
    seal,
    unseal,
)
from confab_core.mongo import Doc, TenantCollection

KEYS_COLLECTION = "tenant_keys"
# The name messages.SEARCH_COLLECTION gives it (that module imports this one).
SEARCH_COLLECTION = "message_search"
JOBS_COLLECTION = "key_jobs"

# What is sealed, per collection: the field naming the document in the
# associated data, and the sealed fields. The re-encrypt job walks exactly these.
SEALED: dict[str, tuple[str, tuple[str, ...]]] = {
    "conversations": ("_id", ("title", "description", "topic")),
    "users": ("user_id", ("display_name", "email")),
    "messages": ("_id", ("text", "sender_name", "file")),
    "canned_replies": ("_id", ("body",)),
    "support_profiles": ("_id", ("name",)),
    "tickets": ("_id", ("subject", "handoff_summary")),
    "support_teams": ("_id", ("name",)),
    "bot_memory": ("_id", ("summary",)),
    "bot_summaries": ("_id", ("summary",)),
    "tenant_settings": ("_id", ("text",)),
    # A file's name; its bytes keep the key id they were sealed with (docs/files.md).
    "files": ("_id", ("name",)),
}
JOB_ORDER = tuple(SEALED)


@dataclass(frozen=True, slots=True)
class TenantCipher:
    """One tenant's keys, bound for sealing and opening fields of its documents.

    A stored field is either sealed bytes or, for documents written before
    encryption and not yet re-encrypted, a plain string (empty strings stay
    plain: a tombstone's text says nothing).
    """

    keys: TenantKeys

    def seal(self, collection: str, doc_id: str, field: str, value: str) -> bytes | str:
        if not value:
            return value
        where = aad(self.keys.tenant_id, collection, doc_id, field)
        return seal(self.keys.current, value.encode("utf-8"), where)

    def open(self, collection: str, doc_id: str, field: str, stored: Any) -> str:
        if isinstance(stored, bytes):
            where = aad(self.keys.tenant_id, collection, doc_id, field)
            return unseal(self.keys, stored, where).decode("utf-8")
        return "" if stored is None else str(stored)

    def tokens(self, words: Iterable[str]) -> list[str]:
        return blind_tokens(self.keys.search_key, words)


class TenantCrypto:
    """What a repository holds: its tenant, and where that tenant's keys come from."""

    def __init__(self, vault: KeyVault, tenant_id: str) -> None:
        self._vault = vault
        self._tenant_id = tenant_id

    async def cipher(self) -> TenantCipher:
        return TenantCipher(await self._vault.keys(self._tenant_id))


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    created_at: datetime
    active_from: datetime


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A re-encrypt job: records looked at so far of the total when it started."""

    key_id: str
    state: str
    done: int
    total: int
    not_before: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyStatus:
    tenant_id: str
    shredded: bool
    current_key_id: str
    keys: tuple[KeyInfo, ...]
    jobs: tuple[JobProgress, ...]


def _current(keys: list[Doc], now: datetime) -> Doc:
    active = [k for k in keys if k["active_from"] <= now]
    return max(active, key=lambda k: k["active_from"]) if active else keys[0]


class KeyVault:
    """The conversation service's key source: ``tenant_keys``, unwrapped, cached in memory."""

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        provider: KeyProvider,
        clock: Clock,
        *,
        cache_ttl: timedelta,
        rotation_delay: timedelta,
    ) -> None:
        if rotation_delay < cache_ttl:
            raise ValueError("the rotation delay must be at least the key cache's lifetime")
        self._db = db
        self._provider = provider
        self._clock = clock
        self.cache_ttl = cache_ttl
        self.rotation_delay = rotation_delay
        self._cache = CachingKeySource(
            _Unwrapping(self), ttl_seconds=cache_ttl.total_seconds(), clock=clock
        )

    def _col(self, tenant_id: str) -> TenantCollection:
        return TenantCollection(self._db[KEYS_COLLECTION], tenant_id)

    def _jobs(self) -> AsyncCollection[Doc]:
        return self._db[JOBS_COLLECTION]

    def for_tenant(self, tenant_id: str) -> TenantCrypto:
        return TenantCrypto(self, tenant_id)

    async def keys(self, tenant_id: str) -> TenantKeys:
        """Cached; a tenant without keys gets them; a shredded one raises KeysShreddedError."""
        return await self._cache.keys(tenant_id)

    async def fresh_keys(self, tenant_id: str) -> TenantKeys:
        """Read now, past the cache (the re-encrypt job must seal with the current key)."""
        return await self._load(tenant_id)

    async def _load(self, tenant_id: str) -> TenantKeys:
        col = self._col(tenant_id)
        doc = await col.find_one({})
        if doc is None:
            doc = await self._create(col)
        if doc.get("shredded"):
            raise KeysShreddedError(tenant_id)
        unwrapped = await asyncio.gather(
            self._provider.unwrap(tenant_id, bytes(doc["search_key"])),
            *(self._provider.unwrap(tenant_id, bytes(k["wrapped"])) for k in doc["keys"]),
        )
        pairs = zip(doc["keys"], unwrapped[1:], strict=True)
        by_id = {k["id"]: DataKey(k["id"], raw) for k, raw in pairs}
        current = _current(doc["keys"], self._clock.now())
        return TenantKeys(tenant_id, by_id[current["id"]], by_id, unwrapped[0])

    async def _wrapped_key(self, tenant_id: str, key_id: str, active_from: datetime) -> Doc:
        raw = DataKey.generate(key_id).key
        return {
            "id": key_id,
            "wrapped": await self._provider.wrap(tenant_id, raw),
            "created_at": self._clock.now(),
            "active_from": active_from,
        }

    async def _create(self, col: TenantCollection) -> Doc:
        now = self._clock.now()
        search_key = DataKey.generate("search").key
        doc: Doc = {
            "keys": [await self._wrapped_key(col.tenant_id, "k1", now)],
            "search_key": await self._provider.wrap(col.tenant_id, search_key),
            "created_at": now,
            "shredded": False,
        }
        try:
            await col.insert_one(doc)
        except DuplicateKeyError:
            # Another replica created them first: theirs are the tenant's keys.
            found = await col.find_one({})
            if found is None:
                raise
            return found
        return {**doc, "tenant_id": col.tenant_id}

    async def rotate(self, tenant_id: str) -> KeyInfo:
        """Stages a new data key and queues the re-encrypt job that moves records onto it."""
        await self.keys(tenant_id)  # creates the tenant's first key if there is none
        col = self._col(tenant_id)
        while True:
            doc = await col.find_one({})
            if doc is None or doc.get("shredded"):
                raise KeysShreddedError(tenant_id)
            now = self._clock.now()
            key_id = f"k{len(doc['keys']) + 1}"
            new = await self._wrapped_key(tenant_id, key_id, now + self.rotation_delay)
            # Conditional on the key count: two rotations at once add one key each, in turn.
            changed = await col.update_one(
                {"keys": {"$size": len(doc["keys"])}, "shredded": {"$ne": True}},
                {"$push": {"keys": new}, "$set": {"rotated_at": now}},
            )
            if changed.modified_count:
                break
        await self._jobs().insert_one(
            {
                "_id": f"{tenant_id}/{key_id}",
                "tenant_id": tenant_id,
                "key_id": key_id,
                "state": "pending",
                # Past this, no replica writes with an older key: one pass suffices.
                "not_before": new["active_from"] + self.cache_ttl,
                "phase": 0,
                "after_id": None,
                "done": 0,
                "total": 0,
                "lease_owner": None,
                "lease_until": now,
                "created_at": now,
            }
        )
        self._cache.invalidate(tenant_id)
        return KeyInfo(key_id, new["created_at"], new["active_from"])

    async def shred(self, tenant_id: str) -> None:
        """Destroys the tenant's keys for good: every sealed field and search token of
        theirs, in the database, its backups and any copy, is unreadable from now on.

        The tombstone stays, so first use does not mint new keys for an erased tenant.
        Other replicas drop their cached copy within ``cache_ttl``.
        """
        await self._col(tenant_id).update_one(
            {},
            {
                "$set": {"shredded": True, "shredded_at": self._clock.now(), "keys": []},
                "$unset": {"search_key": ""},
            },
            upsert=True,
        )
        await self._jobs().delete_many({"tenant_id": tenant_id})
        self._cache.invalidate(tenant_id)
        # Last: should it fail, the tombstone above already stops every use, and a
        # retried shred destroys it then.
        await self._provider.destroy(tenant_id)

    async def status(self, tenant_id: str) -> KeyStatus:
        doc = await self._col(tenant_id).find_one({})
        jobs = [
            JobProgress(
                key_id=str(j["key_id"]),
                state=str(j["state"]),
                done=int(j["done"]),
                total=int(j["total"]),
                not_before=j["not_before"],
                finished_at=j.get("finished_at"),
            )
            async for j in self._jobs().find({"tenant_id": tenant_id}, sort=[("created_at", 1)])
        ]
        if doc is None or doc.get("shredded") or not doc["keys"]:
            return KeyStatus(tenant_id, bool(doc and doc.get("shredded")), "", (), tuple(jobs))
        keys = tuple(KeyInfo(k["id"], k["created_at"], k["active_from"]) for k in doc["keys"])
        current = _current(doc["keys"], self._clock.now())["id"]
        return KeyStatus(tenant_id, False, current, keys, tuple(jobs))


class _Unwrapping:
    """The vault's uncached read, as the KeySource its cache sits in front of."""

    def __init__(self, vault: KeyVault) -> None:
        self._vault = vault

    async def keys(self, tenant_id: str) -> TenantKeys:
        return await self._vault._load(tenant_id)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: str
    tenant_id: str
    key_id: str
    phase: int
    # A document id: strings, but users' are ObjectIds.
    after_id: str | ObjectId | None
    done: int
    total: int


class KeyJobRepo:
    """Re-encrypt jobs, across tenants: leased so one replica runs each, resumable
    from the cursor each batch records."""

    def __init__(self, db: AsyncDatabase[Doc], vault: KeyVault, clock: Clock) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock

    async def claim(self, owner: str, lease: timedelta) -> ClaimedJob | None:
        """A job due and not leased by a live replica, now leased to ``owner``."""
        now = self._clock.now()
        doc = await self._db[JOBS_COLLECTION].find_one_and_update(
            {
                "state": {"$ne": "done"},
                "not_before": {"$lte": now},
                "$or": [{"lease_owner": owner}, {"lease_until": {"$lt": now}}],
            },
            {"$set": {"lease_owner": owner, "lease_until": now + lease, "state": "running"}},
            sort=[("not_before", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        if doc["total"] == 0 and doc["phase"] == 0 and doc["after_id"] is None:
            total = 0
            for name in JOB_ORDER:
                total += await TenantCollection(self._db[name], doc["tenant_id"]).count({})
            await self._db[JOBS_COLLECTION].update_one(
                {"_id": doc["_id"]}, {"$set": {"total": total}}
            )
            doc["total"] = total
        return ClaimedJob(
            id=str(doc["_id"]),
            tenant_id=str(doc["tenant_id"]),
            key_id=str(doc["key_id"]),
            phase=int(doc["phase"]),
            after_id=doc["after_id"],
            done=int(doc["done"]),
            total=int(doc["total"]),
        )

    async def step(
        self, job: ClaimedJob, owner: str, lease: timedelta, batch_size: int
    ) -> ClaimedJob | None:
        """Re-seals one batch and records where it got to; None once the job is done
        (or was taken over by another replica, or cancelled by a shred)."""
        keys = await self._vault.fresh_keys(job.tenant_id)
        cipher = TenantCipher(keys)
        phase, after_id, done = job.phase, job.after_id, job.done
        if phase < len(JOB_ORDER):
            name = JOB_ORDER[phase]
            col = TenantCollection(self._db[name], job.tenant_id)
            flt: Doc = {} if after_id is None else {"_id": {"$gt": after_id}}
            docs = [d async for d in col.find(flt, sort=[("_id", 1)], limit=batch_size)]
            updates = [u for d in docs if (u := _resealed(cipher, name, d)) is not None]
            await col.update_each(updates)
            if name == "messages":
                await self._reindex_legacy(job.tenant_id, updates)
            done += len(docs)
            if len(docs) < batch_size:
                phase, after_id = phase + 1, None
            else:
                after_id = docs[-1]["_id"]
        finished = phase >= len(JOB_ORDER)
        now = self._clock.now()
        changes: Doc = {
            "phase": phase,
            "after_id": after_id,
            "done": done,
            "lease_until": now + lease,
        }
        if finished:
            changes.update(state="done", finished_at=now, lease_owner=None)
        kept = await self._db[JOBS_COLLECTION].update_one(
            {"_id": job.id, "lease_owner": owner}, {"$set": changes}
        )
        if not kept.modified_count or finished:
            return None
        return ClaimedJob(job.id, job.tenant_id, job.key_id, phase, after_id, done, job.total)

    async def _reindex_legacy(self, tenant_id: str, updates: list[tuple[Doc, Doc]]) -> None:
        """Search entries of messages from before encryption get their words' tokens."""
        search = TenantCollection(self._db[SEARCH_COLLECTION], tenant_id)
        await search.update_each(
            [
                ({"_id": flt["_id"]}, {"$set": {"search_terms": change["$set"]["search_terms"]}})
                for flt, change in updates
                if "search_terms" in change["$set"]
            ]
        )


def _resealed(cipher: TenantCipher, collection: str, doc: Doc) -> tuple[Doc, Doc] | None:
    """(filter, update) moving the document's sealed fields to the current key, or None.

    The filter names the values read: a field changed since was written with the
    current key already, and the update then leaves the document alone.
    """
    id_field, fields = SEALED[collection]
    doc_id = str(doc[id_field])
    current = cipher.keys.current.key_id
    flt: Doc = {"_id": doc["_id"]}
    changes: Doc = {}
    for name in fields:
        stored = doc.get(name)
        if isinstance(stored, bytes):
            if blob_key_id(stored) == current:
                continue
            changes[name] = cipher.seal(
                collection, doc_id, name, cipher.open(collection, doc_id, name, stored)
            )
        elif isinstance(stored, str) and stored:
            changes[name] = cipher.seal(collection, doc_id, name, stored)
        elif isinstance(stored, dict):
            changes[name] = cipher.seal(
                collection, doc_id, name, json.dumps(stored, separators=(",", ":"))
            )
        else:
            continue
        flt[name] = stored
    if collection == "messages" and isinstance(doc.get("text"), str) and doc.get("text"):
        # Text stored before encryption came with its words in clear: tokens replace them.
        changes["search_terms"] = cipher.tokens(doc.get("search_terms") or [])
    return (flt, {"$set": changes}) if changes else None
