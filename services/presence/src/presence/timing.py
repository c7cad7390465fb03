from __future__ import annotations

from confab_core.clock import Clock


def epoch_ms(clock: Clock) -> int:
    """Redis holds times as epoch milliseconds: sortable scores, exact in Lua."""
    return int(clock.now().timestamp() * 1000)
