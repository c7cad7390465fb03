"""The tenant's chat settings (``tenant_settings``): one versioned document per
tenant, keyed by the tenant id.

Free text (the welcome message, agents' system prompts, every topic rule) is
user content: it sits in one sealed field, ``text``, so the re-encrypt job moves
it like any other (storage/keys.py SEALED). The rest is configuration kept plain:
colours, URLs, agent ids and models, numbers, ticket categories (the desk's
filter vocabulary, plain as before) and ``role_permissions``, which the
permission checks read directly as ``{<role>: [<permission>, ...]}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCrypto

SETTINGS_DOC_COLLECTION = "tenant_settings"
TEXT_FIELD = "text"


@dataclass(frozen=True, slots=True)
class BrandingRecord:
    display_name: str = ""
    primary_color: str = ""
    accent_color: str = ""
    logo_url: str = ""
    welcome_message: str = ""


@dataclass(frozen=True, slots=True)
class TopicRuleRecord:
    name: str
    phrases: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicsRecord:
    allowed: tuple[TopicRuleRecord, ...] = ()
    forbidden: tuple[TopicRuleRecord, ...] = ()
    model_check: bool = False


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    display_name: str = ""
    avatar_url: str = ""
    # "assistant", "support" or "pickable".
    role: str = ""
    model: str = ""
    base_url: str = ""
    system_prompt: str = ""
    temperature: float = 0.0
    token_budget: int = 0
    max_reply_tokens: int = 0
    topics: TopicsRecord = field(default_factory=TopicsRecord)
    handoff_after_turns: int = 0
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class FilesRecord:
    """The files policy as stored: 0 and empty mean the defaults
    (handlers/filepolicy.py applies them)."""

    max_size_bytes: int = 0
    allowed_kinds: tuple[str, ...] = ()
    # "block", "download_only", or "" (the default, block).
    svg_mode: str = ""
    max_image_pixels: int = 0
    user_quota_bytes: int = 0
    tenant_quota_bytes: int = 0
    keep_image_metadata: bool = False


@dataclass(frozen=True, slots=True)
class SettingsRecord:
    branding: BrandingRecord = field(default_factory=BrandingRecord)
    agents: tuple[AgentRecord, ...] = ()
    topics: TopicsRecord = field(default_factory=TopicsRecord)
    ticket_categories: tuple[str, ...] = ()
    # (role, permissions) in the admin's order; a role left out keeps its default.
    role_permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ai_quota_monthly_tokens: int = 0
    files: FilesRecord = field(default_factory=FilesRecord)
    # 0 while the tenant has never saved its settings.
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str = ""


def _topics_doc(t: TopicsRecord) -> dict[str, Any]:
    def rule(r: TopicRuleRecord) -> dict[str, Any]:
        return {
            "name": r.name,
            "phrases": list(r.phrases),
            "keywords": list(r.keywords),
            "patterns": list(r.patterns),
        }

    return {
        "allowed": [rule(r) for r in t.allowed],
        "forbidden": [rule(r) for r in t.forbidden],
        "model_check": t.model_check,
    }


def _topics(doc: dict[str, Any] | None) -> TopicsRecord:
    if not doc:
        return TopicsRecord()

    def rule(d: dict[str, Any]) -> TopicRuleRecord:
        return TopicRuleRecord(
            name=str(d.get("name", "")),
            phrases=tuple(str(p) for p in d.get("phrases", ())),
            keywords=tuple(str(k) for k in d.get("keywords", ())),
            patterns=tuple(str(p) for p in d.get("patterns", ())),
        )

    return TopicsRecord(
        allowed=tuple(rule(r) for r in doc.get("allowed", ())),
        forbidden=tuple(rule(r) for r in doc.get("forbidden", ())),
        model_check=bool(doc.get("model_check", False)),
    )


def _text(s: SettingsRecord) -> str:
    """The free text of the document, as the one JSON string that is sealed."""
    return json.dumps(
        {
            "welcome_message": s.branding.welcome_message,
            "topics": _topics_doc(s.topics),
            "agents": {
                a.id: {"system_prompt": a.system_prompt, "topics": _topics_doc(a.topics)}
                for a in s.agents
            },
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _document(s: SettingsRecord, sealed_text: bytes | str) -> Doc:
    b = s.branding
    return {
        "branding": {
            "display_name": b.display_name,
            "primary_color": b.primary_color,
            "accent_color": b.accent_color,
            "logo_url": b.logo_url,
        },
        "agents": [
            {
                "id": a.id,
                "display_name": a.display_name,
                "avatar_url": a.avatar_url,
                "role": a.role,
                "model": a.model,
                "base_url": a.base_url,
                "temperature": a.temperature,
                "token_budget": a.token_budget,
                "max_reply_tokens": a.max_reply_tokens,
                "handoff_after_turns": a.handoff_after_turns,
                "enabled": a.enabled,
            }
            for a in s.agents
        ],
        "ticket_categories": list(s.ticket_categories),
        "role_permissions": {role: list(perms) for role, perms in s.role_permissions},
        "ai_quota": {"monthly_tokens": s.ai_quota_monthly_tokens},
        "files": {
            "max_size_bytes": s.files.max_size_bytes,
            "allowed_kinds": list(s.files.allowed_kinds),
            "svg_mode": s.files.svg_mode,
            "max_image_pixels": s.files.max_image_pixels,
            "user_quota_bytes": s.files.user_quota_bytes,
            "tenant_quota_bytes": s.files.tenant_quota_bytes,
            "keep_image_metadata": s.files.keep_image_metadata,
        },
        TEXT_FIELD: sealed_text,
        "version": s.version,
        "updated_at": s.updated_at,
        "updated_by": s.updated_by,
    }


def _record(doc: Doc, text: str) -> SettingsRecord:
    opened: dict[str, Any] = json.loads(text) if text else {}
    agent_text: dict[str, Any] = opened.get("agents", {})
    b = doc.get("branding", {})
    agents = []
    for a in doc.get("agents", ()):
        more = agent_text.get(str(a["id"]), {})
        agents.append(
            AgentRecord(
                id=str(a["id"]),
                display_name=str(a.get("display_name", "")),
                avatar_url=str(a.get("avatar_url", "")),
                role=str(a.get("role", "")),
                model=str(a.get("model", "")),
                base_url=str(a.get("base_url", "")),
                system_prompt=str(more.get("system_prompt", "")),
                temperature=float(a.get("temperature", 0.0)),
                token_budget=int(a.get("token_budget", 0)),
                max_reply_tokens=int(a.get("max_reply_tokens", 0)),
                topics=_topics(more.get("topics")),
                handoff_after_turns=int(a.get("handoff_after_turns", 0)),
                enabled=bool(a.get("enabled", False)),
            )
        )
    return SettingsRecord(
        branding=BrandingRecord(
            display_name=str(b.get("display_name", "")),
            primary_color=str(b.get("primary_color", "")),
            accent_color=str(b.get("accent_color", "")),
            logo_url=str(b.get("logo_url", "")),
            welcome_message=str(opened.get("welcome_message", "")),
        ),
        agents=tuple(agents),
        topics=_topics(opened.get("topics")),
        ticket_categories=tuple(str(c) for c in doc.get("ticket_categories", ())),
        role_permissions=tuple(
            (str(role), tuple(str(p) for p in perms))
            for role, perms in doc.get("role_permissions", {}).items()
        ),
        ai_quota_monthly_tokens=int(doc.get("ai_quota", {}).get("monthly_tokens", 0)),
        files=_files(doc.get("files") or {}),
        version=int(doc["version"]),
        updated_at=doc.get("updated_at"),
        updated_by=str(doc.get("updated_by", "")),
    )


def _files(d: dict[str, Any]) -> FilesRecord:
    return FilesRecord(
        max_size_bytes=int(d.get("max_size_bytes", 0)),
        allowed_kinds=tuple(str(k) for k in d.get("allowed_kinds", ())),
        svg_mode=str(d.get("svg_mode", "")),
        max_image_pixels=int(d.get("max_image_pixels", 0)),
        user_quota_bytes=int(d.get("user_quota_bytes", 0)),
        tenant_quota_bytes=int(d.get("tenant_quota_bytes", 0)),
        keep_image_metadata=bool(d.get("keep_image_metadata", False)),
    )


class SettingsRepo:
    """One tenant's settings document; absent until the tenant first saves."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def get(self) -> SettingsRecord | None:
        doc = await self._col.find_one({"_id": self._col.tenant_id}, session=self._session)
        if doc is None:
            return None
        c = await self._crypto.cipher()
        text = c.open(SETTINGS_DOC_COLLECTION, self._col.tenant_id, TEXT_FIELD, doc.get(TEXT_FIELD))
        return _record(doc, text)

    async def replace_if_version(self, settings: SettingsRecord, expected_version: int) -> bool:
        """Stores ``settings`` if the stored version is still ``expected_version``
        (0: none stored yet); False when another write came first."""
        c = await self._crypto.cipher()
        sealed = c.seal(SETTINGS_DOC_COLLECTION, self._col.tenant_id, TEXT_FIELD, _text(settings))
        try:
            result = await self._col.update_one(
                {"_id": self._col.tenant_id, "version": expected_version},
                {"$set": _document(settings, sealed)},
                upsert=expected_version == 0,
                session=self._session,
            )
        except DuplicateKeyError:
            # The upsert of a first version raced another first version.
            return False
        return result.matched_count == 1 or result.upserted_id is not None
