"""Client connections and the events clients emit.

Every event handler returns an ack: ``{"ok": true, ...}`` or
``{"ok": false, "error": {"code", "message"}}``, the same codes as REST.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import socketio
from opentelemetry.trace import SpanKind
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confab_core import limits
from confab_core.auth import JwtVerifier
from confab_core.errors import ConfabError, Unauthenticated
from confab_core.identity import ROLE_AGENT, ROLE_SUPER_ADMIN, ROLE_TENANT_ADMIN, Caller
from confab_core.ids import new_id
from confab_core.telemetry import tracer
from gateway import schemas
from gateway.ops import ChatOps
from gateway.realtime import rooms

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("confab_gateway_connections", "Open Socket.IO connections on this pod")
# Conversations a connection joins at connect; more are joined on demand.
AUTO_JOIN_LIMIT = 100
# Resume replays at most this many messages (or events) per conversation in one ack.
SYNC_LIMIT = 1000
# Connections per presence heartbeat call (presence accepts at most 20,000).
HEARTBEAT_BATCH = 5000
_SYNC_PAGE = 100

Ack = dict[str, Any]


@dataclass(frozen=True)
class Session:
    caller: Caller
    connection_id: str


class _ConversationRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: schemas.Id


class _SendIn(schemas.SendMessageIn):
    conversation_id: schemas.Id


class _ReadIn(schemas.MarkReadIn):
    conversation_id: schemas.Id


class _MessageRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: schemas.Id
    message_id: schemas.Id


class _EditIn(_MessageRef):
    text: schemas.Text


class _ReactionIn(_MessageRef):
    emoji: schemas.Emoji


class _UpdateConversationIn(schemas.UpdateConversationIn):
    conversation_id: schemas.Id


class _SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # conversation id -> the last seq (mode "messages") or event_seq (mode
    # "events") the client has.
    conversations: dict[schemas.Id, Annotated[int, Field(le=limits.MAX_INT64)]] = Field(
        max_length=AUTO_JOIN_LIMIT
    )
    mode: Literal["messages", "events"] = "messages"


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


class SocketGateway:
    def __init__(
        self, sio: socketio.AsyncServer, ops: ChatOps, verifier: JwtVerifier, gateway_id: str
    ) -> None:
        self.sio = sio
        self._ops = ops
        self._verifier = verifier
        self.gateway_id = gateway_id
        self.sessions: dict[str, Session] = {}
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        self._event("message:send", _SendIn, self._send)
        self._event("conversation:join", _ConversationRef, self._join)
        self._event("conversation:leave", _ConversationRef, self._leave)
        self._event("conversation:read", _ReadIn, self._read)
        self._event("message:edit", _EditIn, self._edit)
        self._event("message:delete", _MessageRef, self._delete)
        self._event("reaction:toggle", _ReactionIn, self._react)
        self._event("conversation:update", _UpdateConversationIn, self._update_conversation)
        self._event("sync", _SyncIn, self._sync)
        self._event("typing:start", _ConversationRef, self._typing_start)
        self._event("typing:stop", _ConversationRef, self._typing_stop)
        self._event("presence:set", schemas.SetPresenceIn, self._set_presence)

    def _event(
        self,
        name: str,
        model: type[BaseModel],
        fn: Callable[[Session, str, Any], Awaitable[Ack]],
    ) -> None:
        async def handler(sid: str, data: Any = None) -> Ack:
            session = self.sessions.get(sid)
            if session is None:
                return _error("unauthenticated", "not connected")
            try:
                parsed = model.model_validate(data if data is not None else {})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                return _error("invalid_request", f"{where}: {first['msg']}")
            try:
                with tracer().start_as_current_span(
                    f"socket {name}",
                    kind=SpanKind.SERVER,
                    attributes={
                        "confab.tenant_id": session.caller.tenant_id,
                        "confab.user_id": session.caller.user_id,
                        "confab.socket.event": name,
                    },
                ):
                    return await fn(session, sid, parsed)
            except ConfabError as exc:
                if exc.http_status >= 500:
                    log.error("upstream failure on %s: %s", name, exc.message)
                    return _error(exc.code, "upstream service error")
                return _error(exc.code, exc.message)
            except ValidationError:
                log.exception("upstream answer to %s failed validation", name)
                return _error("bad_upstream_response", "upstream service error")
            except Exception:
                # An ack must always come back, even for a bug of ours.
                log.exception("unhandled error on %s", name)
                return _error("internal", "internal error")

        self.sio.on(name, handler)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = _token(environ, auth)
        try:
            caller = await self._verifier.verify(token)
        except Unauthenticated as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": exc.code, "message": exc.message}
            ) from None
        session = Session(caller, new_id())
        self.sessions[sid] = session
        CONNECTIONS.inc()
        await self.sio.enter_room(sid, rooms.user(caller.tenant_id, caller.user_id))
        if caller.has_role(ROLE_AGENT, ROLE_TENANT_ADMIN, ROLE_SUPER_ADMIN):
            await self.sio.enter_room(sid, rooms.staff(caller.tenant_id))
        try:
            for conv_id in await self._ops.conversation_ids(caller, limit=AUTO_JOIN_LIMIT):
                await self.sio.enter_room(sid, rooms.conversation(caller.tenant_id, conv_id))
        except ConfabError as exc:
            # Without its rooms the socket would silently miss messages.
            self.sessions.pop(sid, None)
            CONNECTIONS.dec()
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "unavailable", "message": "try again shortly"}
            ) from exc
        try:
            await self._ops.connect(caller, session.connection_id, self.gateway_id)
        except ConfabError as exc:
            # Presence is best effort: chat keeps working while it is down.
            log.warning("presence connect failed: %s", exc.message)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        CONNECTIONS.dec()
        try:
            await self._ops.disconnect(session.caller, session.connection_id)
        except ConfabError as exc:
            log.warning("presence disconnect failed: %s", exc.message)

    async def _send(self, s: Session, sid: str, body: _SendIn) -> Ack:
        result = await self._ops.send_message(s.caller, body.conversation_id, body)
        return {"ok": True, **result.model_dump(mode="json")}

    async def _join(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        conv = await self._ops.get_conversation(s.caller, body.conversation_id)
        await self.sio.enter_room(sid, rooms.conversation(s.caller.tenant_id, conv.id))
        return {"ok": True, "conversation": conv.model_dump(mode="json")}

    async def _leave(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        await self.sio.leave_room(sid, rooms.conversation(s.caller.tenant_id, body.conversation_id))
        return {"ok": True}

    async def _typing(self, s: Session, sid: str, conversation_id: str, typing: bool) -> Ack:
        # A socket is in a conversation's room only after its membership (or
        # the public channel) was checked, so the room is the permission.
        if rooms.conversation(s.caller.tenant_id, conversation_id) not in self.sio.rooms(sid):
            return _error("conversation_not_found", "join the conversation first")
        await self._ops.set_typing(s.caller, conversation_id, typing)
        return {"ok": True}

    async def _typing_start(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        return await self._typing(s, sid, body.conversation_id, True)

    async def _typing_stop(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        return await self._typing(s, sid, body.conversation_id, False)

    async def _set_presence(self, s: Session, sid: str, body: schemas.SetPresenceIn) -> Ack:
        presence = await self._ops.set_presence(s.caller, body)
        return {"ok": True, "presence": presence.model_dump(mode="json")}

    async def _read(self, s: Session, sid: str, body: _ReadIn) -> Ack:
        state = await self._ops.mark_read(s.caller, body.conversation_id, body.seq)
        return {"ok": True, **state.model_dump(mode="json")}

    async def _edit(self, s: Session, sid: str, body: _EditIn) -> Ack:
        msg = await self._ops.edit_message(
            s.caller, body.conversation_id, body.message_id, body.text
        )
        return {"ok": True, "message": msg.model_dump(mode="json")}

    async def _delete(self, s: Session, sid: str, body: _MessageRef) -> Ack:
        msg = await self._ops.delete_message(s.caller, body.conversation_id, body.message_id)
        return {"ok": True, "message": msg.model_dump(mode="json")}

    async def _react(self, s: Session, sid: str, body: _ReactionIn) -> Ack:
        result = await self._ops.toggle_reaction(
            s.caller, body.conversation_id, body.message_id, body.emoji
        )
        return {"ok": True, **result.model_dump(mode="json")}

    async def _update_conversation(self, s: Session, sid: str, body: _UpdateConversationIn) -> Ack:
        conv = await self._ops.update_conversation(s.caller, body.conversation_id, body)
        return {"ok": True, "conversation": conv.model_dump(mode="json")}

    async def _sync(self, s: Session, sid: str, body: _SyncIn) -> Ack:
        if body.mode == "events":
            return await self._sync_events(s, sid, body)
        return await self._sync_messages(s, sid, body)

    async def _sync_events(self, s: Session, sid: str, body: _SyncIn) -> Ack:
        """Replays every event (edits, reactions, member changes...) after the last
        event_seq the client has, as the live socket events would have carried them."""
        replay: dict[str, list[dict[str, Any]]] = {}
        resync: dict[str, bool] = {}
        more: dict[str, bool] = {}
        errors: dict[str, dict[str, str]] = {}
        for conversation_id, last_event_seq in body.conversations.items():
            # Join first: an event emitted while we page arrives live too, and
            # the client drops it by event_seq.
            room = rooms.conversation(s.caller.tenant_id, conversation_id)
            await self.sio.enter_room(sid, room)
            out: list[dict[str, Any]] = []
            after = max(0, last_event_seq)
            has_more = False
            resync_required = False
            try:
                while len(out) < SYNC_LIMIT:
                    page = await self._ops.list_events(
                        s.caller, conversation_id, after, min(_SYNC_PAGE, SYNC_LIMIT - len(out))
                    )
                    if page.resync_required:
                        resync_required, out = True, []
                        break
                    out.extend(e.model_dump(mode="json") for e in page.events)
                    has_more = page.has_more
                    if not page.has_more or not page.events:
                        break
                    after = page.events[-1].event_seq
            except ConfabError as exc:
                if exc.http_status >= 500:
                    raise
                await self.sio.leave_room(sid, room)
                errors[conversation_id] = {"code": exc.code, "message": exc.message}
                continue
            replay[conversation_id] = out
            resync[conversation_id] = resync_required
            more[conversation_id] = has_more
        return {
            "ok": True,
            "mode": "events",
            "events": replay,
            "resync_required": resync,
            "has_more": more,
            "errors": errors,
        }

    async def _sync_messages(self, s: Session, sid: str, body: _SyncIn) -> Ack:
        """Replays what the client missed since the last seq it saw per conversation."""
        missed: dict[str, list[dict[str, Any]]] = {}
        errors: dict[str, dict[str, str]] = {}
        for conversation_id, last_seq in body.conversations.items():
            # Join first: a message sent while we page arrives live and the
            # client drops it by seq if the page also holds it.
            room = rooms.conversation(s.caller.tenant_id, conversation_id)
            await self.sio.enter_room(sid, room)
            out: list[dict[str, Any]] = []
            after = max(0, last_seq)
            try:
                while len(out) < SYNC_LIMIT:
                    page = await self._ops.list_messages(s.caller, conversation_id, after, 0, 100)
                    out.extend(m.model_dump(mode="json") for m in page.messages)
                    if not page.has_more or not page.messages:
                        break
                    after = page.messages[-1].seq
            except ConfabError as exc:
                if exc.http_status >= 500:
                    raise
                await self.sio.leave_room(sid, room)
                errors[conversation_id] = {"code": exc.code, "message": exc.message}
                continue
            missed[conversation_id] = out
        return {"ok": True, "messages": missed, "errors": errors}

    async def heartbeat_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.heartbeat_once()

    async def heartbeat_once(self) -> None:
        """Extends this gateway's connections in presence, ``HEARTBEAT_BATCH`` a call:
        presence takes at most 20,000 a call, and a gateway may hold more; smaller
        calls also keep the request the gateway builds (and its memory peak) small."""
        sessions = list(self.sessions.values())
        for start in range(0, len(sessions), HEARTBEAT_BATCH):
            batch = [(s.caller, s.connection_id) for s in sessions[start : start + HEARTBEAT_BATCH]]
            try:
                await self._ops.heartbeat(self.gateway_id, batch)
            except Exception as exc:
                log.warning("presence heartbeat failed: %s", exc)
                return


def _token(environ: dict[str, Any], auth: Any) -> str:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return ""
