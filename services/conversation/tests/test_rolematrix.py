"""rolematrix.py: the default matrix, a tenant's overrides, who holds what."""

from __future__ import annotations

from confab_core.identity import (
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from conversation.handlers import rolematrix as rm

from .conftest import user
from .test_role_permissions import DEFAULTS, ROWS


def test_the_rows_are_seed_003s_list() -> None:
    assert list(ROWS) == list(rm.PERMISSIONS) == list(DEFAULTS)
    for permission, roles in DEFAULTS.items():
        for role in rm.ROLES:
            assert (permission in rm.DEFAULT_MATRIX[role]) == (role in roles), (permission, role)


def test_effective_replaces_only_the_roles_listed() -> None:
    matrix = rm.effective({ROLE_AGENT: [rm.SEND_FILES]})
    assert matrix[ROLE_AGENT] == {rm.SEND_FILES}
    assert matrix[ROLE_MEMBER] == rm.DEFAULT_MATRIX[ROLE_MEMBER]
    assert matrix[ROLE_TENANT_ADMIN] == rm.DEFAULT_MATRIX[ROLE_TENANT_ADMIN]
    assert rm.effective({}) == rm.DEFAULT_MATRIX


def test_any_role_grants() -> None:
    matrix = rm.effective({ROLE_MEMBER: [], ROLE_AGENT: [rm.CREATE_DIRECT]})
    both = user("x", "t", ROLE_MEMBER, ROLE_AGENT)
    assert rm.allowed(matrix, both, rm.CREATE_DIRECT)
    assert not rm.allowed(matrix, both, rm.SEND_FILES)
    assert not rm.allowed(matrix, user("y", "t", ROLE_MEMBER), rm.CREATE_DIRECT)


def test_fixed_callers_ignore_the_tenant() -> None:
    shut = rm.effective({r: [] for r in rm.ROLES})
    for role in (ROLE_SERVICE, ROLE_SUPER_ADMIN):
        caller = user("x", "t", role)
        assert rm.granted(shut, caller) == rm.granted(rm.DEFAULT_MATRIX, caller)
        assert not rm.allowed(shut, caller, rm.MANAGE_CHANNELS)
        assert rm.allowed(shut, caller, rm.ACCESS_CHANNELS)
