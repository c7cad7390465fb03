from bot.model import to_openai
from bot.prompting import (
    EMPTY_REPLY,
    MAX_REPLY_CHARS,
    MAX_TRANSCRIPT_MESSAGE_CHARS,
    SUMMARY_PROMPT,
    Turn,
    chat_turns,
    fit_reply,
    reply_client_msg_id,
    role_of,
    should_reply,
    summary_turns,
    transcript,
)
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.identity import BOT_USER_ID


def msg(sender: str, text: str, kind: int = pb.MESSAGE_KIND_TEXT, name: str = "") -> pb.Message:
    return pb.Message(id=f"id-{text}", sender_id=sender, sender_name=name, text=text, kind=kind)


def created(
    message: pb.Message, kind: int = pb.CONVERSATION_KIND_AI_ASSISTANT
) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        tenant_id="t1",
        message_created=events_pb2.MessageCreated(message=message, conversation_kind=kind),
    )


def test_replies_to_user_messages_in_assistant_and_support_conversations_only() -> None:
    assert should_reply(created(msg("alice", "hi")))
    assert should_reply(created(msg("alice", "see file", pb.MESSAGE_KIND_FILE)))
    # Whether an agent serves it (the ticket is `bot`) is the handler's call.
    assert should_reply(created(msg("alice", "hi"), pb.CONVERSATION_KIND_SUPPORT))
    assert not should_reply(created(msg("alice", "hi"), pb.CONVERSATION_KIND_GROUP))


def test_never_replies_to_itself_or_to_system_messages() -> None:
    assert not should_reply(created(msg(BOT_USER_ID, "an answer", pb.MESSAGE_KIND_BOT)))
    assert not should_reply(created(msg(BOT_USER_ID, "odd", pb.MESSAGE_KIND_TEXT)))
    assert not should_reply(created(msg("alice", "joined", pb.MESSAGE_KIND_SYSTEM)))
    assert not should_reply(created(msg("other-bot", "hello", pb.MESSAGE_KIND_BOT)))
    # Nor to an agent's bot user, nor to the system, in support either.
    support = pb.CONVERSATION_KIND_SUPPORT
    assert not should_reply(created(msg("confab-bot:desk", "hi", pb.MESSAGE_KIND_TEXT), support))
    assert not should_reply(created(msg("confab-system", "Connecting", pb.MESSAGE_KIND_TEXT)))


def test_ignores_events_that_are_not_new_messages() -> None:
    event = events_pb2.ConversationEvent(
        tenant_id="t1",
        read_marker_changed=events_pb2.ReadMarkerChanged(user_id="alice", last_read_seq=3),
    )
    assert not should_reply(event)


def test_reply_id_is_derived_from_the_message() -> None:
    assert reply_client_msg_id("m-1") == "bot-reply:m-1"
    assert reply_client_msg_id("m-1") == reply_client_msg_id("m-1")


def test_roles() -> None:
    assert role_of(msg(BOT_USER_ID, "x", pb.MESSAGE_KIND_BOT)) == "assistant"
    assert role_of(msg("alice", "x")) == "user"
    assert role_of(msg("alice", "x", pb.MESSAGE_KIND_FILE)) == "user"


def test_chat_turns_start_with_the_system_prompt_and_keep_order() -> None:
    history = [
        msg("alice", "What is 2+2?"),
        msg(BOT_USER_ID, "4", pb.MESSAGE_KIND_BOT),
        msg("alice", "   "),
        msg("alice", "And 3+3?"),
    ]
    assert chat_turns("Be brief.", history) == [
        Turn("system", "Be brief."),
        Turn("user", "What is 2+2?"),
        Turn("assistant", "4"),
        Turn("user", "And 3+3?"),
    ]
    assert chat_turns("", history[:1]) == [Turn("user", "What is 2+2?")]


def test_fit_reply() -> None:
    assert fit_reply("  hello \n") == "hello"
    assert fit_reply("   ") == EMPTY_REPLY
    long = fit_reply("y" * (MAX_REPLY_CHARS + 10))
    assert len(long) == MAX_REPLY_CHARS
    assert long.endswith("…")


def test_transcript_names_people_and_caps_long_messages() -> None:
    text = transcript(
        [msg("alice", "hi", name="Alice"), msg("bob", "z" * 5000), msg("carol", " yo ")]
    )
    lines = text.split("\n")
    assert lines[0] == "Alice: hi"
    assert lines[1].startswith("bob: zzz")
    assert len(lines[1]) == len("bob: ") + MAX_TRANSCRIPT_MESSAGE_CHARS
    assert lines[2] == "carol: yo"


def test_summary_turns() -> None:
    turns = summary_turns("Launch", [msg("alice", "ship friday", name="Alice")])
    assert turns[0] == Turn("system", SUMMARY_PROMPT)
    assert turns[1].role == "user"
    assert turns[1].content == "Conversation: Launch\n\nAlice: ship friday"
    assert summary_turns("", [msg("a", "b")])[1].content == "a: b"


def test_openai_message_params() -> None:
    assert to_openai(Turn("system", "s")) == {"role": "system", "content": "s"}
    assert to_openai(Turn("user", "u")) == {"role": "user", "content": "u"}
    assert to_openai(Turn("assistant", "a")) == {"role": "assistant", "content": "a"}
