"""The Redis key layout; the only place that spells a key.

Per user (every key carries its tenant):
  presence:{tenant}:{user}:conns  ZSET  connection id -> expiry (epoch ms)
  presence:{tenant}:{user}        HASH  status, last_active_at (epoch ms), seq,
                                        chosen (absent: automatic), custom,
                                        custom_exp (epoch ms), grace_until (epoch ms)
Global, for the sweeper and the fleet-wide gauges:
  presence:expiry                 ZSET  "{tenant}\\x1f{user}" -> the user's earliest
                                        deadline: a connection's expiry, the end of
                                        the offline grace or the custom status's expiry
  presence:stats                  HASH  connections, present_users

Typing is never stored: it has no key here.

Tenant and user ids are escaped inside keys, so an id holding ':' cannot make
one tenant's key equal to another's.
"""

from __future__ import annotations

INDEX_KEY = "presence:expiry"
STATS_KEY = "presence:stats"
# The unit separator never appears in a valid id (the handlers reject control
# characters), so an index member splits back into exactly one (tenant, user).
_SEP = "\x1f"


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


def conns_key(tenant_id: str, user_id: str) -> str:
    return f"presence:{_escape(tenant_id)}:{_escape(user_id)}:conns"


def state_key(tenant_id: str, user_id: str) -> str:
    return f"presence:{_escape(tenant_id)}:{_escape(user_id)}"


def index_member(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}{_SEP}{user_id}"


def parse_index_member(member: str) -> tuple[str, str] | None:
    tenant_id, sep, user_id = member.partition(_SEP)
    if not sep or not tenant_id or not user_id or _SEP in user_id:
        return None
    return tenant_id, user_id


def tenant_pattern(tenant_id: str) -> str:
    """Matches every per-user key of the tenant (SCAN MATCH); glob characters escaped."""
    escaped = _escape(tenant_id)
    for ch in "\\*?[]":
        escaped = escaped.replace(ch, "\\" + ch)
    return f"presence:{escaped}:*"


def tenant_index_pattern(tenant_id: str) -> str:
    escaped = tenant_id
    for ch in "\\*?[]":
        escaped = escaped.replace(ch, "\\" + ch)
    return f"{escaped}{_SEP}*"
