"""The summary and the AI usage through the public API on the real fleet: a
member gets a summary by GET (and POST), anyone else and another tenant get
404; a tenant admin reads the month's usage, members are refused, a bad month is
422 and another tenant sees only its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_summary_for_members_only_and_usage_for_admins(users: Any) -> None:
    tenant, other = uid("tenant-ai"), uid("tenant-ai")
    ann, bob = uid("ann"), uid("bob")
    ann_api, bob_api = users(tenant, ann), users(tenant, bob)
    conv = (await ann_api.create("group", [bob], "Launch"))["id"]
    resp = await ann_api.send(conv, "Ship on Friday?", uid("c"))
    assert resp.status_code == 201, resp.text

    for method in ("GET", "POST"):
        summary = await bob_api.client.request(method, f"/conversations/{conv}/summary")
        assert summary.status_code == 200, summary.text
        assert set(summary.json()) == {"summary", "model_available"}
    for stranger in (users(tenant, uid("eve")), users(other, ann)):
        refused = await stranger.client.get(f"/conversations/{conv}/summary")
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "conversation_not_found"

    admin = users(tenant, uid("root"), roles=["tenant_admin"])
    usage = await admin.client.get("/ai/usage")
    assert usage.status_code == 200, usage.text
    assert usage.json()["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert usage.json()["quota_tokens"] == 0 and usage.json()["over_quota"] is False
    past = await admin.client.get("/ai/usage", params={"month": "2020-01"})
    assert past.json() == {
        "month": "2020-01",
        "tokens_in": 0,
        "tokens_out": 0,
        "quota_tokens": 0,
        "over_quota": False,
        "agents": [],
    }
    bad = await admin.client.get("/ai/usage", params={"month": "2020-13"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_month"
    refused = await ann_api.client.get("/ai/usage")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    theirs = await users(other, uid("root"), roles=["tenant_admin"]).client.get("/ai/usage")
    assert theirs.status_code == 200
    assert (theirs.json()["tokens_in"], theirs.json()["agents"]) == (0, [])
