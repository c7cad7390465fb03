"""Building notification emails and sending them over SMTP."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from typing import Protocol

import aiosmtplib

log = logging.getLogger(__name__)

PREVIEW_CHARS = 200
# The email can say more than the stored preview, but a wall of text belongs in the app.
EMAIL_TEXT_CHARS = 1000


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most ``limit`` characters: enough to recognise the message."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def subject_for(conversation_title: str) -> str:
    # The same subject for mentions: mail clients thread on it per conversation.
    return f"New message in {conversation_title.strip() or 'a conversation'}"


@dataclass(frozen=True)
class Notice:
    """What one email says, independent of how it is sent."""

    recipient_email: str
    recipient_name: str
    sender_name: str
    conversation_title: str
    text: str
    mentioned: bool


def build_email(notice: Notice, from_address: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = formataddr((notice.recipient_name, notice.recipient_email))
    msg["Subject"] = subject_for(notice.conversation_title)
    msg["Message-ID"] = make_msgid(domain=_domain(from_address))
    who = notice.sender_name.strip() or "Someone"
    where = notice.conversation_title.strip() or "a conversation"
    verb = "mentioned you" if notice.mentioned else "wrote"
    msg.set_content(
        f"{who} {verb} in {where}:\n\n"
        f"{preview(notice.text, EMAIL_TEXT_CHARS)}\n\n"
        "Open Confab to read and reply.\n"
    )
    return msg


@dataclass(frozen=True)
class HandoffNotice:
    """An agent's email about a ticket the support bot handed to humans."""

    recipient_email: str
    recipient_name: str
    # The reason, in words ("the user asked for a person").
    reason: str
    # The bot's summary of the conversation: user content, so never in the subject.
    summary: str


def handoff_subject() -> str:
    return "A support ticket needs a person"


def build_handoff_email(notice: HandoffNotice, from_address: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = formataddr((notice.recipient_name, notice.recipient_email))
    msg["Subject"] = handoff_subject()
    msg["Message-ID"] = make_msgid(domain=_domain(from_address))
    summary = preview(notice.summary, EMAIL_TEXT_CHARS) or "(no summary)"
    msg.set_content(
        f"The support bot handed a ticket to your team: {notice.reason}.\n\n"
        f"Summary:\n{summary}\n\n"
        "Open Confab's ticket queue to claim it.\n"
    )
    return msg


def _domain(from_address: str) -> str:
    # The Message-ID domain only has to be ours; a malformed From must not stop the email.
    return parseaddr(from_address)[1].rpartition("@")[2] or "confab.local"


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """One SMTP connection per email: notifications are rare per recipient and a
    pooled connection would need its own liveness handling."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool | None = None,
        timeout: float = 10.0,
        connect_attempts: int = 3,
        retry_delay: float = 0.5,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._start_tls = start_tls
        self._timeout = timeout
        self._attempts = max(1, connect_attempts)
        self._retry_delay = retry_delay

    async def send(self, message: EmailMessage) -> None:
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            start_tls=self._start_tls,
            timeout=self._timeout,
        )
        await self._connect(smtp)
        try:
            await smtp.send_message(message)
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except aiosmtplib.SMTPException:
                    smtp.close()

    async def _connect(self, smtp: aiosmtplib.SMTP) -> None:
        # Only the connection is retried: nothing has been handed to the server
        # yet, so a retry cannot deliver the email twice. A failure after DATA
        # started is final for this attempt (see the handler's retry note).
        for attempt in range(1, self._attempts + 1):
            try:
                await smtp.connect()
                return
            except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as exc:
                if attempt == self._attempts:
                    raise
                log.warning(
                    "smtp connect failed, retrying",
                    extra={"attempt": attempt, "error": str(exc)},
                )
                await asyncio.sleep(self._retry_delay * attempt)
