"""What presence needs to know about memberships, asked of the conversation
service (which owns them) and remembered for seconds.

Why a short cache is safe enough, per answer:
- "a member of C" (typing): kept ``ttl`` seconds (10 by default). A user
  removed from C may still publish typing there for at most that long; typing
  carries no content, expires by itself within seconds, and only reaches
  sockets in C's room. A refusal is kept for ``denied_ttl`` (2 s) only, so a
  user just added can type almost at once, while a client hammering a
  conversation it is not in costs one lookup per 2 s, not one per call.
- "shares a conversation with X" (GET /presence): kept ``ttl`` seconds both
  ways. For that long after a membership change, a member may still read (or
  not yet read) X's status: the same staleness clients already accept from
  presence events, and far below the minutes a status stays meaningful.
Both caches are per pod, bounded, and forget on restart: losing them costs
lookups, never correctness beyond the windows above.
"""

from __future__ import annotations

from collections.abc import Sequence

from cachetools import TTLCache

from confab_core.clock import Clock
from confab_core.errors import ConfabError
from confab_core.identity import Caller
from presence.clients.conversation import MembershipClient

_ENTRIES = 100_000


class Memberships:
    def __init__(
        self,
        client: MembershipClient,
        clock: Clock,
        *,
        ttl: float = 10.0,
        denied_ttl: float = 2.0,
    ) -> None:
        self._client = client
        self._members: TTLCache[tuple[str, str, str], bool] = TTLCache(
            _ENTRIES, ttl, timer=clock.monotonic
        )
        self._denied: TTLCache[tuple[str, str, str], ConfabError] = TTLCache(
            _ENTRIES, denied_ttl, timer=clock.monotonic
        )
        self._shared: TTLCache[tuple[str, str, str], bool] = TTLCache(
            _ENTRIES, ttl, timer=clock.monotonic
        )

    async def require_member(self, caller: Caller, conversation_id: str) -> None:
        key = (caller.tenant_id, caller.user_id, conversation_id)
        if key in self._members:
            return
        denied = self._denied.get(key)
        if denied is not None:
            raise type(denied)(denied.message, denied.code)
        try:
            await self._client.check_member(caller, conversation_id)
        except ConfabError as exc:
            # Only a verdict is remembered; an outage is asked again next time.
            if exc.http_status in (403, 404):
                self._denied[key] = exc
            raise
        self._members[key] = True

    async def visible(self, caller: Caller, user_ids: Sequence[str]) -> set[str]:
        """Which of ``user_ids`` ``caller`` shares a conversation with (themselves included)."""
        out = {caller.user_id} & set(user_ids)
        unknown: list[str] = []
        for user_id in user_ids:
            if user_id == caller.user_id:
                continue
            seen = self._shared.get((caller.tenant_id, caller.user_id, user_id))
            if seen is None:
                unknown.append(user_id)
            elif seen:
                out.add(user_id)
        if unknown:
            shared = await self._client.co_members(caller, unknown)
            for user_id in unknown:
                self._shared[(caller.tenant_id, caller.user_id, user_id)] = user_id in shared
            out |= shared & set(unknown)
        return out
