"""gRPC servicer of PolicyService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import policy_pb2 as pb
from confab.conversation.v1 import policy_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.policy import PolicyHandler, PolicyPatch
from conversation.storage.policies import PolicyRecord

_PII_MODES = {
    pb.PII_MODE_OFF: "off",
    pb.PII_MODE_FLAG: "flag",
    pb.PII_MODE_MASK: "mask",
    pb.PII_MODE_BLOCK: "block",
}
_ERASURE_MODES = {pb.ERASURE_MODE_DELETE: "delete", pb.ERASURE_MODE_ANONYMISE: "anonymise"}
_PII_MODE_VALUES = {name: value for value, name in _PII_MODES.items()}
_ERASURE_MODE_VALUES = {name: value for value, name in _ERASURE_MODES.items()}


def policy_message(p: PolicyRecord) -> pb.TenantPolicy:
    return pb.TenantPolicy(
        pii_mode=_PII_MODE_VALUES[p.pii_mode],
        pii_kinds=list(p.pii_kinds),
        mask_bot_prompts=p.mask_bot_prompts,
        retention_message_days=p.retention_message_days,
        retention_archived_days=p.retention_archived_days,
        retention_inactive_days=p.retention_inactive_days,
        audit_retention_days=p.audit_retention_days,
        erasure_mode=_ERASURE_MODE_VALUES[p.erasure_mode],
        updated_at=ts(p.updated_at),
        version=p.version,
    )


def _patch(r: pb.UpdatePolicyRequest) -> PolicyPatch:
    # An unknown or unspecified enum value becomes "", which validation names.
    return PolicyPatch(
        pii_mode=_PII_MODES.get(r.pii_mode, "") if r.HasField("pii_mode") else None,
        pii_kinds=tuple(r.pii_kinds.kinds) if r.HasField("pii_kinds") else None,
        mask_bot_prompts=r.mask_bot_prompts if r.HasField("mask_bot_prompts") else None,
        retention_message_days=(
            r.retention_message_days if r.HasField("retention_message_days") else None
        ),
        retention_archived_days=(
            r.retention_archived_days if r.HasField("retention_archived_days") else None
        ),
        retention_inactive_days=(
            r.retention_inactive_days if r.HasField("retention_inactive_days") else None
        ),
        audit_retention_days=(
            r.audit_retention_days if r.HasField("audit_retention_days") else None
        ),
        erasure_mode=(
            _ERASURE_MODES.get(r.erasure_mode, "") if r.HasField("erasure_mode") else None
        ),
        expected_version=r.expected_version if r.HasField("expected_version") else None,
    )


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    def __init__(self, policies: PolicyHandler) -> None:
        self._p = policies

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Ctx) -> pb.GetPolicyResponse:
        return pb.GetPolicyResponse(policy=policy_message(await self._p.get(current_caller())))

    async def UpdatePolicy(
        self, request: pb.UpdatePolicyRequest, context: Ctx
    ) -> pb.UpdatePolicyResponse:
        updated = await self._p.update(current_caller(), _patch(request))
        return pb.UpdatePolicyResponse(policy=policy_message(updated))
