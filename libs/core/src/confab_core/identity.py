"""Who is calling: set once per request, read anywhere below it.

The gateway builds a Caller from a verified JWT; gRPC interceptors carry it
across service hops in a signed token (``confab_core.servicetoken``) and put it
back into a contextvar, so handlers read ``current_caller()`` instead of
threading it through every signature. The verified calling service is kept
beside it: ``current_service()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from confab_core.errors import Unauthenticated

# A signed service token (servicetoken), not a bare caller.
CALLER_METADATA_KEY = "confab-caller-bin"

# Platform staff (Confab's own): outside every tenant. Their tokens name the
# reserved platform tenant and nothing else; inside a tenant the role grants no
# rights (only the conversation service's PlatformService, which audits each use).
ROLE_SUPER_ADMIN = "super_admin"
PLATFORM_TENANT_ID = "confab-platform"
# Inside a tenant, platform staff act under this prefix, so none of them can be
# mistaken for (or be impersonated by) a tenant user of the same id.
PLATFORM_USER_PREFIX = f"{PLATFORM_TENANT_ID}:"
ROLE_TENANT_ADMIN = "tenant_admin"
ROLE_AGENT = "agent"
ROLE_MEMBER = "member"
# Internal services act inside a tenant with this role; only a verified service
# token can carry it (see servicetoken.SERVICE_ROLE_ISSUERS), never a JWT.
ROLE_SERVICE = "service"

# Users that the services themselves act as, in every tenant. A JWT can never name
# them as its subject (see auth), so no client can speak as a service.
BOT_USER_ID = "confab-bot"
NOTIFIER_USER_ID = "confab-notification"
# The author of system messages and the actor of automatic ticket changes.
SYSTEM_USER_ID = "confab-system"
SERVICE_USER_IDS = frozenset({BOT_USER_ID, NOTIFIER_USER_ID, SYSTEM_USER_ID})
# Each of a tenant's bot agents (tenant settings) posts as its own user.
AGENT_USER_PREFIX = BOT_USER_ID + ":"


def agent_user_id(agent_id: str) -> str:
    return AGENT_USER_PREFIX + agent_id


def agent_of(user_id: str) -> str | None:
    """The agent id a bot user posts for, or None for anyone else."""
    return user_id[len(AGENT_USER_PREFIX) :] if user_id.startswith(AGENT_USER_PREFIX) else None


def is_service_user(user_id: str) -> bool:
    """A user only the services act as (the bot and its agents, the notifier, the
    system): no client token may name one, and nobody can add or erase one."""
    return user_id in SERVICE_USER_IDS or user_id.startswith(AGENT_USER_PREFIX)


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    display_name: str = ""
    email: str = ""

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def platform_staff(self) -> bool:
        return self.tenant_id == PLATFORM_TENANT_ID and ROLE_SUPER_ADMIN in self.roles

    def to_doc(self) -> dict[str, object]:
        return {
            "tid": self.tenant_id,
            "sub": self.user_id,
            "roles": sorted(self.roles),
            "name": self.display_name,
            "email": self.email,
        }

    @classmethod
    def from_doc(cls, doc: object) -> Caller:
        try:
            if not isinstance(doc, dict):
                raise TypeError("caller must be an object")
            roles = doc.get("roles", [])
            if not isinstance(roles, list):
                raise TypeError("roles must be a list")
            return cls(
                tenant_id=str(doc["tid"]),
                user_id=str(doc["sub"]),
                roles=frozenset(str(r) for r in roles),
                display_name=str(doc.get("name", "")),
                email=str(doc.get("email", "")),
            )
        except (KeyError, TypeError) as exc:
            raise Unauthenticated("malformed caller", "bad_caller") from exc


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "confab_caller", default=None
)


def current_caller() -> Caller:
    caller = _caller.get()
    if caller is None or not caller.tenant_id or not caller.user_id:
        raise Unauthenticated("no caller identity on this call", "no_caller")
    return caller


def maybe_caller() -> Caller | None:
    return _caller.get()


def set_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _caller.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _caller.reset(token)


@contextlib.contextmanager
def acting_as(caller: Caller | None) -> Iterator[None]:
    """Calls made inside act for ``caller`` (None: the service itself); the
    channel's interceptor signs it into the service token."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


_service: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "confab_service", default=None
)


def current_service() -> str | None:
    """The peer service that signed this call's token; None outside a call."""
    return _service.get()


def set_service(service: str | None) -> contextvars.Token[str | None]:
    return _service.set(service)


def reset_service(token: contextvars.Token[str | None]) -> None:
    _service.reset(token)
