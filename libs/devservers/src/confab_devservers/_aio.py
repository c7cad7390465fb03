"""Run a coroutine to completion from sync code, even inside a running event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_coro(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``factory()`` on a private event loop in a helper thread.

    The servers' sync API is called from pytest fixtures, some of which run
    inside an async test's loop, where ``asyncio.run`` is forbidden. A private
    thread+loop works in every context and never touches the caller's loop.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:  # re-raised in the caller
            error.append(exc)

    thread = threading.Thread(target=target, name="confab-devservers-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
