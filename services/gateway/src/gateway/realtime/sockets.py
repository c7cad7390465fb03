"""Client connections and the events clients emit.

Every event handler returns an ack: ``{"ok": true, ...}`` or
``{"ok": false, "error": {"code", "message"}}``, the same codes as REST.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import socketio
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confab_core import limits
from confab_core.auth import JwtVerifier
from confab_core.clock import Clock, SystemClock
from confab_core.errors import ConfabError, Unauthenticated
from confab_core.identity import ROLE_AGENT, ROLE_TENANT_ADMIN, Caller
from confab_core.ids import new_id
from confab_core.requestinfo import RequestInfo, serving
from confab_core.telemetry import tracer
from gateway import errors, schemas
from gateway.clients.ops import ChatOps
from gateway.ratelimit import RateLimited
from gateway.realtime import rooms
from gateway.realtime.streams import StreamRelay

log = logging.getLogger(__name__)

CONNECTIONS = Gauge("confab_gateway_connections", "Open Socket.IO connections on this pod")
EXPIRED = Counter("confab_gateway_sockets_expired_total", "Sockets closed at their token's exp")
# Conversations one sync call replays.
SYNC_MAX_CONVERSATIONS = 100
# Resume replays at most this many messages (or events) per conversation in one ack.
SYNC_LIMIT = 1000
# Connections per presence heartbeat call (presence accepts at most 20,000).
HEARTBEAT_BATCH = 5000
_SYNC_PAGE = 100

Ack = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Session:
    caller: Caller
    connection_id: str
    # The token's exp (seconds since the epoch): the socket is closed then, unless
    # auth:refresh brought a later one.
    expires_at: float


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
        max_length=SYNC_MAX_CONVERSATIONS
    )
    mode: Literal["messages", "events"] = "messages"


class _RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=8192)


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


class SocketGateway:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        ops: ChatOps,
        verifier: JwtVerifier,
        gateway_id: str,
        clock: Clock | None = None,
        streams: StreamRelay | None = None,
    ) -> None:
        self.sio = sio
        self._streams = streams
        self._ops = ops
        self._verifier = verifier
        self.gateway_id = gateway_id
        self._clock = clock or SystemClock()
        self.sessions: dict[str, Session] = {}
        # (exp, sid) for every session, soonest first: one task closes expired sockets
        # instead of a timer per socket (a few dozen bytes each, against a timer
        # handle and its closure). A refresh pushes the new exp and leaves the old
        # entry, which the sweep then skips because it no longer matches the session.
        self._expiries: list[tuple[float, str]] = []
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
        self._event("auth:refresh", _RefreshIn, self._refresh)
        self._event("message:stream:cancel", _MessageRef, self._cancel_stream)

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
                with (
                    serving(self._request_info(sid)),
                    tracer().start_as_current_span(
                        f"socket {name}",
                        kind=SpanKind.SERVER,
                        attributes={
                            "confab.tenant_id": session.caller.tenant_id,
                            "confab.user_id": session.caller.user_id,
                            "confab.socket.event": name,
                        },
                    ),
                ):
                    return await fn(session, sid, parsed)
            except ConfabError as exc:
                if exc.http_status >= 500:
                    log.error("upstream failure on %s: %s", name, exc.message)
                    return _error(exc.code, "upstream service error")
                return {"ok": False, "error": errors.error_body(exc)}
            except ValidationError:
                log.exception("upstream answer to %s failed validation", name)
                return _error("bad_upstream_response", "upstream service error")
            except Exception:
                # An ack must always come back, even for a bug of ours.
                log.exception("unhandled error on %s", name)
                return _error("internal", "internal error")

        self.sio.on(name, handler)

    def _request_info(self, sid: str) -> RequestInfo:
        """Each socket event is a request of its own for the audit log: a new id,
        and the address the socket connected from."""
        environ = self.sio.get_environ(sid) or {}
        client = environ.get("asgi.scope", {}).get("client")
        return RequestInfo.of(new_id(), str(client[0]) if client else "")

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = _token(environ, auth)
        try:
            verified = await self._verifier.verify_token(token)
            await self._ops.admit(verified.caller)
        except (RateLimited, Unauthenticated) as exc:
            raise _refused(errors.error_body(exc)) from None
        caller = verified.caller
        session = Session(caller, new_id(), verified.expires_at)
        self.sessions[sid] = session
        heapq.heappush(self._expiries, (verified.expires_at, sid))
        CONNECTIONS.inc()
        await self.sio.enter_room(sid, rooms.user(caller.tenant_id, caller.user_id))
        if caller.has_role(*_STAFF_ROLES):
            await self.sio.enter_room(sid, rooms.staff(caller.tenant_id))
        if caller.has_role(ROLE_TENANT_ADMIN):
            await self.sio.enter_room(sid, rooms.admins(caller.tenant_id))
        if caller.platform_staff:
            await self.sio.enter_room(sid, rooms.platform())
        try:
            # Every conversation, however many: a room the socket is not in is a
            # conversation whose messages it silently misses. Fan-out keeps the rooms
            # current as memberships change.
            for conv_id in await self._ops.conversation_ids(caller):
                await self.sio.enter_room(sid, rooms.conversation(caller.tenant_id, conv_id))
        except ConfabError as exc:
            # Without its rooms the socket would silently miss messages.
            self.sessions.pop(sid, None)
            CONNECTIONS.dec()
            raise _refused({"code": "unavailable", "message": "try again shortly"}) from exc
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

    async def _refresh(self, s: Session, sid: str, body: _RefreshIn) -> Ack:
        """Swaps the socket's token for a newer one of the same user, without a reconnect."""
        verified = await self._verifier.verify_token(body.token)
        new = verified.caller
        if (new.tenant_id, new.user_id) != (s.caller.tenant_id, s.caller.user_id):
            return _error("token_mismatch", "the new token is for another user")
        current = self.sessions.get(sid)
        if current is None:
            # Closed (at its old exp, say) while the new token was being checked.
            return _error("unauthenticated", "not connected")
        self.sessions[sid] = replace(current, caller=new, expires_at=verified.expires_at)
        heapq.heappush(self._expiries, (verified.expires_at, sid))
        for room, belongs in (
            (rooms.staff(new.tenant_id), new.has_role(*_STAFF_ROLES)),
            (rooms.admins(new.tenant_id), new.has_role(ROLE_TENANT_ADMIN)),
        ):
            if belongs:
                await self.sio.enter_room(sid, room)
            else:
                await self.sio.leave_room(sid, room)
        return {"ok": True, "expires_at": _iso(verified.expires_at)}

    async def expire_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_due()
            except Exception:
                # The sweep must outlive one bad close, or no socket would expire again.
                log.exception("expiring sockets failed")

    async def expire_due(self) -> int:
        """Closes every socket whose token has expired, telling it why first."""
        now = self._clock.now().timestamp()
        closed = 0
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, sid = heapq.heappop(self._expiries)
            session = self.sessions.get(sid)
            if session is None or session.expires_at != expires_at:
                # Gone already, or refreshed to a later exp that has its own entry.
                continue
            try:
                await self.sio.emit(
                    "auth:expired",
                    {"code": "token_expired", "message": "token expired; reconnect with a new one"},
                    to=sid,
                )
                await self.sio.disconnect(sid)
            except Exception:
                log.exception("closing an expired socket failed")
            # Whatever the transport did, the session is over.
            if self.sessions.get(sid) is session:
                await self.on_disconnect(sid)
            EXPIRED.inc()
            closed += 1
        return closed

    async def _send(self, s: Session, sid: str, body: _SendIn) -> Ack:
        result = await self._ops.send_message(s.caller, body.conversation_id, body)
        return {"ok": True, **result.model_dump(mode="json")}

    async def _join(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        conv = await self._ops.get_conversation(s.caller, body.conversation_id)
        await self.sio.enter_room(sid, rooms.conversation(s.caller.tenant_id, conv.id))
        await self._catch_up(s, sid, [conv.id])
        return {"ok": True, "conversation": conv.model_dump(mode="json")}

    async def _catch_up(self, s: Session, sid: str, conversation_ids: list[str]) -> None:
        """The text so far of replies streaming in conversations the socket just joined
        (after joining, so the deltas that follow reach it live)."""
        if self._streams is not None:
            await self._streams.catch_up(sid, s.caller, conversation_ids)

    async def _cancel_stream(self, s: Session, sid: str, body: _MessageRef) -> Ack:
        await self._ops.cancel_stream(s.caller, body.conversation_id, body.message_id)
        return {"ok": True}

    async def _leave(self, s: Session, sid: str, body: _ConversationRef) -> Ack:
        await self.sio.leave_room(sid, rooms.conversation(s.caller.tenant_id, body.conversation_id))
        return {"ok": True}

    async def _typing(self, s: Session, sid: str, conversation_id: str, typing: bool) -> Ack:
        # Presence decides who may type where (members only); its refusal
        # comes back as the ack's error.
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
        await self._catch_up(s, sid, list(replay))
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
        await self._catch_up(s, sid, list(missed))
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


_STAFF_ROLES = (ROLE_AGENT, ROLE_TENANT_ADMIN)


def _refused(body: dict[str, object]) -> socketio.exceptions.ConnectionRefusedError:
    """The client's connect_error then carries ``{message, data: {code, message, ...}}``
    (one argument alone would reach it as a string)."""
    return socketio.exceptions.ConnectionRefusedError(body["message"], body)


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")


def _token(environ: dict[str, Any], auth: Any) -> str:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return ""
