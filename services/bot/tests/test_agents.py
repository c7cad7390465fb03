"""Which agent serves a conversation (pure logic)."""

from __future__ import annotations

from bot.agents import DEFAULT_AGENT_ID, AgentDefaults, assistant_agent, support_agent
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import settings_pb2 as spb
from confab.conversation.v1 import support_pb2 as supb
from confab_core.identity import BOT_USER_ID

DEFAULTS = AgentDefaults(
    display_name="Confab Assistant",
    system_prompt="default prompt",
    token_budget=4000,
    max_reply_tokens=800,
    handoff_after_turns=5,
)


def agent(agent_id: str, role: int, *, enabled: bool = True, **fields: object) -> spb.BotAgent:
    return spb.BotAgent(id=agent_id, role=role, enabled=enabled, **fields)  # type: ignore[arg-type]


SETTINGS = spb.TenantSettings(
    topics=spb.Topics(forbidden=[spb.TopicRule(name="t", keywords=["poker"])]),
    agents=[
        agent(
            "helper",
            spb.AGENT_ROLE_ASSISTANT,
            display_name="Helper",
            model="m-1",
            base_url="https://llm.example/v1",
            system_prompt="you help",
            temperature=0.7,
            token_budget=2000,
        ),
        agent("desk", spb.AGENT_ROLE_SUPPORT, display_name="Desk", handoff_after_turns=2),
        agent("poet", spb.AGENT_ROLE_PICKABLE, display_name="Poet"),
        agent("off", spb.AGENT_ROLE_PICKABLE, enabled=False),
    ],
)


def test_a_tenant_without_agents_gets_the_implicit_assistant() -> None:
    a = assistant_agent(spb.TenantSettings(), pb.Conversation(), DEFAULTS)
    assert a is not None
    assert (a.id, a.user_id, a.display_name) == (DEFAULT_AGENT_ID, BOT_USER_ID, "Confab Assistant")
    assert (a.model, a.base_url, a.temperature) == ("", "", None)
    assert a.system_prompt == "default prompt"
    assert not a.support


def test_the_implicit_assistant_keeps_the_tenant_forbidden_topics() -> None:
    settings = spb.TenantSettings(topics=SETTINGS.topics)
    a = assistant_agent(settings, pb.Conversation(), DEFAULTS)
    assert a is not None
    assert a.guardrails.judge("poker night?").verdict.value == "forbidden"


def test_the_tenant_assistant_serves_when_no_agent_is_named() -> None:
    a = assistant_agent(SETTINGS, pb.Conversation(), DEFAULTS)
    assert a is not None
    assert (a.id, a.user_id, a.display_name) == ("helper", "confab-bot:helper", "Helper")
    assert (a.model, a.base_url, a.temperature) == ("m-1", "https://llm.example/v1", 0.7)
    assert (a.token_budget, a.max_reply_tokens, a.handoff_after_turns) == (2000, 800, 5)


def test_the_named_agent_serves_and_a_disabled_or_removed_one_is_silent() -> None:
    poet = assistant_agent(SETTINGS, pb.Conversation(agent_id="poet"), DEFAULTS)
    assert poet is not None and poet.user_id == "confab-bot:poet"
    assert assistant_agent(SETTINGS, pb.Conversation(agent_id="off"), DEFAULTS) is None
    assert assistant_agent(SETTINGS, pb.Conversation(agent_id="gone"), DEFAULTS) is None


def test_support_is_served_only_while_the_ticket_is_bot() -> None:
    ticket = supb.Ticket(id="t1", status=supb.TICKET_STATUS_BOT, agent_id="desk")
    a = support_agent(SETTINGS, ticket, DEFAULTS)
    assert a is not None and a.support
    assert (a.id, a.user_id, a.handoff_after_turns) == ("desk", "confab-bot:desk", 2)
    for status in (supb.TICKET_STATUS_QUEUED, supb.TICKET_STATUS_ASSIGNED, supb.TICKET_STATUS_NEW):
        assert (
            support_agent(SETTINGS, supb.Ticket(status=status, agent_id="desk"), DEFAULTS) is None
        )


def test_support_falls_back_to_the_tenant_support_agent_and_never_to_the_default() -> None:
    ticket = supb.Ticket(status=supb.TICKET_STATUS_BOT)
    a = support_agent(SETTINGS, ticket, DEFAULTS)
    assert a is not None and a.id == "desk"
    assert support_agent(spb.TenantSettings(), ticket, DEFAULTS) is None
