"""The conversation service's PolicyService, as the gateway calls it, and the
translation between its messages and the public JSON shapes."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, cast

from confab.conversation.v1 import policy_pb2 as ppb
from confab_core.identity import Caller
from gateway import schemas
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.policy_pb2_grpc import PolicyServiceAsyncStub

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_DAY_FIELDS = (
    "retention_message_days",
    "retention_archived_days",
    "retention_inactive_days",
    "audit_retention_days",
)


class PolicyClient(PeerClient):
    def __init__(self, stub: PolicyServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def get_policy(
        self, caller: Caller, request: ppb.GetPolicyRequest
    ) -> ppb.GetPolicyResponse:
        return await self._call(self._stub.GetPolicy, request, caller)

    async def update_policy(
        self, caller: Caller, request: ppb.UpdatePolicyRequest
    ) -> ppb.UpdatePolicyResponse:
        return await self._call(self._stub.UpdatePolicy, request, caller)


def policy_out(p: ppb.TenantPolicy) -> schemas.PolicyOut:
    return schemas.PolicyOut(
        pii_mode=cast(schemas.PiiModeName, ppb.PiiMode.Name(p.pii_mode)[9:].lower()),
        pii_kinds=cast(list[schemas.PiiKindName], list(p.pii_kinds)),
        mask_bot_prompts=p.mask_bot_prompts,
        retention_message_days=p.retention_message_days,
        retention_archived_days=p.retention_archived_days,
        retention_inactive_days=p.retention_inactive_days,
        audit_retention_days=p.audit_retention_days,
        erasure_mode=cast(
            schemas.ErasureModeName, ppb.ErasureMode.Name(p.erasure_mode)[13:].lower()
        ),
        updated_at=p.updated_at.ToDatetime(tzinfo=UTC) if p.HasField("updated_at") else None,
        version=p.version,
    )


def _enum_value(enum: type, prefix: str, name: str) -> int:
    # An unknown name becomes UNSPECIFIED, which the service refuses as
    # invalid_policy naming the field, like every other bound.
    values: dict[str, int] = dict(enum.items())  # type: ignore[attr-defined]
    return values.get(f"{prefix}{name.upper()}", 0)


def update_request(body: schemas.PolicyPatchIn) -> ppb.UpdatePolicyRequest:
    req = ppb.UpdatePolicyRequest()
    if body.pii_mode is not None:
        req.pii_mode = cast(
            ppb.PiiMode.ValueType, _enum_value(ppb.PiiMode, "PII_MODE_", body.pii_mode)
        )
    if body.pii_kinds is not None:
        req.pii_kinds.CopyFrom(ppb.PiiKindList(kinds=body.pii_kinds))
    if body.mask_bot_prompts is not None:
        req.mask_bot_prompts = body.mask_bot_prompts
    for field in _DAY_FIELDS:
        days = getattr(body, field)
        if days is not None:
            # Out of int32 is out of bounds too: the service names the field.
            setattr(req, field, max(_INT32_MIN, min(days, _INT32_MAX)))
    if body.erasure_mode is not None:
        req.erasure_mode = cast(
            ppb.ErasureMode.ValueType,
            _enum_value(ppb.ErasureMode, "ERASURE_MODE_", body.erasure_mode),
        )
    if body.expected_version is not None:
        req.expected_version = body.expected_version
    return req
