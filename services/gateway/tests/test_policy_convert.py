"""The policy body's translation to PolicyService requests and back: pure logic."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import policy_pb2 as ppb
from gateway import schemas
from gateway.clients.policy import policy_out, update_request


def test_only_the_fields_present_are_sent() -> None:
    req = update_request(schemas.PolicyPatchIn(pii_mode="mask", retention_message_days=30))
    assert req.pii_mode == ppb.PII_MODE_MASK
    assert req.retention_message_days == 30
    for absent in ("pii_kinds", "mask_bot_prompts", "audit_retention_days", "erasure_mode"):
        assert not req.HasField(absent), absent


def test_an_empty_kind_list_is_sent_as_present() -> None:
    req = update_request(schemas.PolicyPatchIn(pii_kinds=[]))
    assert req.HasField("pii_kinds")
    assert list(req.pii_kinds.kinds) == []


def test_unknown_names_and_huge_numbers_reach_the_service_as_out_of_bounds() -> None:
    req = update_request(
        schemas.PolicyPatchIn(pii_mode="shout", erasure_mode="burn", retention_archived_days=10**30)
    )
    # UNSPECIFIED and int32 max: the service refuses both as invalid_policy.
    assert req.HasField("pii_mode") and req.pii_mode == ppb.PII_MODE_UNSPECIFIED
    assert req.HasField("erasure_mode") and req.erasure_mode == ppb.ERASURE_MODE_UNSPECIFIED
    assert req.retention_archived_days == 2**31 - 1
    assert update_request(
        schemas.PolicyPatchIn(audit_retention_days=-(10**12))
    ).audit_retention_days == -(2**31)


def test_policy_out_names_the_modes() -> None:
    when = Timestamp()
    when.FromDatetime(datetime(2026, 5, 1, 12, tzinfo=UTC))
    out = policy_out(
        ppb.TenantPolicy(
            pii_mode=ppb.PII_MODE_BLOCK,
            pii_kinds=["card"],
            erasure_mode=ppb.ERASURE_MODE_ANONYMISE,
            audit_retention_days=365,
            updated_at=when,
            version=3,
        )
    )
    assert out.pii_mode == "block"
    assert out.erasure_mode == "anonymise"
    assert out.pii_kinds == ["card"]
    assert out.updated_at == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert out.version == 3
    unset = ppb.TenantPolicy(pii_mode=ppb.PII_MODE_FLAG, erasure_mode=ppb.ERASURE_MODE_DELETE)
    assert policy_out(unset).updated_at is None
