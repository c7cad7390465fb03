"""Which of a tenant's bot agents serves a conversation, and how it is set up.

Pure: the tenant's settings, the conversation and (for support) its ticket in,
an Agent out. A tenant with no enabled assistant agent keeps today's behaviour
in its AI-assistant conversations: the service's own defaults act as an implicit
assistant (id "") posting as BOT_USER_ID. Support conversations have no such
default: without a support agent holding the ticket in status `bot`, the bot
stays silent there and humans answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.guardrails import Guardrails
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import settings_pb2 as spb
from confab.conversation.v1 import support_pb2 as supb
from confab_core.identity import BOT_USER_ID, agent_user_id

# The implicit assistant's id (RecordUsage and memory are keyed by it).
DEFAULT_AGENT_ID = ""


@dataclass(frozen=True)
class AgentDefaults:
    """The service's own values, for an agent that leaves one unset (0 or "")."""

    display_name: str
    system_prompt: str
    token_budget: int
    max_reply_tokens: int
    handoff_after_turns: int


@dataclass(frozen=True)
class Agent:
    id: str
    user_id: str
    display_name: str
    # "" = the service's default model / base URL.
    model: str
    base_url: str
    system_prompt: str
    # None = the model's own default.
    temperature: float | None
    token_budget: int
    max_reply_tokens: int
    handoff_after_turns: int
    guardrails: Guardrails
    # The support desk's first line: hands off instead of giving up.
    support: bool


def implicit_agent(defaults: AgentDefaults, tenant_topics: spb.Topics | None = None) -> Agent:
    return Agent(
        id=DEFAULT_AGENT_ID,
        user_id=BOT_USER_ID,
        display_name=defaults.display_name,
        model="",
        base_url="",
        system_prompt=defaults.system_prompt,
        temperature=None,
        token_budget=defaults.token_budget,
        max_reply_tokens=defaults.max_reply_tokens,
        handoff_after_turns=defaults.handoff_after_turns,
        # A tenant's forbidden topics hold for its default assistant too.
        guardrails=Guardrails.of(tenant_topics) if tenant_topics else Guardrails.none(),
        support=False,
    )


def agent_from(
    settings: spb.TenantSettings, configured: spb.BotAgent, defaults: AgentDefaults
) -> Agent:
    return Agent(
        id=configured.id,
        user_id=agent_user_id(configured.id),
        display_name=configured.display_name or defaults.display_name,
        model=configured.model,
        base_url=configured.base_url,
        system_prompt=configured.system_prompt or defaults.system_prompt,
        # Settings cannot tell "0.0" from unset; 0 is a legitimate temperature,
        # so it is sent as is.
        temperature=configured.temperature,
        token_budget=configured.token_budget or defaults.token_budget,
        max_reply_tokens=configured.max_reply_tokens or defaults.max_reply_tokens,
        handoff_after_turns=configured.handoff_after_turns or defaults.handoff_after_turns,
        guardrails=Guardrails.of(settings.topics, configured.topics),
        support=configured.role == spb.AGENT_ROLE_SUPPORT,
    )


def _enabled(settings: spb.TenantSettings, agent_id: str) -> spb.BotAgent | None:
    for a in settings.agents:
        if a.id == agent_id and a.enabled:
            return a
    return None


def _with_role(settings: spb.TenantSettings, role: spb.AgentRole.ValueType) -> spb.BotAgent | None:
    for a in settings.agents:
        if a.role == role and a.enabled:
            return a
    return None


def assistant_agent(
    settings: spb.TenantSettings, conversation: pb.Conversation, defaults: AgentDefaults
) -> Agent | None:
    """The agent named at the conversation's creation (the conversation's bot
    member, the only bot user that may post there): None once it is disabled or
    removed. A conversation that names none (created before the tenant had
    agents): the tenant's assistant, else the implicit one."""
    if conversation.agent_id:
        configured = _enabled(settings, conversation.agent_id)
        if configured is None:
            return None
    else:
        configured = _with_role(settings, spb.AGENT_ROLE_ASSISTANT)
    if configured is None:
        return implicit_agent(defaults, settings.topics)
    # Answering in an assistant conversation is never a support handoff.
    return replace(agent_from(settings, configured, defaults), support=False)


def support_agent(
    settings: spb.TenantSettings, ticket: supb.Ticket, defaults: AgentDefaults
) -> Agent | None:
    """The agent holding the ticket, only while the ticket is in status `bot`."""
    if ticket.status != supb.TICKET_STATUS_BOT:
        return None
    configured = _enabled(settings, ticket.agent_id) if ticket.agent_id else None
    if configured is None:
        configured = _with_role(settings, spb.AGENT_ROLE_SUPPORT)
    if configured is None:
        return None
    agent = agent_from(settings, configured, defaults)
    return replace(agent, support=True)
