"""A publish throttle for typing: remembers, per pod and only for seconds, what
was last published for each (tenant, user, conversation).

This is not typing state: nothing here is read to answer who is typing, it is
never persisted, and losing it (a restart, another pod) costs at most one
extra event. It only keeps a client that calls SetTyping on every keystroke
from publishing more than once per window.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

TypingKey = tuple[str, str, str]


@dataclass(frozen=True)
class _Published:
    at: float  # the clock's monotonic seconds
    typing: bool
    expires_ms: int


class TypingThrottle:
    """Bounded: entries older than the window are forgotten as new ones arrive,
    and beyond ``capacity`` the oldest go first."""

    def __init__(self, window_seconds: float, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.window = window_seconds
        self.capacity = capacity
        self._last: OrderedDict[TypingKey, _Published] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def repeat_of(self, key: TypingKey, typing: bool, now: float) -> int | None:
        """The expiry already published for this same state within the window,
        or None when this call must publish."""
        last = self._last.get(key)
        if last is None or last.typing != typing or now - last.at >= self.window:
            return None
        return last.expires_ms

    def published(self, key: TypingKey, typing: bool, now: float, expires_ms: int) -> None:
        self._last.pop(key, None)
        self._last[key] = _Published(now, typing, expires_ms)
        # Oldest first: stop at the first entry still inside the window.
        while self._last:
            oldest = next(iter(self._last.values()))
            if len(self._last) <= self.capacity and now - oldest.at < self.window:
                break
            self._last.popitem(last=False)
