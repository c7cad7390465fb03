"""SlaService over gRPC, on the running service: translation, the stable codes
of a bad policy (nothing written), and tenancy by construction."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from confab.conversation.v1 import sla_pb2 as pb
from confab.conversation.v1 import sla_pb2_grpc
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.grpcx.client import channel
from confab_core.identity import ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller, acting_as
from confab_core.servicetoken import GATEWAY, InternalAuth
from confab_devservers import MongoServer
from conversation import app
from conversation.settings import ConversationSettings

INTERNAL_KEY = "sla-service-tests-internal-key-32b"


def admin(tenant: str) -> Caller:
    return Caller(tenant, "root", frozenset({ROLE_MEMBER, ROLE_TENANT_ADMIN}), "Root")


POLICY = pb.SlaPolicy(
    targets=[pb.SlaTargets(priority=spb.TICKET_PRIORITY_HIGH, first_response_seconds=900)],
    business_hours_only=True,
    business_hours=pb.BusinessHours(
        timezone="America/New_York",
        intervals=[pb.BusinessInterval(weekday=5, start="09:30", end="24:00")],
        holidays=["2026-07-03"],
    ),
    warning_seconds=120,
    breach_actions=[pb.SLA_BREACH_ACTION_ESCALATE],
)


@pytest.mark.asyncio
async def test_sla_service_over_grpc(mongo_server: MongoServer, key_file: Path) -> None:
    settings = ConversationSettings(
        mongo_url=mongo_server.url,
        kafka_bootstrap_servers="127.0.0.1:9",
        mongo_database=f"conv_{uuid.uuid4().hex[:12]}",
        grpc_port=0,
        internal_key=INTERNAL_KEY,  # type: ignore[arg-type]
        key_file=key_file,
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with app.running(settings, FakeClock()) as port:
        auth = InternalAuth(GATEWAY, INTERNAL_KEY.encode(), FakeClock())
        async with channel(f"127.0.0.1:{port}", auth, "conversation") as chan:
            stub = sla_pb2_grpc.SlaServiceStub(chan)

            async def put(caller: Caller, policy: pb.SlaPolicy, version: int) -> pb.SlaPolicy:
                with acting_as(caller):
                    request = pb.PutSlaPolicyRequest(policy=policy, expected_version=version)
                    return (await stub.PutSlaPolicy(request)).policy

            async def get(caller: Caller) -> pb.SlaPolicy:
                with acting_as(caller):
                    return (await stub.GetSlaPolicy(pb.GetSlaPolicyRequest())).policy

            stored = await put(admin("t-a"), POLICY, 0)
            assert stored.version == 1 and stored.HasField("updated_at")
            stored.ClearField("updated_at")
            stored.version = 0
            assert stored == POLICY
            # Another tenant's admin sees only their own (absent) policy.
            assert (await get(admin("t-b"))).version == 0

            bad = pb.SlaPolicy()
            bad.CopyFrom(POLICY)
            bad.business_hours.timezone = "Nowhere/Land"
            for policy, code, status in (
                (bad, "invalid_timezone", grpc.StatusCode.INVALID_ARGUMENT),
                (POLICY, "version_conflict", grpc.StatusCode.FAILED_PRECONDITION),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await put(admin("t-a"), policy, 0)
                assert info.value.code() == status
                trailers = dict(info.value.trailing_metadata() or ())
                assert trailers[ERROR_CODE_METADATA_KEY] == code
            member = Caller("t-a", "mia", frozenset({ROLE_MEMBER}), "Mia")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await get(member)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (await get(admin("t-a"))).version == 1
