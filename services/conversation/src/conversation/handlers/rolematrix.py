"""Per-tenant role permissions (issue 12, seed 003's list): which tenant role
holds which chat permission. Pure: the tenant's overrides come from its settings
document; access.py applies the result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from confab_core.identity import (
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)

ACCESS_CHANNELS = "chat.access_channels"
CREATE_CHANNELS = "chat.create_channels"
MANAGE_CHANNELS = "chat.manage_channels"
DELETE_MESSAGES = "chat.delete_messages"
MODERATE_CHANNELS = "chat.moderate_channels"
ACCESS_PRIVATE = "chat.access_private"
SEND_FILES = "chat.send_files"
CREATE_DIRECT = "chat.create_direct"

PERMISSIONS: tuple[str, ...] = (
    ACCESS_CHANNELS,
    CREATE_CHANNELS,
    MANAGE_CHANNELS,
    DELETE_MESSAGES,
    MODERATE_CHANNELS,
    ACCESS_PRIVATE,
    SEND_FILES,
    CREATE_DIRECT,
)
ROLES: tuple[str, ...] = (ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN)

_EVERYONE = frozenset({ACCESS_CHANNELS, ACCESS_PRIVATE, SEND_FILES, CREATE_DIRECT})

# Today's rules (docs/permissions.md) as a matrix. The three reaching
# permissions (manage, delete others' messages, moderate) act in every
# conversation the caller sees, as tenant admins always could; a conversation's
# own owners and admins keep those rights inside it whatever the matrix says.
DEFAULT_MATRIX: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        ROLE_MEMBER: _EVERYONE,
        ROLE_AGENT: _EVERYONE | {CREATE_CHANNELS},
        ROLE_TENANT_ADMIN: frozenset(PERMISSIONS),
    }
)
# The services and platform staff hold no tenant role: they keep exactly the
# rights they always had, whatever a tenant configures (the services see every
# conversation of their tenant by a rule of their own, access.can_see).
_FIXED = _EVERYONE


def effective(overrides: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    """The default matrix with each role the tenant lists replaced by its list."""
    matrix = dict(DEFAULT_MATRIX)
    for role, permissions in overrides.items():
        if role in matrix:
            matrix[role] = frozenset(permissions)
    return MappingProxyType(matrix)


def granted(matrix: Mapping[str, frozenset[str]], caller: Caller) -> frozenset[str]:
    """Every permission the caller holds: the union over its roles."""
    if caller.has_role(ROLE_SERVICE):
        return _FIXED
    roles = [r for r in ROLES if r in caller.roles]
    if not roles:
        # Platform staff re-scoped into a tenant keep a stranger's rights; a
        # caller naming no role at all is a member, as every other rule reads it.
        return _FIXED if caller.has_role(ROLE_SUPER_ADMIN) else matrix[ROLE_MEMBER]
    held: set[str] = set()
    for role in roles:
        held |= matrix[role]
    return frozenset(held)


def allowed(matrix: Mapping[str, frozenset[str]], caller: Caller, permission: str) -> bool:
    """Whether any of the caller's roles grants ``permission``; the services and
    platform staff keep today's rights."""
    return permission in granted(matrix, caller)


def ordered(permissions: frozenset[str]) -> tuple[str, ...]:
    """``permissions`` in the canonical order of PERMISSIONS."""
    return tuple(p for p in PERMISSIONS if p in permissions)
