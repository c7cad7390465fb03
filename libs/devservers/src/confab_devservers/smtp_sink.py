"""In-process SMTP server that keeps every message it receives, for assertions."""

from __future__ import annotations

import email.policy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ._ports import HOST, free_port

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpMessage:
    """One received message: the SMTP envelope plus the parsed RFC 5322 message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def from_header(self) -> str:
        return str(self.message.get("From", ""))

    @property
    def to_header(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def body(self) -> str:
        """The text/plain body (falling back to text/html), decoded."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        content = part.get_content()
        return content if isinstance(content, str) else content.decode("utf-8", errors="replace")

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        if part is None:
            return None
        content = part.get_content()
        return content if isinstance(content, str) else None


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        self._sink._add(
            SmtpMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd server on 127.0.0.1 (its own thread) that records messages.

    ``wait_for`` blocks on a condition variable that is notified for every
    delivered message, so tests wait exactly as long as delivery takes.
    """

    def __init__(self, port: int | None = None) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self._messages: list[SmtpMessage] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ready_timeout=10.0,
            # Multi-tenant chat: addresses and subjects may be non-ASCII.
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        log.info("SMTP sink listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _add(self, msg: SmtpMessage) -> None:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()

    @property
    def messages(self) -> list[SmtpMessage]:
        """Snapshot of all messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(
        self,
        predicate: Callable[[SmtpMessage], bool] | None = None,
        timeout: float = 10.0,
    ) -> SmtpMessage:
        """Block until a message matching ``predicate`` (any, if None) has arrived; return it.

        Messages received before the call count too. Raises TimeoutError
        listing what did arrive, to make a failing assertion self-explanatory.
        """
        match: Callable[[SmtpMessage], bool] = predicate or (lambda _m: True)
        found: list[SmtpMessage] = []

        def ready() -> bool:
            for msg in self._messages:
                if match(msg):
                    found.append(msg)
                    return True
            return False

        with self._cond:
            if self._cond.wait_for(ready, timeout=timeout):
                return found[0]
            seen = [(m.mail_from, m.rcpt_tos, m.subject) for m in self._messages]
        raise TimeoutError(f"no matching SMTP message within {timeout}s; received: {seen!r}")
