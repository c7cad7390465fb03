from notification.mail import Notice, build_email, preview, subject_for


def notice(**overrides: object) -> Notice:
    values: dict[str, object] = {
        "recipient_email": "bob@example.com",
        "recipient_name": "Bob",
        "sender_name": "Alice",
        "conversation_title": "Launch",
        "text": "Ship it on Friday?",
        "mentioned": False,
    }
    values.update(overrides)
    return Notice(**values)  # type: ignore[arg-type]


def test_preview_flattens_and_truncates() -> None:
    assert preview("a\n\n b   c") == "a b c"
    long = "x" * 500
    cut = preview(long, 10)
    assert len(cut) == 10
    assert cut.endswith("…")


def test_subject_names_the_conversation_or_says_a_conversation() -> None:
    assert subject_for("Launch") == "New message in Launch"
    assert subject_for("  ") == "New message in a conversation"


def test_email_headers_and_body() -> None:
    msg = build_email(notice(), "Confab <no-reply@confab.test>")
    assert msg["To"] == "Bob <bob@example.com>"
    assert msg["From"] == "Confab <no-reply@confab.test>"
    assert msg["Subject"] == "New message in Launch"
    assert msg["Message-ID"].endswith("@confab.test>")
    body = msg.get_content()
    assert "Alice wrote in Launch" in body
    assert "Ship it on Friday?" in body


def test_mention_says_so_in_the_body() -> None:
    body = build_email(notice(mentioned=True, text="@bob look"), "x@y.z").get_content()
    assert "Alice mentioned you in Launch" in body


def test_non_ascii_names_and_titles_survive() -> None:
    msg = build_email(
        notice(recipient_name="Zoë Ångström", conversation_title="Équipe"), "no-reply@c.test"
    )
    assert msg["Subject"] == "New message in Équipe"
    assert "Zoë" in str(msg["To"])
    assert msg.as_bytes()
