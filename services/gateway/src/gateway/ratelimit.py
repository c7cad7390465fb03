"""Fixed-window rate limits per user and per tenant, counted in Redis.

Every action a client can repeat at someone else's cost (a write, a model call, a
fan-out to a room, a connect) has its own budget, so a burst of one cannot starve
another. Limits come from typed settings: defaults for every tenant, overridden per
tenant (see ``GatewaySettings.tenant_rate_limits``).

Redis being down must not stop chat: the limiter then lets traffic through and
counts the failure, because a limiter outage is not a reason to lose sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

import redis.asyncio as aioredis
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from confab_core.clock import Clock
from confab_core.errors import ResourceExhausted
from confab_core.identity import Caller

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10
LIMITED = Counter(
    "confab_gateway_rate_limited_total", "Calls refused by a rate limit", ["action", "scope"]
)
LIMITER_ERRORS = Counter(
    "confab_gateway_rate_limiter_errors_total", "Limiter checks that failed open"
)


class Action(StrEnum):
    # Sends, edits and reaction toggles share one budget: each is a message write.
    SEND = "send"
    CONVERSATION_CREATE = "conversation_create"
    MEMBER_ADD = "member_add"
    SEARCH = "search"
    SUMMARY = "summary"
    TYPING = "typing"
    PRESENCE = "presence"
    CONNECT = "connect"
    # Exports (creating and downloading), erasures, and reading a job's status.
    EXPORT = "export"
    ERASURE = "erasure"
    JOB_STATUS = "job_status"
    POLICY = "policy"
    # Mutes, bans, lifts and queue resolutions.
    MODERATE = "moderate"
    REPORT = "report"
    # Reading the audit log, the moderation queue and sanctions.
    AUDIT_READ = "audit_read"
    # Walks a whole chain.
    AUDIT_VERIFY = "audit_verify"
    # Reading and replacing the tenant's SLA policy.
    SLA_POLICY = "sla_policy"
    # Canned replies: creating, changing, deleting, searching and rendering
    # (sending one spends SEND).
    CANNED = "canned"
    SUPPORT_PROFILE = "support_profile"
    # Opening, changing, claiming, assigning and escalating tickets.
    TICKET_WRITE = "ticket_write"
    # A ticket, the queue, the caller's tickets, the desk's categories and teams,
    # auto-assignment settings and the agent roster.
    TICKET_READ = "ticket_read"
    # Changes of the desk's categories and teams, auto-assignment settings and
    # agents' capacities.
    SUPPORT_ADMIN = "support_admin"
    # Support and chat analytics: reads up to a year of day aggregates.
    ANALYTICS = "analytics"
    # Platform staff: escalated tickets of every tenant (reads; replies and transitions).
    PLATFORM_READ = "platform_read"
    PLATFORM_WRITE = "platform_write"
    # Tenant admins reading the month's model usage and quota.
    AI_USAGE = "ai_usage"
    # Stopping a streamed bot reply (message:stream:cancel).
    STREAM_CANCEL = "stream_cancel"
    # The tenant's chat settings: reads (the public part too) and changes.
    SETTINGS_READ = "settings_read"
    SETTINGS_WRITE = "settings_write"
    # Files: uploads (streamed, or a presigned URL and its completion) and deletes.
    FILE_UPLOAD = "file_upload"
    # Reading a file's record (which issues its signed URLs) and listing files.
    FILE_READ = "file_read"
    # Fetching bytes through a signed URL.
    FILE_DOWNLOAD = "file_download"


class Limit(BaseModel):
    """Calls allowed per ``WINDOW_SECONDS``: for one user, and for a whole tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: int = Field(ge=0)
    tenant: int = Field(ge=0)


DEFAULT_LIMITS: Mapping[Action, Limit] = {
    Action.SEND: Limit(user=50, tenant=5000),
    Action.CONVERSATION_CREATE: Limit(user=10, tenant=500),
    Action.MEMBER_ADD: Limit(user=20, tenant=1000),
    Action.SEARCH: Limit(user=20, tenant=1000),
    # Each summary is a model call, the most expensive thing a client can ask for.
    Action.SUMMARY: Limit(user=3, tenant=100),
    # Clients renew typing every few seconds while a key is pressed.
    Action.TYPING: Limit(user=30, tenant=5000),
    Action.PRESENCE: Limit(user=10, tenant=2000),
    # A tab reconnecting after a network blip is a few; a loop is many. The tenant
    # budget lets a whole tenant of tens of thousands come back within minutes after
    # a gateway restart, but not all in the same second.
    Action.CONNECT: Limit(user=10, tenant=2000),
    # An export reads a whole conversation, user or tenant; a download streams it.
    Action.EXPORT: Limit(user=5, tenant=50),
    Action.ERASURE: Limit(user=5, tenant=20),
    # Clients poll a job until it is done.
    Action.JOB_STATUS: Limit(user=30, tenant=1000),
    # Admin reads and changes of the tenant policy: rare by nature.
    Action.POLICY: Limit(user=10, tenant=100),
    Action.MODERATE: Limit(user=30, tenant=500),
    Action.REPORT: Limit(user=10, tenant=500),
    Action.AUDIT_READ: Limit(user=20, tenant=200),
    Action.AUDIT_VERIFY: Limit(user=2, tenant=5),
    Action.SLA_POLICY: Limit(user=10, tenant=100),
    # Composers search as the agent types a shortcode.
    Action.CANNED: Limit(user=30, tenant=2000),
    Action.SUPPORT_PROFILE: Limit(user=10, tenant=100),
    Action.TICKET_WRITE: Limit(user=30, tenant=2000),
    # Agents refresh the queue often.
    Action.TICKET_READ: Limit(user=60, tenant=5000),
    Action.SUPPORT_ADMIN: Limit(user=10, tenant=100),
    Action.ANALYTICS: Limit(user=10, tenant=50),
    # The tenant here is the platform tenant: all platform staff together.
    Action.PLATFORM_READ: Limit(user=120, tenant=3000),
    Action.PLATFORM_WRITE: Limit(user=30, tenant=600),
    Action.AI_USAGE: Limit(user=10, tenant=100),
    # A stop button: a few per reply at most; each is a bot call and a Kafka record.
    Action.STREAM_CANCEL: Limit(user=20, tenant=2000),
    # Clients read the public part once per page load; changes are an admin's.
    Action.SETTINGS_READ: Limit(user=30, tenant=3000),
    Action.SETTINGS_WRITE: Limit(user=10, tenant=100),
    # Each upload can move up to the tenant's size limit and a scan; a user
    # dropping a folder of photos is a burst of tens.
    Action.FILE_UPLOAD: Limit(user=20, tenant=500),
    # A conversation view shows many files, each a record read (and its URLs).
    Action.FILE_READ: Limit(user=100, tenant=5000),
    # An image gallery fetches its thumbnails at once.
    Action.FILE_DOWNLOAD: Limit(user=100, tenant=5000),
}


class RateLimited(ResourceExhausted):
    """A refused call, with the seconds after which the window has turned."""

    def __init__(self, message: str, code: str, retry_after: int) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        clock: Clock,
        defaults: Mapping[Action, Limit],
        per_tenant: Mapping[str, Mapping[Action, Limit]] | None = None,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._defaults = {**DEFAULT_LIMITS, **defaults}
        self._per_tenant = per_tenant or {}

    def limit(self, tenant_id: str, action: Action) -> Limit:
        override = self._per_tenant.get(tenant_id)
        if override is not None and action in override:
            return override[action]
        return self._defaults[action]

    async def check(self, caller: Caller, action: Action) -> None:
        """Counts one call; raises ``RateLimited`` once a budget of this window is spent."""
        limit = self.limit(caller.tenant_id, action)
        now = self._clock.now().timestamp()
        window = int(now) // WINDOW_SECONDS
        retry_after = max(1, (window + 1) * WINDOW_SECONDS - int(now))
        user_key = f"rl:{caller.tenant_id}:{action.value}:u:{caller.user_id}:{window}"
        tenant_key = f"rl:{caller.tenant_id}:{action.value}:t:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(user_key)
                pipe.expire(user_key, WINDOW_SECONDS * 2)
                pipe.incr(tenant_key)
                pipe.expire(tenant_key, WINDOW_SECONDS * 2)
                user_count, _, tenant_count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            LIMITER_ERRORS.inc()
            log.warning("rate limiter unavailable, allowing %s: %s", action.value, exc)
            return
        if int(user_count) > limit.user:
            LIMITED.labels(action.value, "user").inc()
            raise RateLimited(f"too many {_NOUNS[action]}, slow down", "rate_limited", retry_after)
        if int(tenant_count) > limit.tenant:
            LIMITED.labels(action.value, "tenant").inc()
            raise RateLimited(
                f"tenant rate of {_NOUNS[action]} exceeded", "tenant_rate_limited", retry_after
            )


_NOUNS: Mapping[Action, str] = {
    Action.SEND: "messages",
    Action.CONVERSATION_CREATE: "conversations created",
    Action.MEMBER_ADD: "member additions",
    Action.SEARCH: "searches",
    Action.SUMMARY: "summaries",
    Action.TYPING: "typing updates",
    Action.PRESENCE: "presence changes",
    Action.CONNECT: "connections",
    Action.EXPORT: "exports",
    Action.ERASURE: "erasures",
    Action.JOB_STATUS: "job status reads",
    Action.POLICY: "policy calls",
    Action.MODERATE: "moderation actions",
    Action.REPORT: "reports",
    Action.AUDIT_READ: "audit and moderation reads",
    Action.AUDIT_VERIFY: "audit verifications",
    Action.SLA_POLICY: "SLA policy calls",
    Action.CANNED: "canned reply calls",
    Action.SUPPORT_PROFILE: "support profile calls",
    Action.TICKET_WRITE: "ticket changes",
    Action.TICKET_READ: "ticket reads",
    Action.SUPPORT_ADMIN: "support desk changes",
    Action.ANALYTICS: "analytics reads",
    Action.PLATFORM_READ: "platform reads",
    Action.PLATFORM_WRITE: "platform changes",
    Action.AI_USAGE: "AI usage reads",
    Action.STREAM_CANCEL: "stream cancels",
    Action.SETTINGS_READ: "settings reads",
    Action.SETTINGS_WRITE: "settings changes",
    Action.FILE_UPLOAD: "file uploads",
    Action.FILE_READ: "file reads",
    Action.FILE_DOWNLOAD: "file downloads",
}
