"""The conversation service's CannedReplyService and SupportProfileService, as
REST routes call them: translation only."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, cast

from confab.conversation.v1 import canned_pb2 as kpb
from confab_core.identity import Caller
from confab_core.ids import new_id
from gateway import canned_schemas as cs
from gateway import convert
from gateway.clients.peer import PeerClient
from gateway.ratelimit import Action, RateLimiter

if TYPE_CHECKING:
    from confab.conversation.v1.canned_pb2_grpc import (
        CannedReplyServiceAsyncStub,
        SupportProfileServiceAsyncStub,
    )

_SCOPES = {"shared": kpb.CANNED_SCOPE_SHARED, "personal": kpb.CANNED_SCOPE_PERSONAL}
_SCOPE_NAMES = {value: name for name, value in _SCOPES.items()}


class CannedClient(PeerClient):
    def __init__(
        self,
        replies: CannedReplyServiceAsyncStub,
        profiles: SupportProfileServiceAsyncStub,
        timeout: float,
    ) -> None:
        super().__init__(timeout)
        self._replies = replies
        self._profiles = profiles

    async def create(
        self, caller: Caller, req: kpb.CreateCannedReplyRequest
    ) -> kpb.CreateCannedReplyResponse:
        return await self._call(self._replies.CreateCannedReply, req, caller)

    async def update(
        self, caller: Caller, req: kpb.UpdateCannedReplyRequest
    ) -> kpb.UpdateCannedReplyResponse:
        return await self._call(self._replies.UpdateCannedReply, req, caller)

    async def delete(
        self, caller: Caller, req: kpb.DeleteCannedReplyRequest
    ) -> kpb.DeleteCannedReplyResponse:
        return await self._call(self._replies.DeleteCannedReply, req, caller)

    async def list(
        self, caller: Caller, req: kpb.ListCannedRepliesRequest
    ) -> kpb.ListCannedRepliesResponse:
        return await self._call(self._replies.ListCannedReplies, req, caller)

    async def render(
        self, caller: Caller, req: kpb.RenderCannedReplyRequest
    ) -> kpb.RenderCannedReplyResponse:
        return await self._call(self._replies.RenderCannedReply, req, caller)

    async def send(
        self, caller: Caller, req: kpb.SendCannedReplyRequest
    ) -> kpb.SendCannedReplyResponse:
        return await self._call(self._replies.SendCannedReply, req, caller)

    async def get_profile(
        self, caller: Caller, req: kpb.GetSupportProfileRequest
    ) -> kpb.GetSupportProfileResponse:
        return await self._call(self._profiles.GetSupportProfile, req, caller)

    async def update_profile(
        self, caller: Caller, req: kpb.UpdateSupportProfileRequest
    ) -> kpb.UpdateSupportProfileResponse:
        return await self._call(self._profiles.UpdateSupportProfile, req, caller)


def reply_out(r: kpb.CannedReply) -> cs.CannedReplyOut:
    return cs.CannedReplyOut(
        id=r.id,
        scope=cast(cs.CannedScopeName, _SCOPE_NAMES[r.scope]),
        owner_id=r.owner_id or None,
        shortcode=r.shortcode,
        body=r.body,
        created_at=r.created_at.ToDatetime(tzinfo=UTC),
        updated_at=r.updated_at.ToDatetime(tzinfo=UTC),
    )


def profile_out(p: kpb.SupportProfile) -> cs.SupportProfileOut:
    return cs.SupportProfileOut(
        name=p.name,
        updated_at=p.updated_at.ToDatetime(tzinfo=UTC) if p.HasField("updated_at") else None,
    )


class CannedOps:
    def __init__(self, client: CannedClient, limiter: RateLimiter) -> None:
        self._c = client
        self._limiter = limiter

    async def create(self, caller: Caller, body: cs.CannedReplyIn) -> cs.CannedReplyOut:
        await self._limiter.check(caller, Action.CANNED)
        req = kpb.CreateCannedReplyRequest(
            scope=_SCOPES[body.scope], shortcode=body.shortcode, body=body.body
        )
        resp = await self._c.create(caller, req)
        return reply_out(resp.reply)

    async def update(
        self, caller: Caller, canned_id: str, body: cs.CannedReplyPatchIn
    ) -> cs.CannedReplyOut:
        await self._limiter.check(caller, Action.CANNED)
        req = kpb.UpdateCannedReplyRequest(
            canned_id=canned_id, shortcode=body.shortcode, body=body.body
        )
        resp = await self._c.update(caller, req)
        return reply_out(resp.reply)

    async def delete(self, caller: Caller, canned_id: str) -> None:
        await self._limiter.check(caller, Action.CANNED)
        req = kpb.DeleteCannedReplyRequest(canned_id=canned_id)
        await self._c.delete(caller, req)

    async def search(
        self, caller: Caller, query: str, limit: int, cursor: str
    ) -> cs.CannedReplyPageOut:
        await self._limiter.check(caller, Action.CANNED)
        req = kpb.ListCannedRepliesRequest(query=query, limit=limit, page_token=cursor)
        resp = await self._c.list(caller, req)
        return cs.CannedReplyPageOut(
            replies=[reply_out(r) for r in resp.replies],
            next_cursor=resp.next_page_token or None,
        )

    async def render(self, caller: Caller, conversation_id: str, canned_id: str) -> cs.RenderedOut:
        await self._limiter.check(caller, Action.CANNED)
        req = kpb.RenderCannedReplyRequest(conversation_id=conversation_id, canned_id=canned_id)
        resp = await self._c.render(caller, req)
        return cs.RenderedOut(text=resp.text)

    async def send(
        self, caller: Caller, conversation_id: str, canned_id: str, body: cs.SendCannedReplyIn
    ) -> cs.SendCannedReplyOut:
        # A canned reply is a message: it spends the send budget like any other.
        await self._limiter.check(caller, Action.SEND)
        req = kpb.SendCannedReplyRequest(
            conversation_id=conversation_id,
            canned_id=canned_id,
            client_msg_id=body.client_msg_id or new_id(),
        )
        resp = await self._c.send(caller, req)
        return cs.SendCannedReplyOut(message=convert.message(resp.message), created=resp.created)

    async def get_profile(self, caller: Caller) -> cs.SupportProfileOut:
        await self._limiter.check(caller, Action.SUPPORT_PROFILE)
        req = kpb.GetSupportProfileRequest()
        resp = await self._c.get_profile(caller, req)
        return profile_out(resp.profile)

    async def set_profile(self, caller: Caller, body: cs.SupportProfileIn) -> cs.SupportProfileOut:
        await self._limiter.check(caller, Action.SUPPORT_PROFILE)
        req = kpb.UpdateSupportProfileRequest(name=body.name)
        resp = await self._c.update_profile(caller, req)
        return profile_out(resp.profile)
