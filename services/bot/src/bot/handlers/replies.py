"""Answers users in AI-assistant conversations and, as the first line of the
support desk, in support conversations whose ticket is in status `bot`.

The pipeline, per user message: the serving agent (from the tenant's settings;
support: only while the ticket is still `bot`) -> already replied? -> quota ->
topic guardrails (rules, then the optional model check) BEFORE the model is
asked anything -> the prompt under the agent's token budget (rolling memory +
recent messages) -> the reply (checked again before it is posted) -> usage
recorded -> the turn-limit handoff.

Consumed events are redelivered after failures and restarts, so answering is
idempotent twice over: the reply's client_msg_id derives from the message
answered (the conversation service returns the stored reply on a repeat), and a
reply already in the conversation is found before the model is asked again. A
handed-off ticket is no longer `bot`, so a redelivered event finds no serving
agent and the bot stays silent. A model that stays down gets one clear message
(assistant) or a handoff (support) instead of an error, so an outage never
stalls the partition; the conversation service being down does raise, and the
consumer retries the event until it is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from opentelemetry.trace import Span
from prometheus_client import Counter

from bot.agents import Agent, AgentDefaults, assistant_agent, support_agent
from bot.clients.botdata import BotDataClient
from bot.clients.conversation import ConversationClient
from bot.clients.settings import TenantSettingsSource
from bot.clients.support import SupportClient
from bot.guardrails import (
    Decision,
    Verdict,
    cannot_help,
    topic_check_passed,
    topic_check_prompt,
)
from bot.memory import (
    Line,
    PromptPlan,
    TokenCounter,
    memory_turns,
    needs_refresh,
    plan_prompt,
    truncate,
)
from bot.model import ChatModel, Completion, ModelCall, ModelError
from bot.prompting import (
    FORBIDDEN_REPLY,
    NOT_CONFIGURED_REPLY,
    OFF_TOPIC_REPLY,
    PERSON_REPLY,
    QUOTA_REPLY,
    UNAVAILABLE_REPLY,
    Turn,
    extractive_summary,
    handoff_summary_turns,
    quota_client_msg_id,
    reply_client_msg_id,
    role_of,
    should_reply,
)
from bot.replier import Replier
from bot.streaming import StreamRequest
from confab.conversation.v1 import botdata_pb2 as bdpb
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import support_pb2 as supb
from confab_core.errors import (
    ConfabError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from confab_core.identity import (
    BOT_USER_ID,
    ROLE_SERVICE,
    Caller,
    current_caller,
    reset_caller,
    set_caller,
)
from confab_core.sealed_events import EventOpener
from confab_core.telemetry import tracer

log = logging.getLogger(__name__)

# Errors a retry of the same event cannot fix: the conversation is gone or
# archived, or the bot is no longer allowed to post there.
_PERMANENT = (NotFound, PermissionDenied, InvalidArgument, FailedPrecondition)
# How far past the answered message to look for an existing reply.
_REPLY_LOOKAHEAD = 100
# A handoff summary the agent reads at a glance.
HANDOFF_SUMMARY_CHARS = 500
HANDOFF_SUMMARY_TOKENS = 200
TOPIC_CHECK_TOKENS = 3

REPLIES = Counter("confab_bot_replies_total", "Bot replies, by outcome", ["outcome"])
HANDOFFS = Counter(
    "confab_bot_handoffs_total", "Support handoffs by the bot, by reason", ["reason"]
)
TOKENS = Counter(
    "confab_bot_model_tokens_total",
    "Model tokens, by tenant, agent, direction (in/out) and purpose",
    ["tenant", "agent", "direction", "purpose"],
)
USAGE_LOST = Counter(
    "confab_bot_usage_record_failures_total",
    "Model calls whose usage could not be recorded in the tenant's quota",
)

_PURPOSE_NAMES = {
    bdpb.USAGE_PURPOSE_REPLY: "reply",
    bdpb.USAGE_PURPOSE_MEMORY: "memory",
    bdpb.USAGE_PURPOSE_SUMMARY: "summary",
    bdpb.USAGE_PURPOSE_TOPIC_CHECK: "topic_check",
}


def service_caller(tenant_id: str, user_id: str = BOT_USER_ID, display_name: str = "") -> Caller:
    return Caller(
        tenant_id=tenant_id,
        user_id=user_id,
        roles=frozenset({ROLE_SERVICE}),
        display_name=display_name,
    )


def bot_caller(tenant_id: str, display_name: str) -> Caller:
    return service_caller(tenant_id, BOT_USER_ID, display_name)


def agent_caller(tenant_id: str, agent: Agent) -> Caller:
    return service_caller(tenant_id, agent.user_id, agent.display_name)


@dataclass(frozen=True)
class ReplyConfig:
    defaults: AgentDefaults
    # Recent messages read per reply (at most a page, 100).
    history_messages: int
    memory_refresh_tokens: int


@dataclass(frozen=True)
class Turned:
    """What one user message is being answered in: the agent, and for support
    the ticket it holds."""

    agent: Agent
    ticket: supb.Ticket | None


def meter(
    tenant_id: str, agent_id: str, purpose: bdpb.UsagePurpose.ValueType, c: Completion
) -> None:
    name = _PURPOSE_NAMES.get(purpose, "other")
    TOKENS.labels(tenant_id, agent_id or "default", "in", name).inc(c.tokens_in)
    TOKENS.labels(tenant_id, agent_id or "default", "out", name).inc(c.tokens_out)


class ReplyHandler:
    def __init__(
        self,
        *,
        conversations: ConversationClient,
        support: SupportClient,
        botdata: BotDataClient,
        settings: TenantSettingsSource,
        model: ChatModel | None,
        replier: Replier | None,
        counter: TokenCounter,
        config: ReplyConfig,
        events: EventOpener,
    ) -> None:
        self._conversations = conversations
        self._support = support
        self._botdata = botdata
        self._settings = settings
        self._model = model
        self._replier = replier
        self._counter = counter
        self._config = config
        self._events = events

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = await self._events.open(record)
        if event is not None:
            await self.handle(event)

    async def handle(self, event: events_pb2.ConversationEvent) -> None:
        if not should_reply(event):
            return
        message = event.message_created.message
        if not event.tenant_id or not event.conversation_id or not message.id:
            # No tenant to act in: retrying would hold the partition forever.
            log.error("dropping malformed message event", extra={"event_id": event.event_id})
            return
        with tracer().start_as_current_span(
            "confab.bot.reply",
            attributes={
                "confab.tenant_id": event.tenant_id,
                "confab.conversation_id": event.conversation_id,
                "confab.message_id": message.id,
            },
        ) as span:
            token = set_caller(bot_caller(event.tenant_id, self._config.defaults.display_name))
            try:
                turned = await self._serving(
                    event.tenant_id, event.conversation_id, event.message_created.conversation_kind
                )
                if turned is None:
                    span.set_attribute("confab.bot.outcome", "not_serving")
                    REPLIES.labels("not_serving").inc()
                    return
                span.set_attribute("confab.bot.agent_id", turned.agent.id)
                inner = set_caller(agent_caller(event.tenant_id, turned.agent))
                try:
                    await self._reply(event.tenant_id, event.conversation_id, message, turned, span)
                finally:
                    reset_caller(inner)
            except _PERMANENT as exc:
                log.warning(
                    "cannot reply in this conversation; skipping the message",
                    extra={
                        "tenant_id": event.tenant_id,
                        "conversation_id": event.conversation_id,
                        "message_id": message.id,
                        "error_code": exc.code,
                    },
                )
                span.set_attribute("confab.error_code", exc.code)
                REPLIES.labels("skipped").inc()
            finally:
                reset_caller(token)

    async def _serving(self, tenant_id: str, conversation_id: str, kind: int) -> Turned | None:
        settings = await self._settings.get(tenant_id)
        defaults = self._config.defaults
        if kind == pb.CONVERSATION_KIND_SUPPORT:
            ticket = await self._support.conversation_ticket(conversation_id)
            agent = support_agent(settings, ticket, defaults)
            return None if agent is None else Turned(agent, ticket)
        conversation = await self._conversations.get_conversation(conversation_id)
        agent = assistant_agent(settings, conversation, defaults)
        return None if agent is None else Turned(agent, None)

    async def _reply(
        self,
        tenant_id: str,
        conversation_id: str,
        message: pb.Message,
        turned: Turned,
        span: Span,
    ) -> None:
        agent = turned.agent
        client_msg_id = reply_client_msg_id(message.id)
        if await self._already_replied(conversation_id, message.seq, agent, client_msg_id):
            span.set_attribute("confab.bot.duplicate", True)
            REPLIES.labels("duplicate").inc()
            return
        if self._model is None or self._replier is None:
            outcome = await self._unanswerable(conversation_id, message, turned, "not_configured")
            span.set_attribute("confab.bot.outcome", outcome)
            return
        if await self._over_quota(conversation_id, message, turned):
            span.set_attribute("confab.bot.outcome", "over_quota")
            return
        history = await self._conversations.messages_before(
            conversation_id, message.seq + 1, self._config.history_messages
        )
        decision = agent.guardrails.judge(message.text)
        span.set_attribute("confab.bot.verdict", decision.verdict.value)
        if (
            decision.verdict is Verdict.ALLOWED
            and agent.guardrails.model_check
            and not await self._topic_check(conversation_id, message, agent)
        ):
            decision = Decision(Verdict.OFF_TOPIC)
        if decision.verdict is not Verdict.ALLOWED:
            outcome = await self._refuse(
                conversation_id, message, turned, decision.verdict, history
            )
            span.set_attribute("confab.bot.outcome", outcome)
            return
        plan = await self._prompt(conversation_id, message, agent, history)
        try:
            result = await self._replier.stream(
                StreamRequest(
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    client_msg_id=client_msg_id,
                    turns=plan.turns,
                    model=agent.model,
                    base_url=agent.base_url,
                    temperature=agent.temperature,
                    max_tokens=agent.max_reply_tokens,
                    check=agent.guardrails.reply_ok,
                )
            )
        except ModelError as exc:
            log.warning(
                "model stayed down; telling the user or handing off",
                extra={"conversation_id": conversation_id, "error": str(exc)},
            )
            outcome = await self._unanswerable(conversation_id, message, turned, "model_error")
            span.set_attribute("confab.bot.outcome", outcome)
            return
        await self._record(
            f"reply:{message.id}",
            agent,
            conversation_id,
            bdpb.USAGE_PURPOSE_REPLY,
            Completion(result.message.text, result.tokens_in, result.tokens_out),
        )
        if result.refused:
            # The model drifted into a forbidden topic: the reply never shows.
            outcome = await self._refuse(
                conversation_id, message, turned, Verdict.FORBIDDEN, history
            )
            span.set_attribute("confab.bot.outcome", f"reply_{outcome}")
            return
        if result.state == pb.STREAM_STATE_FAILED:
            outcome = await self._unanswerable(conversation_id, message, turned, "model_error")
            span.set_attribute("confab.bot.outcome", outcome)
            return
        REPLIES.labels("answered").inc()
        span.set_attribute("confab.bot.outcome", "answered")
        if turned.ticket is None:
            return
        if cannot_help(result.message.text):
            await self._hand_off(
                conversation_id, message, turned, supb.HANDOFF_REASON_BOT_CANNOT_HELP, history
            )
        elif self._turns_taken(history, agent) + 1 >= agent.handoff_after_turns:
            await self._hand_off(
                conversation_id, message, turned, supb.HANDOFF_REASON_TURN_LIMIT, history
            )

    async def _already_replied(
        self, conversation_id: str, seq: int, agent: Agent, client_msg_id: str
    ) -> bool:
        # Saves a model call on redelivery; the client_msg_id alone would keep
        # the conversation correct but pay for the answer twice.
        later = await self._conversations.messages_after(conversation_id, seq, _REPLY_LOOKAHEAD)
        return any(m.sender_id == agent.user_id and m.client_msg_id == client_msg_id for m in later)

    @staticmethod
    def _turns_taken(history: list[pb.Message], agent: Agent) -> int:
        return sum(1 for m in history if m.sender_id == agent.user_id)

    async def _over_quota(self, conversation_id: str, message: pb.Message, turned: Turned) -> bool:
        try:
            usage = await self._botdata.usage()
        except ConfabError as exc:
            if isinstance(exc, _PERMANENT):
                raise
            # Metering must not take chat down: answer, and let the next call
            # (or RecordUsage) see the quota.
            log.warning("usage unreadable; answering anyway", extra={"error": str(exc)})
            return False
        if not usage.over_quota:
            return False
        REPLIES.labels("over_quota").inc()
        if turned.ticket is not None:
            await self._hand_off(
                conversation_id, message, turned, supb.HANDOFF_REASON_QUOTA_EXCEEDED, []
            )
            return True
        # One message per conversation per month: later questions that month
        # resend the same client_msg_id and the conversation service returns it.
        await self._conversations.send_message(
            conversation_id,
            quota_client_msg_id(conversation_id, usage.month),
            QUOTA_REPLY,
            pb.MESSAGE_KIND_BOT,
        )
        return True

    async def _topic_check(self, conversation_id: str, message: pb.Message, agent: Agent) -> bool:
        assert self._model is not None
        try:
            completion = await self._model.complete(
                ModelCall(
                    [
                        Turn("system", topic_check_prompt(agent.guardrails.allowed_topics)),
                        Turn("user", message.text),
                    ],
                    model=agent.model,
                    base_url=agent.base_url,
                    temperature=0.0,
                    max_tokens=TOPIC_CHECK_TOKENS,
                )
            )
        except ModelError:
            # The rules already allowed it; the reply call finds out if the
            # model is really down.
            return True
        await self._record(
            f"topic-check:{message.id}",
            agent,
            conversation_id,
            bdpb.USAGE_PURPOSE_TOPIC_CHECK,
            completion,
        )
        return topic_check_passed(completion.text)

    def _lines(self, history: list[pb.Message], agent: Agent, after_seq: int) -> list[Line]:
        lines = []
        for m in history:
            if m.seq <= after_seq or not m.text.strip() or m.kind == pb.MESSAGE_KIND_SYSTEM:
                continue
            role = role_of(m)
            # A question the rules refused never reaches the model, even as history.
            if role == "user" and agent.guardrails.judge(m.text).verdict is Verdict.FORBIDDEN:
                continue
            lines.append(Line(m.seq, role, m.text))
        return lines

    async def _prompt(
        self,
        conversation_id: str,
        message: pb.Message,
        agent: Agent,
        history: list[pb.Message],
    ) -> PromptPlan:
        memory, through = "", 0
        try:
            stored = await self._botdata.memory(conversation_id, agent.id)
        except ConfabError as exc:
            if isinstance(exc, _PERMANENT):
                raise
            log.warning(
                "memory unreadable; answering from recent messages", extra={"error": str(exc)}
            )
            stored = None
        if stored is not None:
            memory, through = stored.summary, stored.through_seq
        plan = plan_prompt(
            self._counter,
            system_prompt=agent.system_prompt,
            memory=memory,
            lines=self._lines(history, agent, through),
            budget=agent.token_budget,
        )
        if not needs_refresh(plan, self._config.memory_refresh_tokens):
            return plan
        refreshed = await self._refresh_memory(conversation_id, message, agent, memory, plan)
        if refreshed is None:
            return plan
        memory, through = refreshed
        return plan_prompt(
            self._counter,
            system_prompt=agent.system_prompt,
            memory=memory,
            lines=self._lines(history, agent, through),
            budget=agent.token_budget,
        )

    async def _refresh_memory(
        self,
        conversation_id: str,
        message: pb.Message,
        agent: Agent,
        previous: str,
        plan: PromptPlan,
    ) -> tuple[str, int] | None:
        assert self._model is not None
        # A quarter of the budget: the summary must leave room for the messages.
        max_tokens = max(agent.token_budget // 4, 64)
        try:
            completion = await self._model.complete(
                ModelCall(
                    memory_turns(previous, plan.overflow),
                    model=agent.model,
                    base_url=agent.base_url,
                    temperature=0.0,
                    max_tokens=max_tokens,
                )
            )
        except ModelError:
            return None
        await self._record(
            f"memory:{message.id}",
            agent,
            conversation_id,
            bdpb.USAGE_PURPOSE_MEMORY,
            completion,
        )
        summary = truncate(self._counter, completion.text.strip(), max_tokens)
        through = plan.overflow[-1].seq
        try:
            await self._botdata.put_memory(conversation_id, agent.id, summary, through)
        except ConfabError as exc:
            if isinstance(exc, _PERMANENT):
                raise
            log.warning("memory not saved", extra={"error": str(exc)})
        return summary, through

    async def _record(
        self,
        call_id: str,
        agent: Agent,
        conversation_id: str,
        purpose: bdpb.UsagePurpose.ValueType,
        completion: Completion,
    ) -> None:
        meter(current_caller().tenant_id, agent.id, purpose, completion)
        try:
            await self._botdata.record_usage(
                bdpb.RecordUsageRequest(
                    call_id=call_id,
                    agent_id=agent.id,
                    conversation_id=conversation_id,
                    purpose=purpose,
                    tokens_in=completion.tokens_in,
                    tokens_out=completion.tokens_out,
                )
            )
        except ConfabError as exc:
            # The reply stands; a retried event would find it and not record
            # either, so the loss is counted instead of retried.
            USAGE_LOST.inc()
            log.warning("usage not recorded", extra={"call_id": call_id, "error": str(exc)})

    async def _refuse(
        self,
        conversation_id: str,
        message: pb.Message,
        turned: Turned,
        verdict: Verdict,
        history: list[pb.Message],
    ) -> str:
        """A question the bot must not answer: support hands off, the assistant
        says so in one fixed message (never a model answer)."""
        if turned.ticket is not None:
            reason = {
                Verdict.FORBIDDEN: supb.HANDOFF_REASON_FORBIDDEN_TOPIC,
                Verdict.PERSON: supb.HANDOFF_REASON_USER_ASKED,
            }.get(verdict, supb.HANDOFF_REASON_OFF_TOPIC)
            await self._hand_off(conversation_id, message, turned, reason, history)
            return "handed_off"
        text = {
            Verdict.FORBIDDEN: FORBIDDEN_REPLY,
            Verdict.PERSON: PERSON_REPLY,
        }.get(verdict, OFF_TOPIC_REPLY)
        await self._conversations.send_message(
            conversation_id, reply_client_msg_id(message.id), text, pb.MESSAGE_KIND_BOT
        )
        REPLIES.labels(f"refused_{verdict.value}").inc()
        return f"refused_{verdict.value}"

    async def _unanswerable(
        self, conversation_id: str, message: pb.Message, turned: Turned, why: str
    ) -> str:
        if turned.ticket is not None:
            await self._hand_off(
                conversation_id, message, turned, supb.HANDOFF_REASON_MODEL_UNAVAILABLE, []
            )
            return "handed_off"
        text = NOT_CONFIGURED_REPLY if why == "not_configured" else UNAVAILABLE_REPLY
        await self._conversations.send_message(
            conversation_id, reply_client_msg_id(message.id), text, pb.MESSAGE_KIND_BOT
        )
        REPLIES.labels(why).inc()
        return why

    async def _hand_off(
        self,
        conversation_id: str,
        message: pb.Message,
        turned: Turned,
        reason: supb.HandoffReason.ValueType,
        history: list[pb.Message],
    ) -> None:
        assert turned.ticket is not None
        if not history:
            history = await self._conversations.messages_before(
                conversation_id, message.seq + 1, self._config.history_messages
            )
        summary = await self._handoff_summary(
            conversation_id, message, turned.agent, reason, history
        )
        try:
            await self._support.hand_off(turned.ticket.id, reason, summary)
        except FailedPrecondition:
            # Someone (an agent claiming it, or an earlier delivery of this
            # event) moved the ticket on already: the bot is done either way.
            log.info("ticket already left status bot", extra={"ticket_id": turned.ticket.id})
            return
        HANDOFFS.labels(supb.HandoffReason.Name(reason)).inc()
        REPLIES.labels("handed_off").inc()

    async def _handoff_summary(
        self,
        conversation_id: str,
        message: pb.Message,
        agent: Agent,
        reason: supb.HandoffReason.ValueType,
        history: list[pb.Message],
    ) -> str:
        shown = [m for m in history if m.text.strip() and m.kind != pb.MESSAGE_KIND_SYSTEM]
        fallback = extractive_summary(shown, HANDOFF_SUMMARY_CHARS)
        # A forbidden question is not sent to the model even to summarize it; a
        # model that is down or over quota is not asked either.
        if self._model is None or reason in (
            supb.HANDOFF_REASON_FORBIDDEN_TOPIC,
            supb.HANDOFF_REASON_MODEL_UNAVAILABLE,
            supb.HANDOFF_REASON_QUOTA_EXCEEDED,
        ):
            return fallback
        try:
            completion = await self._model.complete(
                ModelCall(
                    handoff_summary_turns(shown),
                    model=agent.model,
                    base_url=agent.base_url,
                    temperature=0.0,
                    max_tokens=HANDOFF_SUMMARY_TOKENS,
                )
            )
        except ModelError:
            return fallback
        await self._record(
            f"handoff-summary:{message.id}",
            agent,
            conversation_id,
            bdpb.USAGE_PURPOSE_SUMMARY,
            completion,
        )
        text = completion.text.strip()
        if not text:
            return fallback
        return (
            text if len(text) <= HANDOFF_SUMMARY_CHARS else text[: HANDOFF_SUMMARY_CHARS - 1] + "…"
        )
