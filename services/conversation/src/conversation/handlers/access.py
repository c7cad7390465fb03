"""Who may do what: docs/permissions.md as code. Pure functions of caller and records."""

from __future__ import annotations

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.errors import FailedPrecondition, NotFound, PermissionDenied
from confab_core.identity import (
    BOT_USER_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
    agent_of,
)
from conversation.storage.conversations import Conversation
from conversation.storage.members import Member
from conversation.storage.messages import Message

PRIVATE_KINDS = frozenset({pb.CONVERSATION_KIND_DIRECT, pb.CONVERSATION_KIND_AI_ASSISTANT})
CHANNEL_KINDS = frozenset(
    {pb.CONVERSATION_KIND_PUBLIC_CHANNEL, pb.CONVERSATION_KIND_PRIVATE_CHANNEL}
)
FIXED_MEMBERSHIP_KINDS = PRIVATE_KINDS
ADMIN_ROLES = frozenset({pb.MEMBER_ROLE_OWNER, pb.MEMBER_ROLE_ADMIN})


def not_found() -> NotFound:
    return NotFound("conversation not found", "conversation_not_found")


def tenant_admin(caller: Caller) -> bool:
    # Not super_admin: platform staff hold no rights inside a tenant (they reach
    # escalated tickets through PlatformService only).
    return caller.has_role(ROLE_TENANT_ADMIN)


def staff(caller: Caller) -> bool:
    """Agents and admins of the tenant: the support desk's side. Not platform
    staff: they answer escalated tickets only, through PlatformService."""
    return caller.has_role(ROLE_AGENT, ROLE_TENANT_ADMIN)


def sender_role(caller: Caller) -> str:
    """The caller's highest role, as messages record it."""
    for role in (ROLE_SUPER_ADMIN, ROLE_TENANT_ADMIN, ROLE_AGENT):
        if role in caller.roles:
            return role
    if caller.has_role(ROLE_SERVICE):
        return "bot" if bot_user(caller.user_id) else "system"
    return ROLE_MEMBER


def bot_user(user_id: str) -> bool:
    """The legacy bot user, or one of the tenant's bot agents."""
    return user_id == BOT_USER_ID or agent_of(user_id) is not None


def can_create(caller: Caller, kind: int) -> bool:
    if kind in CHANNEL_KINDS:
        return tenant_admin(caller) or caller.has_role(ROLE_AGENT)
    return True


def can_see(caller: Caller, conv: Conversation, member: Member | None) -> bool:
    if conv.deleted:
        return False
    if member is not None or caller.has_role(ROLE_SERVICE):
        return True
    if conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL:
        return True
    if conv.kind == pb.CONVERSATION_KIND_SUPPORT and staff(caller):
        # Every agent of the tenant works its support conversations.
        return True
    return tenant_admin(caller) and conv.kind not in PRIVATE_KINDS


def require_visible(
    caller: Caller, conv: Conversation | None, member: Member | None
) -> Conversation:
    if conv is None or not can_see(caller, conv, member):
        raise not_found()
    return conv


def conv_admin(caller: Caller, conv: Conversation, member: Member | None) -> bool:
    if member is not None and member.role in ADMIN_ROLES:
        return True
    return tenant_admin(caller) and can_see(caller, conv, member)


def require_writable(conv: Conversation) -> None:
    if conv.archived:
        raise FailedPrecondition("conversation is archived", "conversation_archived")


def require_conv_admin(caller: Caller, conv: Conversation, member: Member | None) -> None:
    if not conv_admin(caller, conv, member):
        raise PermissionDenied("conversation admins only", "forbidden")


def require_editable_kind(conv: Conversation) -> None:
    if conv.kind in FIXED_MEMBERSHIP_KINDS or conv.kind == pb.CONVERSATION_KIND_DIRECT:
        raise PermissionDenied("this conversation cannot be changed", "not_editable")


def can_join(caller: Caller, conv: Conversation) -> bool:
    if conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL:
        return True
    return tenant_admin(caller) and conv.kind == pb.CONVERSATION_KIND_PRIVATE_CHANNEL


def can_add_members(caller: Caller, conv: Conversation, member: Member | None) -> bool:
    if conv_admin(caller, conv, member):
        return True
    return (
        conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL
        and member is not None
        and member.role != pb.MEMBER_ROLE_OBSERVER
    )


def can_remove(caller: Caller, conv: Conversation, member: Member | None, target: Member) -> bool:
    if tenant_admin(caller) and can_see(caller, conv, member):
        return True
    if member is None or member.role not in ADMIN_ROLES:
        return False
    # Only an owner removes an owner.
    return bool(target.role != pb.MEMBER_ROLE_OWNER or member.role == pb.MEMBER_ROLE_OWNER)


def can_set_role(caller: Caller, conv: Conversation, member: Member | None) -> bool:
    if tenant_admin(caller) and can_see(caller, conv, member):
        return True
    return member is not None and member.role == pb.MEMBER_ROLE_OWNER


def require_participant(member: Member | None, action: str) -> Member:
    """Members who may write (send, react); observers only read."""
    if member is None:
        raise PermissionDenied(f"only members can {action}", "not_a_member")
    if member.role == pb.MEMBER_ROLE_OBSERVER:
        raise PermissionDenied(f"observers cannot {action}", "observer_cannot_send")
    return member


def require_writer(caller: Caller, conv: Conversation, member: Member | None, action: str) -> None:
    """``require_participant``, except that agents and admins write in every
    support conversation of their tenant without being members."""
    if member is None and conv.kind == pb.CONVERSATION_KIND_SUPPORT and staff(caller):
        return
    require_participant(member, action)


def can_delete_message(
    caller: Caller, conv: Conversation, member: Member | None, message: Message
) -> bool:
    return message.sender_id == caller.user_id or conv_admin(caller, conv, member)
