"""gRPC servicers of CannedReplyService and SupportProfileService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import canned_pb2 as pb
from confab.conversation.v1 import canned_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation import convert
from conversation.convert import ts
from conversation.handlers import cannedtext
from conversation.handlers.canned import CannedHandler
from conversation.storage.canned import CannedReply

_SCOPES = {pb.CANNED_SCOPE_SHARED: cannedtext.SHARED, pb.CANNED_SCOPE_PERSONAL: cannedtext.PERSONAL}
_SCOPE_VALUES = {name: value for value, name in _SCOPES.items()}


def reply_message(r: CannedReply) -> pb.CannedReply:
    return pb.CannedReply(
        id=r.id,
        scope=_SCOPE_VALUES[r.scope],
        owner_id=r.owner_id,
        shortcode=r.shortcode,
        body=r.body,
        created_at=ts(r.created_at),
        updated_at=ts(r.updated_at),
    )


class CannedReplyServicer(pb_grpc.CannedReplyServiceServicer):
    def __init__(self, canned: CannedHandler) -> None:
        self._c = canned

    async def CreateCannedReply(
        self, request: pb.CreateCannedReplyRequest, context: Ctx
    ) -> pb.CreateCannedReplyResponse:
        reply = await self._c.create(
            current_caller(),
            # An unknown or unspecified scope becomes "", which validation names.
            scope=_SCOPES.get(request.scope, ""),
            shortcode=request.shortcode,
            body=request.body,
        )
        return pb.CreateCannedReplyResponse(reply=reply_message(reply))

    async def UpdateCannedReply(
        self, request: pb.UpdateCannedReplyRequest, context: Ctx
    ) -> pb.UpdateCannedReplyResponse:
        reply = await self._c.update(
            current_caller(),
            request.canned_id,
            shortcode=request.shortcode if request.HasField("shortcode") else None,
            body=request.body if request.HasField("body") else None,
        )
        return pb.UpdateCannedReplyResponse(reply=reply_message(reply))

    async def DeleteCannedReply(
        self, request: pb.DeleteCannedReplyRequest, context: Ctx
    ) -> pb.DeleteCannedReplyResponse:
        await self._c.delete(current_caller(), request.canned_id)
        return pb.DeleteCannedReplyResponse()

    async def ListCannedReplies(
        self, request: pb.ListCannedRepliesRequest, context: Ctx
    ) -> pb.ListCannedRepliesResponse:
        page = await self._c.search(
            current_caller(),
            query=request.query,
            limit=request.limit,
            page_token=request.page_token,
        )
        return pb.ListCannedRepliesResponse(
            replies=[reply_message(r) for r in page.replies],
            next_page_token=page.next_page_token,
        )

    async def RenderCannedReply(
        self, request: pb.RenderCannedReplyRequest, context: Ctx
    ) -> pb.RenderCannedReplyResponse:
        text = await self._c.render(current_caller(), request.conversation_id, request.canned_id)
        return pb.RenderCannedReplyResponse(text=text)

    async def SendCannedReply(
        self, request: pb.SendCannedReplyRequest, context: Ctx
    ) -> pb.SendCannedReplyResponse:
        sent = await self._c.send(
            current_caller(), request.conversation_id, request.canned_id, request.client_msg_id
        )
        return pb.SendCannedReplyResponse(
            message=convert.message(sent.message), created=sent.created
        )


class SupportProfileServicer(pb_grpc.SupportProfileServiceServicer):
    def __init__(self, canned: CannedHandler) -> None:
        self._c = canned

    async def GetSupportProfile(
        self, request: pb.GetSupportProfileRequest, context: Ctx
    ) -> pb.GetSupportProfileResponse:
        name, stored = await self._c.profile(current_caller())
        return pb.GetSupportProfileResponse(
            profile=pb.SupportProfile(
                name=name, updated_at=ts(stored.updated_at) if stored else None
            )
        )

    async def UpdateSupportProfile(
        self, request: pb.UpdateSupportProfileRequest, context: Ctx
    ) -> pb.UpdateSupportProfileResponse:
        stored = await self._c.set_profile(current_caller(), request.name)
        return pb.UpdateSupportProfileResponse(
            profile=pb.SupportProfile(name=stored.name, updated_at=ts(stored.updated_at))
        )
