"""What the bot says and what it sends the model: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core import pii
from confab_core.identity import BOT_USER_ID
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


def should_reply(event: events_pb2.ConversationEvent) -> bool:
    """A user's message in an AI-assistant conversation, and nothing else."""
    if event.WhichOneof("payload") != "message_created":
        return False
    created = event.message_created
    message = created.message
    return (
        created.conversation_kind == pb.CONVERSATION_KIND_AI_ASSISTANT
        and message.sender_id != BOT_USER_ID
        and message.kind in _USER_KINDS
    )


def reply_client_msg_id(message_id: str) -> str:
    # Derived from the message answered, so a redelivered event resends the
    # same id and the conversation service returns the stored reply.
    return f"bot-reply:{message_id}"


def role_of(message: pb.Message) -> Role:
    if message.kind == pb.MESSAGE_KIND_BOT or message.sender_id == BOT_USER_ID:
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
