"""The tenant's chat settings: who may read and change which section, their
validation, versioning, audit and change event.

One document per tenant (storage/settings.py). A write replaces whole sections,
compare-and-set on the version read; in one transaction it stores the document,
appends the audit record and writes a TenantSettingsChanged to the outbox, which
the relay publishes on ``confab.tenant-settings`` (so no committed change goes
unannounced, and no announced change is uncommitted).

Tenant admins read and change every section but ``ai_quota``, which only
platform staff change (acting in the tenant through ``platformaccess.in_tenant``).
Members read the public part; the internal services read the whole document.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from confab.conversation.v1 import settings_pb2
from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import (
    PLATFORM_USER_PREFIX,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    Caller,
)
from confab_core.ids import new_id
from confab_core.kafka import EVENT_TYPE_HEADER
from confab_core.limits import (
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
)
from confab_core.telemetry import inject_headers
from confab_core.tenant_settings import TENANT_SETTINGS_EVENT_TYPE, TENANT_SETTINGS_TOPIC
from conversation.handlers import access, filepolicy, rolematrix
from conversation.handlers.audit import AuditTrail, entry
from conversation.storage.audit import Target
from conversation.storage.canned import SHARED_OWNER
from conversation.storage.db import Database, TenantStore, Transaction
from conversation.storage.outbox import OutboxRecord
from conversation.storage.settings import (
    AgentRecord,
    BrandingRecord,
    FilesRecord,
    SettingsRecord,
    TopicRuleRecord,
    TopicsRecord,
)

BRANDING = "branding"
AGENTS = "agents"
TOPICS = "topics"
TICKET_CATEGORIES = "ticket_categories"
ROLE_PERMISSIONS = "role_permissions"
AI_QUOTA = "ai_quota"
FILES = "files"
SECTIONS: tuple[str, ...] = (
    BRANDING,
    AGENTS,
    TOPICS,
    TICKET_CATEGORIES,
    ROLE_PERMISSIONS,
    AI_QUOTA,
    FILES,
)
SECTION_VALUES: dict[str, settings_pb2.SettingsSection.ValueType] = {
    BRANDING: settings_pb2.SETTINGS_SECTION_BRANDING,
    AGENTS: settings_pb2.SETTINGS_SECTION_AGENTS,
    TOPICS: settings_pb2.SETTINGS_SECTION_TOPICS,
    TICKET_CATEGORIES: settings_pb2.SETTINGS_SECTION_TICKET_CATEGORIES,
    ROLE_PERMISSIONS: settings_pb2.SETTINGS_SECTION_ROLE_PERMISSIONS,
    AI_QUOTA: settings_pb2.SETTINGS_SECTION_AI_QUOTA,
    FILES: settings_pb2.SETTINGS_SECTION_FILES,
}

SETTINGS_UPDATED = "settings.update"
PLATFORM_SETTINGS_READ = "platform.settings_read"
CANNED_REPLIES_PATH = "/api/v1/canned-replies"

ASSISTANT = "assistant"
SUPPORT = "support"
PICKABLE = "pickable"
AGENT_ROLES = (ASSISTANT, SUPPORT, PICKABLE)

MAX_AGENTS = 20
MAX_RULES = 50
MAX_TERMS = 100
MAX_TERM_CHARS = 200
MAX_PATTERN_CHARS = 200
MAX_PROMPT_CHARS = 16_000
MAX_MODEL_CHARS = 128
MIN_TOKEN_BUDGET = 256
MAX_TOKEN_BUDGET = 128_000
MAX_REPLY_TOKENS = 32_000
MAX_HANDOFF_TURNS = 100
MAX_TEMPERATURE = 2.0
# A trillion tokens a month is beyond any plan; larger is a typo.
MAX_MONTHLY_TOKENS = 10**12

_AGENT_ID = re.compile(r"[a-z0-9-]{1,32}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True, slots=True)
class SettingsView:
    """The document as read, with what it shows of other parts of the tenant."""

    settings: SettingsRecord
    canned_reply_count: int


def _invalid(code: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, code)


def forbidden() -> PermissionDenied:
    return PermissionDenied("tenant admins only", "forbidden")


def version_mismatch() -> FailedPrecondition:
    return FailedPrecondition(
        "the settings changed since they were read; read them again", "version_mismatch"
    )


def _platform(caller: Caller) -> bool:
    """Platform staff re-scoped into the tenant (platformaccess.in_tenant)."""
    return caller.has_role(ROLE_SUPER_ADMIN) and caller.user_id.startswith(PLATFORM_USER_PREFIX)


def _text(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise _invalid("text_too_long", f"{what}: at most {limit} characters")
    return value


def _url(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if len(value) > MAX_URL_CHARS or parts.scheme != "https" or not parts.hostname:
        raise _invalid("invalid_url", f"{what}: an https URL")
    return value


def _color(value: str, what: str) -> str:
    value = value.strip()
    if value and not _COLOR.fullmatch(value):
        raise _invalid("invalid_color", f"{what}: #rrggbb")
    return value.lower()


def _branding(b: BrandingRecord) -> BrandingRecord:
    return BrandingRecord(
        display_name=_text(b.display_name.strip(), MAX_TITLE_CHARS, "branding.display_name"),
        primary_color=_color(b.primary_color, "branding.primary_color"),
        accent_color=_color(b.accent_color, "branding.accent_color"),
        logo_url=_url(b.logo_url, "branding.logo_url"),
        welcome_message=_text(b.welcome_message, MAX_TEXT_CHARS, "branding.welcome_message"),
    )


def _unique(values: Iterable[str], what: str) -> tuple[str, ...]:
    clean = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(clean) > MAX_TERMS:
        raise _invalid("too_many_rules", f"{what}: at most {MAX_TERMS}")
    return clean


def _terms(values: Iterable[str], what: str) -> tuple[str, ...]:
    clean = _unique(values, what)
    for term in clean:
        _text(term, MAX_TERM_CHARS, what)
    return clean


def _patterns(values: Iterable[str], what: str) -> tuple[str, ...]:
    clean = _unique(values, what)
    for pattern in clean:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise _invalid("invalid_pattern", f"{what}: at most {MAX_PATTERN_CHARS} characters")
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise _invalid("invalid_pattern", f"{what}: {pattern[:40]!r}: {exc}") from None
    return clean


def _rules(rules: Sequence[TopicRuleRecord], what: str) -> tuple[TopicRuleRecord, ...]:
    if len(rules) > MAX_RULES:
        raise _invalid("too_many_rules", f"{what}: at most {MAX_RULES} rules")
    out = []
    for i, r in enumerate(rules):
        where = f"{what}[{i}]"
        rule = TopicRuleRecord(
            name=_text(r.name.strip(), MAX_TITLE_CHARS, f"{where}.name"),
            phrases=_terms(r.phrases, f"{where}.phrases"),
            keywords=_terms(r.keywords, f"{where}.keywords"),
            patterns=_patterns(r.patterns, f"{where}.patterns"),
        )
        if not (rule.phrases or rule.keywords or rule.patterns):
            raise _invalid("empty_rule", f"{where}: a phrase, keyword or pattern at least")
        out.append(rule)
    return tuple(out)


def _topics(t: TopicsRecord, what: str) -> TopicsRecord:
    return TopicsRecord(
        allowed=_rules(t.allowed, f"{what}.allowed"),
        forbidden=_rules(t.forbidden, f"{what}.forbidden"),
        model_check=t.model_check,
    )


def _base_url(value: str, allowed: frozenset[str], what: str) -> str:
    value = _url(value, what).rstrip("/")
    if value and value not in allowed:
        raise _invalid("base_url_not_allowed", f"{what}: not one the service allows")
    return value


def _agent(a: AgentRecord, allowed_base_urls: frozenset[str], i: int) -> AgentRecord:
    where = f"agents[{i}]"
    if not _AGENT_ID.fullmatch(a.id):
        raise _invalid("invalid_agent_id", f"{where}.id: [a-z0-9-]{{1,32}}")
    if a.role not in AGENT_ROLES:
        raise _invalid("invalid_agent_role", f"{where}.role: one of {AGENT_ROLES}")
    if not math.isfinite(a.temperature) or not 0.0 <= a.temperature <= MAX_TEMPERATURE:
        raise _invalid("invalid_temperature", f"{where}.temperature: 0 to {MAX_TEMPERATURE}")
    if a.token_budget != 0 and not MIN_TOKEN_BUDGET <= a.token_budget <= MAX_TOKEN_BUDGET:
        raise _invalid(
            "invalid_token_budget",
            f"{where}.token_budget: 0 (default) or {MIN_TOKEN_BUDGET} to {MAX_TOKEN_BUDGET}",
        )
    if not 0 <= a.max_reply_tokens <= MAX_REPLY_TOKENS:
        raise _invalid(
            "invalid_token_budget", f"{where}.max_reply_tokens: 0 (default) to {MAX_REPLY_TOKENS}"
        )
    if not 0 <= a.handoff_after_turns <= MAX_HANDOFF_TURNS:
        raise _invalid(
            "invalid_handoff_turns",
            f"{where}.handoff_after_turns: 0 (default) to {MAX_HANDOFF_TURNS}",
        )
    return replace(
        a,
        display_name=_text(a.display_name.strip(), MAX_TITLE_CHARS, f"{where}.display_name")
        or a.id,
        avatar_url=_url(a.avatar_url, f"{where}.avatar_url"),
        model=_text(a.model.strip(), MAX_MODEL_CHARS, f"{where}.model"),
        base_url=_base_url(a.base_url, allowed_base_urls, f"{where}.base_url"),
        system_prompt=_text(a.system_prompt, MAX_PROMPT_CHARS, f"{where}.system_prompt"),
        topics=_topics(a.topics, f"{where}.topics"),
    )


def _agents(
    agents: Sequence[AgentRecord], allowed_base_urls: frozenset[str]
) -> tuple[AgentRecord, ...]:
    if len(agents) > MAX_AGENTS:
        raise _invalid("too_many_agents", f"agents: at most {MAX_AGENTS}")
    out = tuple(_agent(a, allowed_base_urls, i) for i, a in enumerate(agents))
    ids = [a.id for a in out]
    if len(set(ids)) != len(ids):
        raise _invalid("duplicate_agent", "agents: each id once")
    if sum(a.role == ASSISTANT for a in out) > 1:
        raise _invalid("two_assistant_agents", "agents: at most one assistant")
    if sum(a.role == SUPPORT for a in out) > 1:
        raise _invalid("two_support_agents", "agents: at most one support agent")
    return out


def valid_categories(values: Sequence[str]) -> tuple[str, ...]:
    clean: list[str] = []
    for value in values:
        value = value.strip()
        if not value or len(value) > MAX_CATEGORY_CHARS:
            raise InvalidArgument(
                f"categories are 1-{MAX_CATEGORY_CHARS} characters", "invalid_category"
            )
        if value in clean:
            raise InvalidArgument("categories are listed once each", "duplicate_category")
        clean.append(value)
    if len(clean) > MAX_CATEGORIES:
        raise InvalidArgument(f"at most {MAX_CATEGORIES} categories", "too_many_categories")
    return tuple(clean)


def _role_permissions(
    pairs: Sequence[tuple[str, Sequence[str]]],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    configured: dict[str, frozenset[str]] = {}
    for role, permissions in pairs:
        if role not in rolematrix.ROLES:
            raise _invalid("unknown_role", f"role_permissions: role one of {rolematrix.ROLES}")
        if role in configured:
            raise _invalid("duplicate_role", f"role_permissions: {role} is named twice")
        unknown = [p for p in permissions if p not in rolematrix.PERMISSIONS]
        if unknown:
            raise _invalid(
                "unknown_permission", f"role_permissions.{role}: unknown {unknown[0][:64]!r}"
            )
        configured[role] = frozenset(permissions)
    return tuple(
        (r, rolematrix.ordered(configured[r])) for r in rolematrix.ROLES if r in configured
    )


def validate(
    draft: SettingsRecord, sections: frozenset[str], allowed_base_urls: frozenset[str]
) -> SettingsRecord:
    """``draft`` with its named sections checked and normalized (the others as given)."""
    out = draft
    if BRANDING in sections:
        out = replace(out, branding=_branding(draft.branding))
    if AGENTS in sections:
        out = replace(out, agents=_agents(draft.agents, allowed_base_urls))
    if TOPICS in sections:
        out = replace(out, topics=_topics(draft.topics, "topics"))
    if TICKET_CATEGORIES in sections:
        out = replace(out, ticket_categories=valid_categories(draft.ticket_categories))
    if ROLE_PERMISSIONS in sections:
        out = replace(out, role_permissions=_role_permissions(draft.role_permissions))
    if AI_QUOTA in sections and not 0 <= draft.ai_quota_monthly_tokens <= MAX_MONTHLY_TOKENS:
        raise _invalid(
            "invalid_quota", f"ai_quota.monthly_tokens: 0 (unlimited) to {MAX_MONTHLY_TOKENS}"
        )
    if FILES in sections:
        out = replace(out, files=filepolicy.validate(draft.files))
    return out


def with_defaults(s: SettingsRecord) -> SettingsRecord:
    """The document as readers see it: every role's permissions spelled out."""
    configured = {role: frozenset(perms) for role, perms in s.role_permissions}
    matrix = rolematrix.effective(configured)
    return replace(
        s,
        role_permissions=tuple((r, rolematrix.ordered(matrix[r])) for r in rolematrix.ROLES),
        files=filepolicy.spelled_out(s.files),
    )


def _merged(
    before: SettingsRecord, draft: SettingsRecord, sections: frozenset[str]
) -> SettingsRecord:
    fields = {
        BRANDING: ("branding",),
        AGENTS: ("agents",),
        TOPICS: ("topics",),
        TICKET_CATEGORIES: ("ticket_categories",),
        ROLE_PERMISSIONS: ("role_permissions",),
        AI_QUOTA: ("ai_quota_monthly_tokens",),
        FILES: ("files",),
    }
    changes = {f: getattr(draft, f) for s in sections for f in fields[s]}
    return replace(before, **changes)


def _changed(before: SettingsRecord, after: SettingsRecord) -> list[str]:
    return [
        s
        for s, f in (
            (BRANDING, "branding"),
            (AGENTS, "agents"),
            (TOPICS, "topics"),
            (TICKET_CATEGORIES, "ticket_categories"),
            (ROLE_PERMISSIONS, "role_permissions"),
            (AI_QUOTA, "ai_quota_monthly_tokens"),
            (FILES, "files"),
        )
        if getattr(before, f) != getattr(after, f)
    ]


class SettingsHandler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditTrail,
        relay_wakeup: asyncio.Event | None = None,
        allowed_base_urls: Iterable[str] = (),
    ) -> None:
        """``relay_wakeup``: the outbox relay's, rung after each committed change."""
        self._db = db
        self._clock = clock
        self._audit = audit
        self._relay_wakeup = relay_wakeup or asyncio.Event()
        self._allowed = frozenset(u.rstrip("/") for u in allowed_base_urls)

    async def _stored(self, store: TenantStore) -> SettingsRecord:
        found = await store.settings.get()
        if found is not None:
            return found
        # Before the first save: categories set through the support desk's API
        # until then are the section's starting value.
        return SettingsRecord(ticket_categories=(await store.support.settings()).categories)

    async def current(self, tenant_id: str) -> SettingsRecord:
        """The document with its defaults, for any reader (no access check)."""
        return with_defaults(await self._stored(self._db.for_tenant(tenant_id)))

    async def _view(self, tenant_id: str) -> SettingsView:
        store = self._db.for_tenant(tenant_id)
        settings = with_defaults(await self._stored(store))
        return SettingsView(settings, await store.canned.count_where(SHARED_OWNER))

    async def get(self, caller: Caller) -> SettingsView:
        if _platform(caller):
            await self._audit.record(
                caller, PLATFORM_SETTINGS_READ, Target("settings", caller.tenant_id)
            )
        elif not access.tenant_admin(caller):
            raise forbidden()
        return await self._view(caller.tenant_id)

    async def for_service(self, caller: Caller) -> SettingsView:
        if not caller.has_role(ROLE_SERVICE):
            raise PermissionDenied("internal services only", "forbidden")
        return await self._view(caller.tenant_id)

    async def file_policy(self, tenant_id: str) -> filepolicy.FilePolicy:
        """The files policy in force for the tenant (defaults filled in)."""
        stored = await self._db.for_tenant(tenant_id).settings.get()
        return filepolicy.policy(stored.files if stored is not None else FilesRecord())

    async def public(self, caller: Caller) -> SettingsRecord:
        """Any caller of the tenant; what of it is public is the servicer's to pick."""
        return await self.current(caller.tenant_id)

    async def update(
        self,
        caller: Caller,
        draft: SettingsRecord,
        sections: Iterable[str],
        expected_version: int,
    ) -> SettingsView:
        named = frozenset(sections) or frozenset(SECTIONS)
        platform = _platform(caller)
        if not (access.tenant_admin(caller) or platform):
            raise forbidden()
        if platform and named != {AI_QUOTA}:
            raise PermissionDenied("platform staff change the AI quota only", "forbidden")
        if expected_version < 0:
            raise _invalid("invalid_version", "expected_version: 0 or the version read")
        checked = validate(draft, named, self._allowed)

        async def body(tx: Transaction) -> SettingsRecord:
            store = tx.for_tenant(caller.tenant_id)
            before = await self._stored(store)
            if before.version != expected_version:
                raise version_mismatch()
            now = self._clock.now()
            after = replace(
                _merged(before, checked, named),
                version=before.version + 1,
                updated_at=now,
                updated_by=caller.user_id,
            )
            if not platform and after.ai_quota_monthly_tokens != before.ai_quota_monthly_tokens:
                raise PermissionDenied("only platform staff change the AI quota", "forbidden")
            if not await store.settings.replace_if_version(after, before.version):
                raise version_mismatch()
            changed = _changed(before, after)
            await self._audit.append(
                store,
                entry(
                    caller,
                    SETTINGS_UPDATED,
                    Target("settings", caller.tenant_id),
                    {"version": before.version},
                    {"version": after.version, "sections": ",".join(changed)},
                ),
            )
            await store.outbox.add_many([self._event(caller.tenant_id, after, named)])
            return after

        after = await self._audit.transaction(caller.tenant_id, body)
        # Committed: the relay publishes the event now rather than at its next poll.
        self._relay_wakeup.set()
        count = await self._db.for_tenant(caller.tenant_id).canned.count_where(SHARED_OWNER)
        return SettingsView(with_defaults(after), count)

    def _event(
        self, tenant_id: str, after: SettingsRecord, sections: frozenset[str]
    ) -> OutboxRecord:
        event = settings_pb2.TenantSettingsChanged(
            event_id=new_id(),
            tenant_id=tenant_id,
            version=after.version,
            sections=[SECTION_VALUES[s] for s in SECTIONS if s in sections],
        )
        event.occurred_at.FromDatetime(self._clock.now())
        # Keyed by the tenant: the relay uses the record's conversation_id as the
        # Kafka key, and the version orders a tenant's changes like event seqs.
        return OutboxRecord(
            event_id=event.event_id,
            topic=TENANT_SETTINGS_TOPIC,
            conversation_id=tenant_id,
            event_seq=after.version,
            payload=event.SerializeToString(),
            headers=[(EVENT_TYPE_HEADER, TENANT_SETTINGS_EVENT_TYPE), *inject_headers()],
            created_at=self._clock.now(),
            sealed=False,
        )
