"""Chat analytics through the public API on the real fleet: messages sent over
REST reach the conversation service's analytics consumer through the outbox,
the relay and Kafka, and a tenant admin reads the figures as JSON and CSV."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from .conftest import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_a_tenant_admin_sees_the_days_messages_and_active_users(users: Any) -> None:
    tenant, other = uid("tenant-an"), uid("tenant-an")
    ann, bob = uid("ann"), uid("bob")
    admin = users(tenant, uid("root"), roles=["tenant_admin"])
    ann_api, bob_api = users(tenant, ann, roles=["agent"]), users(tenant, bob)
    channel = (await ann_api.create("public_channel", [bob], "general"))["id"]
    for api, text in ((ann_api, "hello"), (bob_api, "hi"), (ann_api, "welcome")):
        resp = await api.send(channel, text, uid("c"))
        assert resp.status_code == 201, resp.text
    today = datetime.now(UTC).date().isoformat()
    query = {"from": today, "to": today, "limit": 3}

    async def usage() -> Any:
        resp: httpx.Response = await admin.client.get("/analytics/chat", params=query)
        assert resp.status_code == 200, resp.text
        return resp.json()

    body = await eventually(usage, lambda b: b["days"][0]["messages"] == 3, timeout=30)
    assert body["days"] == [{"day": today, "messages": 3, "active_users": 2}]
    assert body["busiest"] == [
        {"conversation_id": channel, "kind": "public_channel", "messages": 3}
    ]
    as_csv = await admin.client.get("/analytics/chat", params=query, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f"channel,{today},{channel},public_channel,3," in as_csv.text

    # Members and agents are refused; another tenant's admin sees none of it.
    for api in (ann_api, bob_api):
        refused = await api.client.get("/analytics/support", params={"from": today, "to": today})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    stranger = await users(other, uid("root"), roles=["tenant_admin"]).client.get(
        "/analytics/chat", params=query
    )
    assert stranger.json()["days"] == [{"day": today, "messages": 0, "active_users": 0}]
    assert stranger.json()["busiest"] == []
    bad = await admin.client.get(
        "/analytics/support", params={"from": "2024-01-01", "to": "2025-06-01"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_range"
    support = await admin.client.get(
        "/analytics/support", params={"from": today, "to": today, "format": "csv"}
    )
    assert support.status_code == 200 and support.text.startswith("bucket_start,group,opened")
