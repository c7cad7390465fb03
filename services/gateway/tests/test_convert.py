import pytest
from pydantic import ValidationError

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.presence.v1 import presence_pb2 as ppb
from confab_core import limits
from gateway import convert, schemas
from gateway.realtime.sockets import _token


def test_conversation_kinds_round_trip_by_name() -> None:
    names = set(convert.KIND_BY_NAME)
    assert names == {
        "direct",
        "group",
        "public_channel",
        "private_channel",
        "support",
        "ai_assistant",
    }
    for name, value in convert.KIND_BY_NAME.items():
        conv = cpb.Conversation(id="c", kind=value, created_by="u", my_role=cpb.MEMBER_ROLE_OWNER)
        out = convert.conversation(conv)
        assert out.kind == name
        assert out.my_role == "owner"


def test_message_without_thread_has_null_root() -> None:
    msg = cpb.Message(id="m", conversation_id="c", seq=3, kind=cpb.MESSAGE_KIND_BOT, text="t")
    out = convert.message(msg)
    assert out.thread_root_id is None
    assert out.kind == "bot"


def test_unknown_presence_reads_as_offline() -> None:
    out = convert.presence(ppb.UserPresence(user_id="u"))
    assert out.status == "offline"
    assert out.last_active_at is None


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "x" * (limits.MAX_TEXT_CHARS + 1)},
        {"text": "ok", "client_msg_id": "x" * 129},
        {"text": "ok", "kind": "system"},
        {"text": "ok", "unexpected": 1},
    ],
)
def test_send_body_rejects(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        schemas.SendMessageIn.model_validate(body)


def test_socket_token_sources() -> None:
    assert _token({}, {"token": "a"}) == "a"
    assert _token({"HTTP_AUTHORIZATION": "Bearer b"}, None) == "b"
    assert _token({}, None) == ""
    assert _token({}, {"token": 5}) == ""
