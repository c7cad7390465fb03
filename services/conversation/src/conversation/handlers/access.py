"""Who may do what: docs/permissions.md as code. Pure functions of the caller, the
permissions its tenant's role matrix grants it (rolematrix.py) and records."""

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
from conversation.handlers import rolematrix as rm
from conversation.storage.conversations import Conversation
from conversation.storage.members import Member
from conversation.storage.messages import Message

PRIVATE_KINDS = frozenset({pb.CONVERSATION_KIND_DIRECT, pb.CONVERSATION_KIND_AI_ASSISTANT})
CHANNEL_KINDS = frozenset(
    {pb.CONVERSATION_KIND_PUBLIC_CHANNEL, pb.CONVERSATION_KIND_PRIVATE_CHANNEL}
)
# Where chat.access_private decides who may be.
PRIVATE_GROUP_KINDS = frozenset({pb.CONVERSATION_KIND_PRIVATE_CHANNEL, pb.CONVERSATION_KIND_GROUP})
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


def can_create(perms: frozenset[str], kind: int) -> bool:
    """Whoever creates a conversation is in it, so creating needs the right to
    be there too."""
    if kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL:
        return rm.CREATE_CHANNELS in perms and rm.ACCESS_CHANNELS in perms
    if kind == pb.CONVERSATION_KIND_PRIVATE_CHANNEL:
        return rm.CREATE_CHANNELS in perms and rm.ACCESS_PRIVATE in perms
    if kind == pb.CONVERSATION_KIND_GROUP:
        return rm.ACCESS_PRIVATE in perms
    if kind == pb.CONVERSATION_KIND_DIRECT:
        return rm.CREATE_DIRECT in perms
    return True


def can_see(
    caller: Caller, perms: frozenset[str], conv: Conversation, member: Member | None
) -> bool:
    if conv.deleted:
        return False
    if caller.has_role(ROLE_SERVICE):
        return True
    if conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL:
        # Members included: without the permission public channels are closed
        # to the caller, as private ones are without chat.access_private.
        return rm.ACCESS_CHANNELS in perms
    if conv.kind in PRIVATE_GROUP_KINDS:
        if rm.ACCESS_PRIVATE not in perms:
            return False
        return member is not None or rm.MANAGE_CHANNELS in perms
    if member is not None:
        return True
    # Every agent of the tenant works its support conversations; direct and
    # ai_assistant conversations stay their members' own.
    return conv.kind == pb.CONVERSATION_KIND_SUPPORT and staff(caller)


def closed_kinds(caller: Caller, perms: frozenset[str]) -> frozenset[int]:
    """The kinds the caller may not see even where it is a member: what lists of
    its conversations leave out."""
    if caller.has_role(ROLE_SERVICE):
        return frozenset()
    closed: set[int] = set()
    if rm.ACCESS_CHANNELS not in perms:
        closed.add(pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    if rm.ACCESS_PRIVATE not in perms:
        closed |= PRIVATE_GROUP_KINDS
    return frozenset(closed)


def require_visible(
    caller: Caller, perms: frozenset[str], conv: Conversation | None, member: Member | None
) -> Conversation:
    if conv is None or not can_see(caller, perms, conv, member):
        raise not_found()
    return conv


def conv_admin(
    perms: frozenset[str],
    member: Member | None,
    permission: str = rm.MANAGE_CHANNELS,
) -> bool:
    """An owner or admin of the conversation, or a caller whose tenant role
    reaches every conversation it sees for ``permission``. Callers check
    visibility first (``require_visible``)."""
    if member is not None and member.role in ADMIN_ROLES:
        return True
    return permission in perms


def require_writable(conv: Conversation) -> None:
    if conv.archived:
        raise FailedPrecondition("conversation is archived", "conversation_archived")


def require_conv_admin(perms: frozenset[str], member: Member | None) -> None:
    if not conv_admin(perms, member):
        raise PermissionDenied("conversation admins only", "forbidden")


def require_moderator(perms: frozenset[str], member: Member | None) -> None:
    if not conv_admin(perms, member, rm.MODERATE_CHANNELS):
        raise PermissionDenied("conversation admins and moderators only", "forbidden")


def require_editable_kind(conv: Conversation) -> None:
    if conv.kind in FIXED_MEMBERSHIP_KINDS or conv.kind == pb.CONVERSATION_KIND_DIRECT:
        raise PermissionDenied("this conversation cannot be changed", "not_editable")


def can_browse(perms: frozenset[str]) -> bool:
    return rm.ACCESS_CHANNELS in perms


def can_join(perms: frozenset[str], conv: Conversation) -> bool:
    if conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL:
        return rm.ACCESS_CHANNELS in perms
    return (
        conv.kind == pb.CONVERSATION_KIND_PRIVATE_CHANNEL
        and rm.MANAGE_CHANNELS in perms
        and rm.ACCESS_PRIVATE in perms
    )


def can_add_members(perms: frozenset[str], conv: Conversation, member: Member | None) -> bool:
    if conv_admin(perms, member):
        return True
    return (
        conv.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL
        and member is not None
        and member.role != pb.MEMBER_ROLE_OBSERVER
    )


def can_remove(perms: frozenset[str], member: Member | None, target: Member) -> bool:
    if rm.MANAGE_CHANNELS in perms:
        return True
    if member is None or member.role not in ADMIN_ROLES:
        return False
    # Only an owner removes an owner.
    return bool(target.role != pb.MEMBER_ROLE_OWNER or member.role == pb.MEMBER_ROLE_OWNER)


def can_set_role(perms: frozenset[str], member: Member | None) -> bool:
    if rm.MANAGE_CHANNELS in perms:
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


def require_file_sender(perms: frozenset[str]) -> None:
    if rm.SEND_FILES not in perms:
        raise PermissionDenied("your role may not send files", "forbidden")


def can_delete_message(
    caller: Caller, perms: frozenset[str], member: Member | None, message: Message
) -> bool:
    """Their own messages everyone deletes; others' need the conversation's
    admin rights or chat.delete_messages."""
    return message.sender_id == caller.user_id or conv_admin(perms, member, rm.DELETE_MESSAGES)
