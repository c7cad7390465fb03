"""The tenant policy API and PII protection, as a client meets them through the
gateway: rights, bad input, isolation, the rate limit, and 422 pii_blocked."""

from __future__ import annotations

import uuid

import pytest

from .conftest import Api

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CARD_TEXT = "charge 4242 4242 4242 4242 please"


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def admin(users, tenant: str) -> Api:
    api: Api = users(tenant, uid("admin"), roles=["tenant_admin"])
    return api


async def test_admins_read_and_change_the_policy_members_may_not(users) -> None:
    tenant = uid("tenant-policy")
    boss = admin(users, tenant)
    member = users(tenant, uid("member"))

    got = await boss.client.get("/tenant/policy")
    assert got.status_code == 200, got.text
    assert got.json()["pii_mode"] == "flag"
    assert got.json()["version"] == 0

    changed = await boss.client.patch(
        "/tenant/policy", json={"pii_mode": "mask", "retention_message_days": 30}
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["pii_mode"], body["retention_message_days"], body["version"]) == ("mask", 30, 1)
    assert body["erasure_mode"] == "delete"

    for call in (
        member.client.get("/tenant/policy"),
        member.client.patch("/tenant/policy", json={"pii_mode": "off"}),
    ):
        refused = await call
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"

    stale = await boss.client.patch(
        "/tenant/policy", json={"pii_mode": "off", "expected_version": 0}
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_conflict"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"retention_message_days": 4000}, "invalid_policy", "retention_message_days"),
        ({"audit_retention_days": 30}, "invalid_policy", "audit_retention_days"),
        ({"retention_inactive_days": 10**40}, "invalid_policy", "retention_inactive_days"),
        ({"pii_mode": "shout"}, "invalid_policy", "pii_mode"),
        ({"erasure_mode": "burn"}, "invalid_policy", "erasure_mode"),
        ({"pii_kinds": ["passport"]}, "invalid_policy", "pii_kinds"),
        ({"pii_mode": 3}, "invalid_request", "pii_mode"),
        ({"colour": "red"}, "invalid_request", "colour"),
    ],
)
async def test_bad_input_is_a_clear_422(users, body, code, field) -> None:
    boss = admin(users, uid("tenant-bad"))
    resp = await boss.client.patch("/tenant/policy", json=body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(field)
    assert (await boss.client.get("/tenant/policy")).json()["version"] == 0


async def test_block_refuses_with_pii_blocked_only_in_its_tenant(users) -> None:
    blocked, other = uid("tenant-block"), uid("tenant-free")
    boss = admin(users, blocked)
    patched = await boss.client.patch("/tenant/policy", json={"pii_mode": "block"})
    assert patched.status_code == 200, patched.text

    alice = users(blocked, uid("alice"))
    conv = await alice.create("group", [uid("bob")])
    refused = await alice.send(conv["id"], CARD_TEXT, uid("m"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "pii_blocked"
    assert "card" in refused.json()["error"]["message"]
    fine = await alice.send(conv["id"], "no numbers here", uid("m"))
    assert fine.status_code == 201, fine.text
    assert (await boss.client.get("/tenant/policy")).json()["pii_counts"] == {"card": 1}

    # Tenant B flags (its default): stored as written, and another tenant's admin
    # sees only their own policy.
    carol = users(other, uid("carol"))
    conv_b = await carol.create("group", [uid("dave")])
    stored = await carol.send(conv_b["id"], CARD_TEXT, uid("m"))
    assert stored.status_code == 201, stored.text
    assert stored.json()["message"]["text"] == CARD_TEXT
    theirs = (await admin(users, other).client.get("/tenant/policy")).json()
    assert (theirs["pii_mode"], theirs["pii_counts"]) == ("flag", {"card": 1})


async def test_policy_calls_are_rate_limited(users) -> None:
    boss = admin(users, uid("tenant-rl"))
    statuses = [(await boss.client.get("/tenant/policy")).status_code for _ in range(21)]
    assert set(statuses) <= {200, 429} and 429 in statuses, statuses
