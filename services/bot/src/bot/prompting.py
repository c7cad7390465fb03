"""What the bot says and what it sends the model: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core import pii
from confab_core.identity import is_service_user
from confab_core.limits import MAX_TEXT_CHARS

# The conversation service rejects longer messages; a reply over it would be
# retried forever by the consumer.
MAX_REPLY_CHARS = MAX_TEXT_CHARS
# One chatty message must not crowd everything else out of a summary prompt.
MAX_TRANSCRIPT_MESSAGE_CHARS = 1000

NOT_CONFIGURED_REPLY = (
    "The AI assistant is not configured yet, so I cannot answer. "
    "An administrator can enable it by setting BOT_OPENAI_BASE_URL and BOT_OPENAI_API_KEY."
)
UNAVAILABLE_REPLY = (
    "Sorry, I could not answer right now: the AI model did not respond. "
    "Please try again in a moment."
)
EMPTY_REPLY = "Sorry, I have no answer to that."
NOT_CONFIGURED_SUMMARY = (
    "No summary is available: the AI assistant is not configured "
    "(set BOT_OPENAI_BASE_URL and BOT_OPENAI_API_KEY)."
)
SUMMARY_UNAVAILABLE = (
    "Sorry, I could not summarize this conversation right now: the AI model did not "
    "respond. Please try again in a moment."
)
FORBIDDEN_REPLY = (
    "Sorry, I can't help with that topic here. "
    "Please ask a member of the team directly if you need help with it."
)
OFF_TOPIC_REPLY = "Sorry, that is outside what I can help with here."
PERSON_REPLY = (
    "I'm an AI assistant, so there is no person in this conversation. "
    "To reach a person, open a support request or message a colleague directly."
)
QUOTA_REPLY = (
    "The AI assistant has reached this workspace's monthly usage limit, so I cannot "
    "answer until next month. Everything else in chat keeps working; an administrator "
    "can raise the limit."
)
HANDOFF_SUMMARY_PROMPT = (
    "Summarize this support chat for the human agent who takes it over, in at most "
    "three short sentences: what the customer wants, what the bot already said, "
    "and what is still open."
)
NOTHING_TO_SUMMARIZE = "There are no messages to summarize yet."
SUMMARY_PROMPT = (
    "You summarize chat conversations. Write a short, neutral summary of the "
    "conversation below: the main topics, decisions and open questions. "
    "Refer to people by the names shown."
)

_USER_KINDS = {pb.MESSAGE_KIND_TEXT, pb.MESSAGE_KIND_FILE}

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


_BOT_KINDS = {pb.CONVERSATION_KIND_AI_ASSISTANT, pb.CONVERSATION_KIND_SUPPORT}


def should_reply(event: events_pb2.ConversationEvent) -> bool:
    """A user's message in an AI-assistant or support conversation, and nothing
    else (whether an agent serves a support conversation is the handler's call)."""
    if event.WhichOneof("payload") != "message_created":
        return False
    created = event.message_created
    message = created.message
    return (
        created.conversation_kind in _BOT_KINDS
        and not is_service_user(message.sender_id)
        and message.kind in _USER_KINDS
    )


def reply_client_msg_id(message_id: str) -> str:
    # Derived from the message answered, so a redelivered event resends the
    # same id and the conversation service returns the stored reply.
    return f"bot-reply:{message_id}"


def quota_client_msg_id(conversation_id: str, month: str) -> str:
    # One over-quota notice per conversation per month, however many questions.
    return f"bot-quota:{conversation_id}:{month}"


def role_of(message: pb.Message) -> Role:
    if message.kind == pb.MESSAGE_KIND_BOT or is_service_user(message.sender_id):
        return "assistant"
    return "user"


def chat_turns(system_prompt: str, history: list[pb.Message]) -> list[Turn]:
    """The system prompt, then the history oldest first, in chat roles."""
    turns = [Turn("system", system_prompt)] if system_prompt else []
    turns += [Turn(role_of(m), m.text) for m in history if m.text.strip()]
    return turns


def fit_reply(text: str) -> str:
    text = text.strip()
    if not text:
        return EMPTY_REPLY
    if len(text) <= MAX_REPLY_CHARS:
        return text
    return text[: MAX_REPLY_CHARS - 1].rstrip() + "…"


def transcript(messages: list[pb.Message]) -> str:
    lines = []
    for m in messages:
        who = m.sender_name or m.sender_id
        text = m.text.strip()
        if len(text) > MAX_TRANSCRIPT_MESSAGE_CHARS:
            text = text[: MAX_TRANSCRIPT_MESSAGE_CHARS - 1] + "…"
        lines.append(f"{who}: {text}")
    return "\n".join(lines)


def summary_turns(title: str, messages: list[pb.Message]) -> list[Turn]:
    heading = f"Conversation: {title}\n\n" if title.strip() else ""
    return [Turn("system", SUMMARY_PROMPT), Turn("user", heading + transcript(messages))]


def masked_turns(turns: list[Turn], kinds: tuple[str, ...]) -> list[Turn]:
    """The turns with PII of ``kinds`` (empty: all) masked, the way the conversation
    service masks messages; the system prompt is the operator's and kept."""
    return [
        t if t.role == "system" else Turn(t.role, pii.mask(t.content, pii.scan(t.content, kinds)))
        for t in turns
    ]


def extractive_summary(messages: list[pb.Message], max_chars: int) -> str:
    """The last lines of the conversation that fit ``max_chars``, newest kept:
    the handoff summary when the model cannot write one."""
    picked: list[str] = []
    used = 0
    for m in reversed(messages):
        who = m.sender_name or m.sender_id
        line = f"{who}: {' '.join(m.text.split())}"
        if used + len(line) + 1 > max_chars:
            if not picked:
                picked.append(line[: max_chars - 1] + "…")
            break
        picked.append(line)
        used += len(line) + 1
    return "\n".join(reversed(picked))


def handoff_summary_turns(messages: list[pb.Message]) -> list[Turn]:
    return [Turn("system", HANDOFF_SUMMARY_PROMPT), Turn("user", transcript(messages))]
