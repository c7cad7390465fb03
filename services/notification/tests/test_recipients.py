from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.presence.v1 import presence_pb2 as presence_pb
from confab_core.identity import BOT_USER_ID, NOTIFIER_USER_ID
from notification.handlers.events import candidates, recipients


def member(user_id: str, email: str = "") -> conv_pb.Member:
    return conv_pb.Member(user_id=user_id, display_name=user_id.title(), email=email)


def test_candidates_exclude_sender_and_service_accounts() -> None:
    members = [member("alice"), member("bob"), member(BOT_USER_ID), member(NOTIFIER_USER_ID)]
    assert [m.user_id for m in candidates(members, "alice")] == ["bob"]


def test_only_offline_or_unknown_members_are_recipients() -> None:
    members = [member("bob"), member("carol"), member("dave"), member("erin")]
    statuses = {
        "bob": presence_pb.PRESENCE_STATUS_OFFLINE,
        "carol": presence_pb.PRESENCE_STATUS_ONLINE,
        "dave": presence_pb.PRESENCE_STATUS_AWAY,
    }
    found = recipients(members, statuses, conv_pb.Message(text="hello"))
    # erin is missing from the answer: nobody is connected, so she is away.
    assert [r.user_id for r in found] == ["bob", "erin"]
    assert not any(r.mentioned for r in found)


def test_stored_mentions_mark_recipients_not_the_text() -> None:
    members = [member("bob", "bob@example.com"), member("carol")]
    # The text names carol, but the service stored only bob: the stored list decides.
    message = conv_pb.Message(text="@carol please check", mentions=["bob"])
    found = recipients(members, {}, message)
    assert [(r.user_id, r.mentioned, r.email) for r in found] == [
        ("bob", True, "bob@example.com"),
        ("carol", False, ""),
    ]


def test_mentions_all_marks_everyone() -> None:
    members = [member("bob"), member("carol")]
    found = recipients(members, {}, conv_pb.Message(text="@channel", mentions_all=True))
    assert [(r.user_id, r.mentioned) for r in found] == [("bob", True), ("carol", True)]
