from __future__ import annotations

import asyncio
import smtplib
import threading
from email.message import EmailMessage

import pytest

from confab_devservers import SmtpMessage, SmtpSink


def _send(sink: SmtpSink, to: str, subject: str, body: str, html: str | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = "Confab <noreply@confab.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_collects_parsed_messages(smtp_sink: SmtpSink) -> None:
    _send(
        smtp_sink, "alice@tenant-a.test", "Welcome", "Hello Alice", html="<p>Hello <b>Alice</b></p>"
    )
    got = smtp_sink.wait_for(lambda m: "alice@tenant-a.test" in m.rcpt_tos, timeout=5)
    assert got.mail_from == "noreply@confab.test"
    assert got.subject == "Welcome"
    assert got.from_header == "Confab <noreply@confab.test>"
    assert got.to_header == "alice@tenant-a.test"
    assert got.body.strip() == "Hello Alice"
    assert got.html is not None and "<b>Alice</b>" in got.html
    assert [m.subject for m in smtp_sink.messages] == ["Welcome"]


def test_wait_for_blocks_until_delivery(smtp_sink: SmtpSink) -> None:
    timer = threading.Timer(0.3, _send, args=(smtp_sink, "bob@x.test", "Later", "ping"))
    timer.start()
    try:
        got = smtp_sink.wait_for(lambda m: m.subject == "Later", timeout=10)
    finally:
        timer.join()
    assert got.rcpt_tos == ("bob@x.test",)


def test_wait_for_timeout_lists_what_arrived(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, "carol@x.test", "Something else", "body")
    smtp_sink.wait_for(timeout=5)
    with pytest.raises(TimeoutError, match="Something else"):
        smtp_sink.wait_for(lambda m: m.subject == "Never", timeout=0.2)


def test_unicode_subject_and_body(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, "dan@x.test", "Привет ✓", "Grüße — 你好")
    got = smtp_sink.wait_for(timeout=5)
    assert got.subject == "Привет ✓"
    assert got.body.strip() == "Grüße — 你好"


@pytest.mark.asyncio
async def test_usable_from_async_code(smtp_sink: SmtpSink) -> None:
    await asyncio.to_thread(_send, smtp_sink, "erin@x.test", "Async", "from a coroutine")
    got: SmtpMessage = await asyncio.to_thread(
        smtp_sink.wait_for, lambda m: m.subject == "Async", 5
    )
    assert got.body.strip() == "from a coroutine"


def test_restart_on_same_port() -> None:
    sink = SmtpSink()
    with sink:
        port = sink.port
        _send(sink, "f@x.test", "one", "1")
    assert not sink.running
    with sink:
        assert sink.port == port
        _send(sink, "f@x.test", "two", "2")
        sink.wait_for(lambda m: m.subject == "two", timeout=5)
    assert [m.subject for m in sink.messages] == ["one", "two"]
