"""PolicyService over real gRPC: rights, bounds, partial updates, tenant isolation,
and the cached read message writes consult."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import policy_pb2 as pb
from confab.conversation.v1 import policy_pb2_grpc as pb_grpc
from confab_core.clock import FakeClock
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from confab_core.servicetoken import CONVERSATION
from conversation.handlers.policy import POLICY_CACHE_SECONDS, PolicyHandler, PolicyPatch
from conversation.policy_servicer import PolicyServicer
from conversation.storage.db import Database

from .conftest import ALICE, TENANT_A, TENANT_B, user
from .test_servicer import AUTH, GATEWAY_AUTH, As, trailing_code

ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)
OTHER_ADMIN = user("boss", TENANT_A, ROLE_TENANT_ADMIN)
STAFF = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
SERVICE = user("confab-bot", TENANT_A, ROLE_SERVICE)
ADMIN_B = user("root", TENANT_B, ROLE_TENANT_ADMIN)


@pytest.fixture
def policies(db: Database, clock: FakeClock) -> PolicyHandler:
    return PolicyHandler(db, clock)


@pytest_asyncio.fixture
async def stub(policies: PolicyHandler) -> AsyncIterator[pb_grpc.PolicyServiceStub]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    servicer = PolicyServicer(policies)
    server.add(
        lambda s: pb_grpc.add_PolicyServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["PolicyService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield pb_grpc.PolicyServiceStub(ch)
    finally:
        await ch.close()
        await server.stop(0)


async def _refused(call: object, status: grpc.StatusCode, code: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == status
    assert trailing_code(info.value) == code
    return info.value.details() or ""


@pytest.mark.asyncio
async def test_a_new_tenant_reads_the_defaults(stub: pb_grpc.PolicyServiceStub) -> None:
    with As(ADMIN):
        policy = (await stub.GetPolicy(pb.GetPolicyRequest())).policy
    assert policy.pii_mode == pb.PII_MODE_FLAG
    assert list(policy.pii_kinds) == []
    assert not policy.mask_bot_prompts
    assert policy.retention_message_days == 0
    assert policy.audit_retention_days == 0
    assert policy.erasure_mode == pb.ERASURE_MODE_DELETE
    assert policy.version == 0
    assert not policy.HasField("updated_at")


@pytest.mark.asyncio
async def test_a_partial_update_changes_only_the_fields_present(
    stub: pb_grpc.PolicyServiceStub, clock: FakeClock
) -> None:
    with As(ADMIN):
        first = await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(
                pii_mode=pb.PII_MODE_MASK, pii_kinds=pb.PiiKindList(kinds=["card", "email"])
            )
        )
        second = await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(retention_message_days=30, mask_bot_prompts=True)
        )
        read = (await stub.GetPolicy(pb.GetPolicyRequest())).policy
    assert first.policy.version == 1
    assert read == second.policy
    assert read.pii_mode == pb.PII_MODE_MASK
    assert list(read.pii_kinds) == ["card", "email"]
    assert read.retention_message_days == 30
    assert read.mask_bot_prompts
    assert read.version == 2
    assert read.updated_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now()
    with As(OTHER_ADMIN):
        # An empty list present clears the kinds: every kind applies again.
        cleared = await stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_kinds=pb.PiiKindList()))
    assert list(cleared.policy.pii_kinds) == []
    assert cleared.policy.pii_mode == pb.PII_MODE_MASK


@pytest.mark.asyncio
async def test_only_admins_change_it_and_only_admins_and_services_read_it(
    stub: pb_grpc.PolicyServiceStub,
) -> None:
    for outsider in (ALICE, STAFF):
        with As(outsider):
            await _refused(
                stub.GetPolicy(pb.GetPolicyRequest()),
                grpc.StatusCode.PERMISSION_DENIED,
                "forbidden",
            )
            await _refused(
                stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_OFF)),
                grpc.StatusCode.PERMISSION_DENIED,
                "forbidden",
            )
    with As(SERVICE):
        assert (await stub.GetPolicy(pb.GetPolicyRequest())).policy.version == 0
        await _refused(
            stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_OFF)),
            grpc.StatusCode.PERMISSION_DENIED,
            "forbidden",
        )
    with As(ADMIN):
        assert (await stub.GetPolicy(pb.GetPolicyRequest())).policy.version == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_UNSPECIFIED), "pii_mode"),
        (pb.UpdatePolicyRequest(pii_mode=99), "pii_mode"),  # type: ignore[arg-type]
        (pb.UpdatePolicyRequest(pii_kinds=pb.PiiKindList(kinds=["passport"])), "pii_kinds"),
        (pb.UpdatePolicyRequest(pii_kinds=pb.PiiKindList(kinds=["card", "card"])), "pii_kinds"),
        (pb.UpdatePolicyRequest(retention_message_days=-1), "retention_message_days"),
        (pb.UpdatePolicyRequest(retention_message_days=3651), "retention_message_days"),
        (pb.UpdatePolicyRequest(retention_archived_days=4000), "retention_archived_days"),
        (pb.UpdatePolicyRequest(retention_inactive_days=-5), "retention_inactive_days"),
        (pb.UpdatePolicyRequest(audit_retention_days=364), "audit_retention_days"),
        (pb.UpdatePolicyRequest(audit_retention_days=3651), "audit_retention_days"),
        (pb.UpdatePolicyRequest(erasure_mode=pb.ERASURE_MODE_UNSPECIFIED), "erasure_mode"),
    ],
)
@pytest.mark.asyncio
async def test_bad_values_are_invalid_policy_naming_the_field(
    stub: pb_grpc.PolicyServiceStub, request_: pb.UpdatePolicyRequest, field: str
) -> None:
    with As(ADMIN):
        details = await _refused(
            stub.UpdatePolicy(request_), grpc.StatusCode.INVALID_ARGUMENT, "invalid_policy"
        )
        assert details.startswith(f"{field}:")
        # Nothing was stored.
        assert (await stub.GetPolicy(pb.GetPolicyRequest())).policy.version == 0


@pytest.mark.asyncio
async def test_the_bounds_themselves_are_accepted(stub: pb_grpc.PolicyServiceStub) -> None:
    with As(ADMIN):
        low = await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(
                retention_message_days=1,
                retention_archived_days=1,
                retention_inactive_days=1,
                audit_retention_days=365,
                erasure_mode=pb.ERASURE_MODE_ANONYMISE,
            )
        )
        high = await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(
                retention_message_days=3650,
                retention_archived_days=0,
                retention_inactive_days=3650,
                audit_retention_days=3650,
            )
        )
    assert low.policy.erasure_mode == pb.ERASURE_MODE_ANONYMISE
    assert high.policy.retention_message_days == 3650
    assert high.policy.audit_retention_days == 3650


@pytest.mark.asyncio
async def test_an_update_from_a_stale_read_is_a_conflict(stub: pb_grpc.PolicyServiceStub) -> None:
    with As(ADMIN):
        await stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_MASK))
        await _refused(
            stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_OFF, expected_version=0)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "version_conflict",
        )
        ok = await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_OFF, expected_version=1)
        )
    assert ok.policy.version == 2


@pytest.mark.asyncio
async def test_one_tenants_policy_never_affects_another(
    stub: pb_grpc.PolicyServiceStub, policies: PolicyHandler
) -> None:
    with As(ADMIN):
        await stub.UpdatePolicy(
            pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_BLOCK, retention_message_days=7)
        )
    with As(ADMIN_B):
        theirs = (await stub.GetPolicy(pb.GetPolicyRequest())).policy
        assert theirs.pii_mode == pb.PII_MODE_FLAG
        assert theirs.version == 0
        await stub.UpdatePolicy(pb.UpdatePolicyRequest(pii_mode=pb.PII_MODE_OFF))
    assert (await policies.current(TENANT_A)).pii_mode == "block"
    assert (await policies.current(TENANT_B)).pii_mode == "off"
    with As(ADMIN):
        assert (await stub.GetPolicy(pb.GetPolicyRequest())).policy.pii_mode == pb.PII_MODE_BLOCK


@pytest.mark.asyncio
async def test_another_replicas_change_takes_effect_within_the_cache_time(
    db: Database, clock: FakeClock
) -> None:
    here = PolicyHandler(db, clock)
    there = PolicyHandler(db, clock)
    assert (await here.current(TENANT_A)).pii_mode == "flag"
    await there.update(ADMIN, PolicyPatch(pii_mode="block"))
    # The replica that made the change sees it at once...
    assert (await there.current(TENANT_A)).pii_mode == "block"
    # ...another one when its cached copy expires.
    assert (await here.current(TENANT_A)).pii_mode == "flag"
    clock.advance(POLICY_CACHE_SECONDS)
    assert (await here.current(TENANT_A)).pii_mode == "block"


@pytest.mark.asyncio
async def test_a_burst_after_expiry_reads_the_policy_once(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = PolicyHandler(db, clock)
    reads = 0
    real = Database.policies

    def counting(self: Database, tenant_id: str) -> object:
        nonlocal reads
        reads += 1
        return real(self, tenant_id)

    monkeypatch.setattr(Database, "policies", counting)
    found = await asyncio.gather(*(handler.current(TENANT_A) for _ in range(20)))
    assert {p.pii_mode for p in found} == {"flag"}
    assert reads == 1
    clock.advance(POLICY_CACHE_SECONDS)
    await asyncio.gather(*(handler.current(TENANT_A) for _ in range(20)))
    assert reads == 2
