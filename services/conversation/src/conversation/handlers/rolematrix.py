"""The tenant-level chat permissions and who holds them by default.

Pure constants, shared by the settings document (validation, defaults) and the
permission checks. The default is the matrix of docs/permissions.md before
permissions became configurable per tenant:

- every tenant role browses and joins public channels, sends files and opens
  direct conversations;
- agents and tenant admins create public and private channels (members get
  403 forbidden_kind);
- only tenant admins act on any channel of the tenant without a conversation
  role: manage it (title, members, archive), delete others' messages, moderate
  (tenant-wide sanctions, the moderation queue) and see private channels they
  are not a member of.
"""

from __future__ import annotations

from collections.abc import Mapping

from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN

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

# The tenant roles a tenant may configure, in the order documents list them.
ROLES: tuple[str, ...] = (ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN)

_EVERYONE = (ACCESS_CHANNELS, SEND_FILES, CREATE_DIRECT)

DEFAULT_MATRIX: Mapping[str, frozenset[str]] = {
    ROLE_MEMBER: frozenset(_EVERYONE),
    ROLE_AGENT: frozenset((*_EVERYONE, CREATE_CHANNELS)),
    ROLE_TENANT_ADMIN: frozenset(PERMISSIONS),
}


def effective(configured: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Each role's permissions: the configured ones, the default for a role left out."""
    return {role: configured.get(role, DEFAULT_MATRIX[role]) for role in ROLES}


def ordered(permissions: frozenset[str]) -> tuple[str, ...]:
    """``permissions`` in the canonical order of PERMISSIONS."""
    return tuple(p for p in PERMISSIONS if p in permissions)
