"""Who is calling: set once per request, read anywhere below it.

The gateway builds a Caller from a verified JWT; gRPC interceptors carry it
across service hops in metadata and put it back into a contextvar, so handlers
read ``current_caller()`` instead of threading it through every signature.
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field

from confab_core.errors import Unauthenticated

CALLER_METADATA_KEY = "confab-caller-bin"

ROLE_SUPER_ADMIN = "super_admin"
ROLE_TENANT_ADMIN = "tenant_admin"
ROLE_AGENT = "agent"
ROLE_MEMBER = "member"
# Internal services (bot, notification) act inside a tenant with this role.
ROLE_SERVICE = "service"

# Users that the services themselves act as, in every tenant. A JWT can never name
# them as its subject (see auth), so no client can speak as a service.
BOT_USER_ID = "confab-bot"
NOTIFIER_USER_ID = "confab-notification"
SERVICE_USER_IDS = frozenset({BOT_USER_ID, NOTIFIER_USER_ID})


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    display_name: str = ""
    email: str = ""

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "tid": self.tenant_id,
                "sub": self.user_id,
                "roles": sorted(self.roles),
                "name": self.display_name,
                "email": self.email,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Caller:
        try:
            doc = json.loads(raw)
            return cls(
                tenant_id=str(doc["tid"]),
                user_id=str(doc["sub"]),
                roles=frozenset(str(r) for r in doc.get("roles", [])),
                display_name=str(doc.get("name", "")),
                email=str(doc.get("email", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated("malformed caller metadata", "bad_caller") from exc


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
