"""Protobuf to JSON for the messaging domain: new fields, HTML safety, events."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from gateway import convert


class _Tags(HTMLParser):
    """Collects what a browser's parser would see: tags with their attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE = [
    "<script>alert(document.cookie)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)' x='",
    '" autofocus onfocus="alert(1)',
    "</div><iframe src=javascript:alert(1)>",
    "<a href=\"javascript:alert('x')\">click</a>",
    "&lt;script&gt; already escaped &amp; stays literal",
    "plain text with <b>bold</b> & ampersands",
    "<<script>script>alert(1)<</script>/script>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_html_neutralizes_tags_and_attribute_injection(text: str) -> None:
    safe = convert.text_html(text)
    # No character that can open a tag or close an attribute value survives.
    assert not set(safe) & set("<>\"'")
    # Rendered as element content and as a quoted attribute (both quote styles),
    # the parser sees exactly our one element, its one attribute, and the
    # original text as plain data: nothing was injected.
    for markup in (
        f'<div title="{safe}">{safe}</div>',
        f"<div title='{safe}'>{safe}</div>",
    ):
        parser = _Tags()
        parser.feed(markup)
        parser.close()
        assert parser.tags == [("div", [("title", text)])]
        assert "".join(parser.text) == text
    # Lossless: unescaping gives back what was written.
    assert html.unescape(safe) == text


def test_message_keeps_text_as_written_and_adds_text_html() -> None:
    msg = cpb.Message(
        id="m",
        conversation_id="c",
        seq=1,
        kind=cpb.MESSAGE_KIND_TEXT,
        text="<script>x</script> & 'q'",
    )
    out = convert.message(msg)
    assert out.text == "<script>x</script> & 'q'"
    assert out.text_html == "&lt;script&gt;x&lt;/script&gt; &amp; &#x27;q&#x27;"


def test_message_new_fields(h: Any) -> None:
    msg = h.message(
        edited_at=1_700_000_500,
        last_reply_at=1_700_000_600,
        deleted=False,
        reply_count=3,
        mentions=["u2", "u3"],
        mentions_all=True,
        reactions=[cpb.Reaction(emoji="👍", count=2, user_ids=["u2", "u3"])],
        file=cpb.FileAttachment(
            url="https://files.example/a.pdf",
            name="a.pdf",
            content_type="application/pdf",
            size_bytes=1234,
        ),
        kind=cpb.MESSAGE_KIND_FILE,
    )
    out = convert.message(msg).model_dump(mode="json")
    assert out["edited_at"] == "2023-11-14T22:21:40Z"
    assert out["last_reply_at"] == "2023-11-14T22:23:20Z"
    assert out["reply_count"] == 3
    assert out["mentions"] == ["u2", "u3"]
    assert out["mentions_all"] is True
    assert out["deleted"] is False
    assert out["reactions"] == [{"emoji": "👍", "count": 2, "user_ids": ["u2", "u3"]}]
    assert out["file"] == {
        "file_id": None,
        "url": "https://files.example/a.pdf",
        "name": "a.pdf",
        "content_type": "application/pdf",
        "size_bytes": 1234,
    }
    assert out["kind"] == "file"


def test_message_defaults_are_null_or_empty(h: Any) -> None:
    out = convert.message(h.message()).model_dump(mode="json")
    assert out["edited_at"] is None
    assert out["last_reply_at"] is None
    assert out["file"] is None
    assert out["reactions"] == [] and out["mentions"] == []
    assert out["reply_count"] == 0 and out["mentions_all"] is False


def test_tombstone(h: Any) -> None:
    out = convert.message(h.message(deleted=True, text="")).model_dump(mode="json")
    assert out["deleted"] is True
    assert out["text"] == "" and out["text_html"] == ""
    assert out["seq"] == 1


def test_conversation_new_fields(h: Any) -> None:
    out = convert.conversation(h.conversation(mention_count=2, last_event_seq=41))
    assert out.mention_count == 2
    assert out.last_event_seq == 41


def _event_out(h: Any, **payload: Any) -> Any:
    out = convert.event(h.event(7, **payload))
    assert out is not None
    assert out.event_seq == 7 and out.conversation_id == "c1"
    # Every payload carries what a client needs to resume by event seq.
    assert out.data["conversation_id"] == "c1"
    assert out.data["event_seq"] == 7
    assert out.data["actor_id"] == "u1"
    return out


def test_every_payload_kind_has_an_event_name() -> None:
    kinds = {f.name for f in ev.ConversationEvent.DESCRIPTOR.oneofs_by_name["payload"].fields}
    assert kinds == set(convert.EVENT_NAMES)


def test_event_message_payloads(h: Any) -> None:
    msg = h.message(edited_at=1_700_000_500, text="<b>x</b>")
    created = _event_out(h, message_created=ev.MessageCreated(message=msg))
    assert created.event == "message:new"
    assert created.data["id"] == "m1" and created.data["seq"] == 1
    assert created.data["text_html"] == "&lt;b&gt;x&lt;/b&gt;"
    updated = _event_out(h, message_updated=ev.MessageUpdated(message=msg))
    assert updated.event == "message:updated"
    assert updated.data["edited_at"] == "2023-11-14T22:21:40Z"
    deleted = _event_out(
        h, message_deleted=ev.MessageDeleted(message=h.message(deleted=True, text=""))
    )
    assert deleted.event == "message:deleted"
    assert deleted.data["deleted"] is True


def test_event_reaction_payload(h: Any) -> None:
    out = _event_out(
        h,
        reaction_changed=ev.ReactionChanged(
            message_id="m1",
            emoji="🎉",
            user_id="u2",
            added=True,
            reactions=[cpb.Reaction(emoji="🎉", count=1, user_ids=["u2"])],
        ),
    )
    assert out.event == "reaction:updated"
    assert out.data["message_id"] == "m1"
    assert out.data["emoji"] == "🎉" and out.data["user_id"] == "u2"
    assert out.data["added"] is True
    assert out.data["reactions"] == [{"emoji": "🎉", "count": 1, "user_ids": ["u2"]}]


def test_event_conversation_and_member_payloads(h: Any) -> None:
    conv = h.conversation(title="renamed", archived=True, last_event_seq=7)
    updated = _event_out(h, conversation_updated=ev.ConversationUpdated(conversation=conv))
    assert updated.event == "conversation:updated"
    assert updated.data["id"] == "c1" and updated.data["title"] == "renamed"
    assert updated.data["archived"] is True
    created = _event_out(
        h, conversation_created=ev.ConversationCreated(conversation=conv, member_ids=["u1"])
    )
    assert created.event == "conversation:created"
    added = _event_out(
        h,
        members_added=ev.MembersAdded(
            members=[h.member("u2"), h.member("u3", cpb.MEMBER_ROLE_OBSERVER)]
        ),
    )
    assert added.event == "member:added"
    assert [(m["user_id"], m["role"]) for m in added.data["members"]] == [
        ("u2", "member"),
        ("u3", "observer"),
    ]
    role = _event_out(
        h, member_role_changed=ev.MemberRoleChanged(member=h.member("u2", cpb.MEMBER_ROLE_ADMIN))
    )
    assert role.event == "member:updated"
    assert role.data["member"]["user_id"] == "u2" and role.data["member"]["role"] == "admin"
    removed = _event_out(h, member_removed=ev.MemberRemoved(user_id="u2", left=True))
    assert removed.event == "member:removed"
    assert removed.data["user_id"] == "u2" and removed.data["left"] is True
    gone = _event_out(h, conversation_deleted=ev.ConversationDeleted())
    assert gone.event == "conversation:deleted"
    assert gone.data == {"conversation_id": "c1", "event_seq": 7, "actor_id": "u1"}
    receipt = _event_out(h, read_marker_changed=ev.ReadMarkerChanged(user_id="u2", last_read_seq=4))
    assert receipt.event == "receipt:updated"
    assert receipt.data["user_id"] == "u2" and receipt.data["last_read_seq"] == 4


def test_event_without_payload_is_skipped(h: Any) -> None:
    assert convert.event(h.event(3)) is None
