"""Exports, erasures and jobs through the public REST API of a real fleet, then
the raw databases and Redis read directly for what must be gone."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from confab_devfleet import Fleet
from pymongo import AsyncMongoClient

from .conftest import Api, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def finished(api: Api, job_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        resp = await api.client.get(f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    return dict(
        await eventually(probe, lambda j: j["status"] in ("succeeded", "failed"), timeout=60)
    )


async def chat(alice: Api, bob_id: str, texts: list[str]) -> str:
    conv = await alice.create("group", [bob_id])
    for i, text in enumerate(texts):
        resp = await alice.send(conv["id"], text, f"m{i}")
        assert resp.status_code in (200, 201), resp.text
    return str(conv["id"])


async def test_an_export_is_queued_run_and_downloaded_by_its_requester_only(
    users: Callable[..., Api],
) -> None:
    tenant = uid("tenant-jobs")
    alice, bob = users(tenant, "alice"), users(tenant, "bob")
    conv = await chat(alice, "bob", ["first words", "second, with a comma", "third"])

    resp = await bob.client.post("/exports", json={"scope": "conversation", "id": conv})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["kind"] == "export" and job["status"] in ("queued", "running", "succeeded")
    done = await finished(bob, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["done"] == done["progress"]["total"] == 6

    download = await bob.client.get(f"/exports/{job['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in download.text.splitlines()]
    assert [r["type"] for r in records] == ["conversation", "member", "member"] + ["message"] * 3
    assert [r["text"] for r in records[3:]] == ["first words", "second, with a comma", "third"]

    # Someone else of the tenant, the same user id in another tenant: it does not exist.
    for stranger in (alice, users(uid("tenant-other"), "bob")):
        for path in (
            f"/jobs/{job['id']}",
            f"/exports/{job['id']}",
            f"/exports/{job['id']}/download",
        ):
            resp = await stranger.client.get(path)
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["code"] == "job_not_found"

    resp = await alice.client.post(
        "/exports", json={"scope": "conversation", "id": conv, "format": "csv"}
    )
    csv_done = await finished(alice, resp.json()["id"])
    body = (await alice.client.get(f"/exports/{csv_done['id']}/download")).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["text"] for r in rows] == ["first words", "second, with a comma", "third"]


async def test_export_and_erasure_bad_input_and_permissions(users: Callable[..., Api]) -> None:
    tenant = uid("tenant-jobs")
    member = users(tenant, "member")
    admin = users(tenant, "root", roles=["tenant_admin"])
    conv = await chat(admin, "member", ["hi"])
    cases: list[tuple[Api, str, dict[str, Any], int, str]] = [
        (member, "/exports", {"scope": "galaxy"}, 422, ""),
        (member, "/exports", {"scope": "conversation", "id": conv, "format": "pdf"}, 422, ""),
        (member, "/exports", {"scope": "conversation"}, 422, "invalid_id"),
        (member, "/exports", {"scope": "tenant"}, 403, "forbidden"),
        (member, "/exports", {"scope": "user", "id": "root"}, 403, "forbidden"),
        (
            member,
            "/exports",
            {"scope": "conversation", "id": "nope"},
            404,
            "conversation_not_found",
        ),
        (member, "/erasures", {"user_id": "root"}, 403, "forbidden"),
        (admin, "/erasures", {}, 422, ""),
        (admin, "/erasures", {"user_id": "confab-bot"}, 422, "invalid_user_id"),
        # Tenant erasure is a platform operation: tenant admins may not.
        (admin, f"/platform/tenants/{tenant}/erasure", {"confirm_tenant_id": tenant}, 403, ""),
    ]
    for api, path, body, status, code in cases:
        resp = await api.client.post(path, json=body)
        assert resp.status_code == status, (path, body, resp.text)
        if code:
            assert resp.json()["error"]["code"] == code, resp.text
    resp = await member.client.get("/jobs/nope")
    assert resp.status_code == 404
    # Downloading what is not finished is a conflict, not a broken stream.
    fresh = users(tenant, "fresh")
    resp = await fresh.client.post("/exports", json={"scope": "user", "id": "fresh"})
    job_id = resp.json()["id"]
    early = await fresh.client.get(f"/exports/{job_id}/download")
    assert early.status_code in (200, 409), early.text
    # Five exports (creations and downloads together) per user and 10 s window:
    # eleven calls in a row meet the limit even if they straddle two windows.
    eager = users(tenant, "eager")
    codes = [
        (await eager.client.post("/exports", json={"scope": "user", "id": "eager"})).status_code
        for _ in range(11)
    ]
    assert codes[0] == 202 and 429 in codes, codes


async def raw_mentions(fleet: Fleet, needles: list[str]) -> list[str]:
    """Every place in MongoDB (all databases) and Redis that still holds a needle."""
    found: list[str] = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(fleet.mongo.url)
    try:
        for name in await client.list_database_names():
            if name in ("admin", "local", "config"):
                continue
            db = client[name]
            for col in await db.list_collection_names():
                # The request stays: the job and the audit record name the erased user.
                if col in ("jobs", "audit"):
                    continue
                async for doc in db[col].find({}):
                    text = repr(doc)
                    found += [f"{name}.{col}: {n}" for n in needles if n in text]
    finally:
        await client.close()
    redis = aioredis.from_url(fleet.redis.url, decode_responses=True)
    try:
        async for key in redis.scan_iter(count=1000):
            # Rate-limit counters name the user and expire within 20 s.
            if key.startswith("rl:"):
                continue
            kind = await redis.type(key)
            value = repr(key)
            if kind == "hash":
                value += repr(await redis.hgetall(key))
            elif kind == "zset":
                value += repr(await redis.zrange(key, 0, -1))
            elif kind == "string":
                value += repr(await redis.get(key))
            found += [f"redis {key}: {n}" for n in needles if n in value]
    finally:
        await redis.aclose()
    return found


async def test_a_user_erasure_leaves_nothing_of_them_in_mongodb_or_redis(
    fleet: Fleet, users: Callable[..., Api], sockets: Callable[..., Any]
) -> None:
    tenant = uid("tenant-erase")
    victim_id = uid("victim")
    name, email = "Zelda Quaxworth", f"{victim_id}@erase.example"
    victim = users(tenant, victim_id, name=name, email=email)
    admin = users(tenant, "root", roles=["tenant_admin"])
    conv = await chat(admin, victim_id, ["hello xylophone-for-victim"])
    for i in range(3):
        resp = await victim.send(conv, f"my secret quokka{i}", f"v{i}")
        assert resp.status_code in (200, 201), resp.text
    await admin.send(conv, "are you there", "a9")

    async def notified() -> int:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(fleet.mongo.url)
        try:
            col = client["confab_notification"]["notifications"]
            return await col.count_documents({"tenant_id": tenant, "user_id": victim_id})
        finally:
            await client.close()

    # Offline so far, so they were notified; now some presence in Redis too.
    await eventually(notified, lambda n: n >= 1, timeout=30)
    sock = await sockets(tenant, victim_id, name=name, email=email)
    await sock.close()
    before = await raw_mentions(fleet, [victim_id])
    assert any(m.startswith("redis") for m in before), before
    assert any(m.startswith("confab_notification") for m in before), before

    # Their own export first: profile, membership, messages and notifications.
    resp = await victim.client.post("/exports", json={"scope": "user", "id": victim_id})
    exported = await finished(victim, resp.json()["id"])
    body = (await victim.client.get(f"/exports/{exported['id']}/download")).text
    types = [json.loads(line)["type"] for line in body.splitlines()]
    assert types[:2] == ["user", "member"] and types.count("message") == 3, types
    assert "notification" in types and email in body

    resp = await admin.client.post("/erasures", json={"user_id": victim_id})
    assert resp.status_code == 202, resp.text
    done = await finished(admin, resp.json()["id"])
    assert done["status"] == "succeeded", done
    # Others' notifications previewed the victim's words: the message_deleted
    # events of the erasure blank them once the notification consumer has them.
    needles = [victim_id, name, email, "quokka"]
    await eventually(lambda: raw_mentions(fleet, needles), lambda found: found == [], timeout=30)
    assert await notified() == 0
    page = await admin.client.get(f"/conversations/{conv}/messages")
    texts = [m["text"] for m in page.json()["messages"]]
    assert texts == ["hello xylophone-for-victim", "", "", "", "are you there"]


async def test_a_tenant_erasure_by_platform_staff_deletes_the_tenant(
    fleet: Fleet, users: Callable[..., Api]
) -> None:
    tenant = uid("tenant-gone")
    owner = users(tenant, "owner", roles=["tenant_admin"])
    await chat(owner, "guest", ["tenant secret walrus"])
    staff = users("confab-platform", "staff", roles=["super_admin"])
    erase = f"/platform/tenants/{tenant}/erasure"
    resp = await staff.client.post(erase, json={"confirm_tenant_id": "another"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "confirmation_mismatch"
    resp = await staff.client.post(erase, json={"confirm_tenant_id": tenant})
    assert resp.status_code == 202, resp.text
    job_path = f"/platform/tenants/{tenant}/jobs/{resp.json()['id']}"

    async def probe() -> dict[str, Any]:
        got = await staff.client.get(job_path)
        assert got.status_code == 200, got.text
        return dict(got.json())

    done = await eventually(probe, lambda j: j["status"] in ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded", done
    # The keys' tombstone names the tenant: it stops new keys for it, holds none.
    left = [m for m in await raw_mentions(fleet, ["walrus", tenant]) if ".tenant_keys:" not in m]
    assert left == []
