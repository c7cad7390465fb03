"""Issue 10's closing check: a realistic mixed workload with PII, edits, deletes, an
export and a user erasure, then a byte scan of every MongoDB collection, every Kafka
topic and every Redis key for what must not be there in plaintext.

Everything a user wrote is sealed at rest and in Kafka, so the scan looks for all of
it, not only for what was erased or deleted: message words, display names, e-mail
addresses, and the PII the policy masked.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confab_devfleet import Fleet

from .conftest import Api, eventually
from .rawscan import scan_kafka, scan_mongo, scan_redis

pytestmark = pytest.mark.asyncio(loop_scope="session")

TENANT = "tenant-compliance"
CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"


def words(tag: str) -> str:
    """A word no fixture or default could contain, so a hit is this test's data."""
    return f"zq{tag}{uuid.uuid4().hex[:12]}"


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


async def finished(api: Api, job_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        resp = await api.client.get(f"/jobs/{job_id}")
        # Polling spends the job_status budget: a 429 only means "not yet".
        return {"status": "throttled"} if resp.status_code == 429 else dict(ok(resp))

    job = await eventually(probe, lambda j: j["status"] in ("succeeded", "failed"), timeout=60)
    assert job["status"] == "succeeded", job
    return dict(job)


async def test_mixed_workload_leaves_no_plaintext(fleet: Fleet) -> None:
    people = {
        user: {
            "name": f"{user.title()} {words('name')}",
            "email": f"{words('mail')}@example.org",
        }
        for user in ("alice", "bob", "carol")
    }

    def api(user: str, roles: list[str] | None = None) -> Api:
        token = fleet.token(
            TENANT, user, roles=roles, name=people[user]["name"], email=people[user]["email"]
        )
        return Api(fleet.gateway_url(), token)

    alice, bob, carol = api("alice", ["tenant_admin"]), api("bob"), api("carol")
    try:
        ok(await alice.client.patch("/tenant/policy", json={"pii_mode": "mask"}))
        conv = await alice.create("group", ["bob", "carol"], title=f"Plans {words('title')}")
        cid = conv["id"]

        kept = words("kept")
        edited_old, edited_new = words("old"), words("new")
        deleted = words("deleted")
        carols = [words("carol") for _ in range(3)]
        searchable = words("find")

        sent = ok(await alice.send(cid, f"{kept} pay with {CARD} please", "c1"), 201)
        assert CARD_DIGITS not in sent["message"]["text"].replace(" ", "")
        assert "[card ending 1111]" in sent["message"]["text"]
        to_edit = ok(await bob.send(cid, f"draft {edited_old}", "c2"), 201)["message"]
        to_delete = ok(await bob.send(cid, f"oops {deleted}", "c3"), 201)["message"]
        for i, text in enumerate(carols):
            ok(await carol.send(cid, f"carol says {text}", f"c4-{i}"), 201)
        ok(await alice.send(cid, f"look for {searchable}", "c5"), 201)

        path = f"/conversations/{cid}/messages"
        # A report's reason is someone's words too.
        reason = words("reason")
        ok(
            await bob.client.post(
                f"{path}/{sent['message']['id']}/report", json={"reason": reason}
            ),
            201,
        )
        ok(await bob.client.patch(f"{path}/{to_edit['id']}", json={"text": f"fixed {edited_new}"}))
        ok(await bob.client.delete(f"{path}/{to_delete['id']}"))

        # Search still works over keyed word hashes.
        found = ok(await alice.client.get("/search/messages", params={"q": searchable}))
        assert [m["text"] for m in found["messages"]] == [f"look for {searchable}"]

        # An export of the conversation, downloaded by its requester only.
        job = ok(
            await alice.client.post("/exports", json={"scope": "conversation", "id": cid}), 202
        )
        await finished(alice, job["id"])
        resp = await alice.client.get(f"/exports/{job['id']}/download")
        assert resp.status_code == 200, resp.text
        exported = resp.text
        assert kept in exported and edited_new in exported
        assert edited_old not in exported and deleted not in exported
        assert CARD_DIGITS not in exported.replace(" ", "")
        assert all(json.loads(line) for line in exported.splitlines())
        assert (await bob.client.get(f"/exports/{job['id']}/download")).status_code == 404

        # Carol is erased; her words leave the history.
        job = ok(await alice.client.post("/erasures", json={"user_id": "carol"}), 202)
        await finished(alice, job["id"])
        history = ok(await alice.client.get(path, params={"limit": 50}))
        texts = " ".join(m.get("text", "") for m in history["messages"])
        assert kept in texts and edited_new in texts
        assert not any(c in texts for c in carols)

        # What the relay has not published yet is still in the outbox, which the
        # MongoDB scan reads: no need to wait for Kafka.
        needles = [
            s.encode()
            for s in [
                kept,
                reason,
                edited_old,
                edited_new,
                deleted,
                searchable,
                *carols,
                CARD_DIGITS,
                CARD,
                conv["title"],
                *(p["name"] for p in people.values()),
                *(p["email"] for p in people.values()),
            ]
        ]
        # Controls: what is stored in the clear by design (ids) must be found, or
        # the scans read the wrong places.
        control = cid.encode()
        tenant = TENANT.encode()
        docs, in_mongo = await scan_mongo(fleet.mongo.url, [*needles, control])
        records, in_kafka = await scan_kafka(fleet.kafka.bootstrap_servers, [*needles, control])
        keys, in_redis = await scan_redis(fleet.redis.url, [*needles, tenant])
        assert docs > 20 and records > 10 and keys > 0
        assert any(repr(cid) in hit for hit in in_mongo), in_mongo
        assert any(repr(cid) in hit for hit in in_kafka), in_kafka
        assert any(repr(TENANT) in hit for hit in in_redis), in_redis
        leaks = [
            hit
            for hit in in_mongo + in_kafka + in_redis
            if repr(cid) not in hit and repr(TENANT) not in hit
        ]
        assert leaks == []
    finally:
        for client in (alice, bob, carol):
            await client.close()
