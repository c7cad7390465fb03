"""User erasure (GDPR) and tenant erasure.

A user erasure first deletes the files the user uploaded (bytes, records, the
quota they held), whatever the tenant's policy: a file is personal content; in
anonymise mode a message that carried one keeps a tombstone attachment without
its name. It then walks the user's messages (tombstoned or put under a pseudonym,
as the tenant's policy says), then their memberships, then the tenant's
retained event log (the pseudonym replaces the user wherever an event names
them: actor, member, reader), then their profile, and asks the notification and
presence services to forget them. Every step is
idempotent: a message already tombstoned or anonymised is no longer the
user's live content, a membership already removed is not found again.

A tenant erasure destroys the tenant's keys first (crypto-shredding), so every
sealed field and file frame is unreadable at once, then deletes every object of
the tenant from the blob store and every document of the tenant, a batch at a
time, and asks the other services to do the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as Message_

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import NotFound
from confab_core.identity import ROLE_TENANT_ADMIN, Caller
from conversation import convert
from conversation.handlers import text as textutil
from conversation.handlers.editing import rewriter
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.jobs.files import FileReaper
from conversation.jobs.policy import ERASE_ANONYMISE, CompliancePolicies
from conversation.jobs.runner import Step
from conversation.storage.conversations import Claim
from conversation.storage.db import TENANT_COLLECTIONS, TenantStore
from conversation.storage.files import FileRecord
from conversation.storage.jobs import Checkpoint, Job
from conversation.storage.messages import Message

USER_KIND = "user_erasure"
TENANT_KIND = "tenant_erasure"


class PeerEraser(Protocol):
    """Another service's part of an erasure (notifications, presence)."""

    name: str

    async def erase_user(self, tenant_id: str, user_id: str) -> int: ...

    async def erase_tenant(self, tenant_id: str) -> int: ...


class KeyShredder(Protocol):
    async def shred(self, tenant_id: str) -> None: ...


def _replace_in(message: Message_, old: str, new: str) -> bool:
    changed = False
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                values = list(value)
                if old in values:
                    getattr(message, field.name)[:] = [new if v == old else v for v in values]
                    changed = True
            elif value == old:
                setattr(message, field.name, new)
                changed = True
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for item in items:
                changed = _replace_in(item, old, new) or changed
    return changed


def _forget_in_ticket(event: events_pb2.ConversationEvent, pseudonym_id: str) -> bool:
    """A ticket event of the erased user's ticket (their id already replaced by the
    pseudonym): its subject, its handoff summary and their name go, like the
    ticket's own; so does the title of their support conversation (the subject
    it was opened with)."""
    kind = event.WhichOneof("payload")
    if kind == "conversation_created":
        conv = event.conversation_created.conversation
        if conv.kind == pb.CONVERSATION_KIND_SUPPORT and conv.created_by == pseudonym_id:
            changed = bool(conv.title)
            conv.title = ""
            return changed
        return False
    payload = getattr(event, kind) if kind else None
    if payload is None or "ticket" not in payload.DESCRIPTOR.fields_by_name:
        return False
    ticket = payload.ticket
    changed = False
    if ticket.requester_id == pseudonym_id and (
        ticket.subject or ticket.requester_name or ticket.handoff_summary
    ):
        ticket.subject = ""
        ticket.requester_name = ""
        ticket.handoff_summary = ""
        changed = True
    if ticket.assignee_id == pseudonym_id and ticket.assignee_name:
        ticket.assignee_name = ""
        changed = True
    return changed


def _forget_in_file(event: events_pb2.ConversationEvent, pseudonym_id: str) -> bool:
    """A file event of a file the erased user uploaded (their id already replaced
    by the pseudonym): its name goes, as the file itself does."""
    if event.WhichOneof("payload") != "file_updated":
        return False
    file = event.file_updated.file
    if file.uploader_id != pseudonym_id or not file.name:
        return False
    file.name = ""
    return True


def replacing(user_id: str, pseudonym_id: str) -> Callable[[bytes], bytes | None]:
    """A payload rewriter putting the pseudonym wherever an event names the user
    (its actor, a member added or removed, a read marker, a mention...)."""

    def rewrite(payload: bytes) -> bytes | None:
        event = events_pb2.ConversationEvent()
        event.ParseFromString(payload)
        changed = _replace_in(event, user_id, pseudonym_id)
        changed = _forget_in_ticket(event, pseudonym_id) or changed
        changed = _forget_in_file(event, pseudonym_id) or changed
        return event.SerializeToString() if changed else None

    return rewrite


def pseudonym(job_id: str) -> tuple[str, str]:
    """A stable stand-in for the erased author: the same for all their messages,
    derived from the (random) job id, not from who they were."""
    digest = hashlib.sha256(job_id.encode()).hexdigest()
    return f"deleted-{digest[:12]}", f"Deleted user {digest[:4]}"


class _Unchanged(Exception):
    """Nothing to write in this unit: it ends without an event."""


class UserErasureJob:
    STAGES = ("files", "messages", "memberships", "events", "profile", "peers")

    def __init__(
        self,
        unit: UnitOfWork,
        policies: CompliancePolicies,
        peers: Sequence[PeerEraser],
        batch_size: int,
        *,
        files: FileReaper,
    ) -> None:
        self._unit = unit
        self._db = unit.database
        self._policies = policies
        self._files = files
        self._peers = peers
        self._batch = batch_size

    async def step(self, job: Job, at: Checkpoint) -> Step:
        user_id = job.params["user_id"]
        store = self._db.for_tenant(job.tenant_id)
        actor = Caller(job.tenant_id, job.requester_id, frozenset({ROLE_TENANT_ADMIN}))
        total = job.total
        if at == Checkpoint():
            total = await store.messages.count_where(sender_id=user_id)
            total += await store.files.count(uploader_id=user_id)
            total += await store.members.count_where(user_id=user_id) + 2
        stage = self.STAGES[at.stage] if at.stage < len(self.STAGES) else ""
        done = at.records
        if stage == "files":
            files = await store.files.of_user(user_id, at.after, self._batch)
            if await self._policies.erasure_mode(job.tenant_id) == ERASE_ANONYMISE:
                # Delete mode tombstones the messages in the next stage.
                await self._forget_file_names(actor, [f for f in files if f.message_id])
            await self._files.remove(job.tenant_id, files)
            return self._next(at, [f.id for f in files], total)
        if stage == "messages":
            page = await store.messages.page_by_id(at.after, self._batch, sender_id=user_id)
            mode = await self._policies.erasure_mode(job.tenant_id)
            await self._erase_messages(actor, job, page, anonymise=mode == ERASE_ANONYMISE)
            # The bot's memory and summaries of these conversations may retell them.
            await store.bot_memory.forget_conversations(sorted({m.conversation_id for m in page}))
            return self._next(at, [m.id for m in page], total)
        if stage == "events":
            scrub = replacing(user_id, pseudonym(job.id)[0])
            scrubbed = await store.outbox.scrub_page(at.after, self._batch, scrub)
            if scrubbed.read == self._batch:
                return Step(Checkpoint(at.stage, scrubbed.last_id, 0, done), done, total)
            return Step(Checkpoint(at.stage + 1, "", 0, done), done, total)
        if stage == "memberships":
            members = await store.members.page_by_id(at.after, self._batch, user_id=user_id)
            for m in members:
                await self._remove_member(actor, m.conversation_id, user_id)
            await store.bot_memory.forget_conversations(
                sorted({m.conversation_id for m in members})
            )
            return self._next(at, [f"{m.conversation_id}:{m.user_id}" for m in members], total)
        if stage == "profile":
            await store.users.delete(user_id)
            await store.assignment.forget_agent(user_id)
            # Personal canned replies are the user's own; shared ones stay the tenant's.
            await store.canned.delete_owned(user_id)
            await store.file_usage.forget_user(user_id)
            await store.conversations.forget_user(user_id, pseudonym(job.id)[0])
            await store.conversations.blank_titles(
                await store.tickets.conversations_of_requester(user_id)
            )
            await store.tickets.forget_requester(user_id, pseudonym(job.id)[0])
            await store.analytics.forget_user(user_id, pseudonym(job.id)[0])
            return Step(Checkpoint(at.stage + 1, "", 0, done + 1), done + 1, total)
        if stage == "peers":
            for peer in self._peers:
                await peer.erase_user(job.tenant_id, user_id)
            return Step(Checkpoint(at.stage + 1, "", 0, done + 1), done + 1, total)
        return Step(at, done, total, finished=True, result={"records": done})

    def _next(self, at: Checkpoint, keys: list[str], total: int) -> Step:
        done = at.records + len(keys)
        if len(keys) == self._batch:
            return Step(Checkpoint(at.stage, keys[-1], 0, done), done, max(total, done))
        return Step(Checkpoint(at.stage + 1, "", 0, done), done, max(total, done))

    async def _erase_messages(
        self, actor: Caller, job: Job, page: list[Message], *, anonymise: bool
    ) -> None:
        by_conversation: dict[str, list[Message]] = {}
        for m in page:
            by_conversation.setdefault(m.conversation_id, []).append(m)
        pseudo_id, pseudo_name = pseudonym(job.id)
        now = self._unit.clock.now()

        async def body(t: Taken) -> None:
            conversation_id = t.change.conversation_id
            # Both modes take the author away; delete also takes the content.
            erased = await t.store.messages.erase_authors(
                conversation_id,
                [m.id for m in by_conversation[conversation_id]],
                pseudo_id,
                pseudo_name,
                tombstone_at=None if anonymise else now,
            )
            await t.store.outbox.rewrite_messages(
                conversation_id, {m.id: rewriter(m) for m in erased}
            )
            for m in erased:
                event = events_pb2.ConversationEvent()
                if anonymise:
                    event.message_updated.message.CopyFrom(convert.message(m))
                else:
                    event.message_deleted.message.CopyFrom(convert.message(m))
                t.emit(event, message_id=m.id)

        for conversation_id, messages in by_conversation.items():
            claim = Claim(events=len(messages))
            try:
                await self._unit.one(Change(actor, conversation_id, claim), body)
            except NotFound:
                # A deleted conversation takes no events: its messages go for good.
                ids = [m.id for m in messages]
                store = self._db.for_tenant(job.tenant_id)
                await store.outbox.purge_messages(conversation_id, ids)
                await store.messages.purge(ids)

    async def _forget_file_names(self, actor: Caller, files: list[FileRecord]) -> None:
        """The messages carrying these files keep a tombstone attachment; their
        retained events show them so, and clients get ``message_updated``. One
        unit per message: a message already without a name (a step redone after
        a crash) or gone claims no event."""
        store = self._db.for_tenant(actor.tenant_id)
        for f in files:

            async def body(t: Taken, f: FileRecord = f) -> None:
                m = await self._forget_file_name(t.store, f.conversation_id, f.message_id)
                if m is None:
                    raise _Unchanged(f.message_id)
                await t.store.outbox.rewrite_message(f.conversation_id, m.id, rewriter(m))
                event = events_pb2.ConversationEvent()
                event.message_updated.message.CopyFrom(convert.message(m))
                t.emit(event, message_id=m.id)

            try:
                await self._unit.one(Change(actor, f.conversation_id), body)
            except _Unchanged:
                continue
            except NotFound:
                # A deleted conversation takes no events: only the stored message changes.
                await self._forget_file_name(store, f.conversation_id, f.message_id)

    @staticmethod
    async def _forget_file_name(
        store: TenantStore, conversation_id: str, message_id: str
    ) -> Message | None:
        m = await store.messages.get(conversation_id, message_id)
        if m is None or m.file is None or not m.file.name:
            return None
        terms = textutil.message_terms(m.text, None)
        return await store.messages.forget_file_name(conversation_id, message_id, terms)

    async def _remove_member(self, actor: Caller, conversation_id: str, user_id: str) -> None:
        async def body(t: Taken) -> None:
            if await t.store.members.remove(conversation_id, user_id):
                t.emit(
                    events_pb2.ConversationEvent(
                        member_removed=events_pb2.MemberRemoved(user_id=user_id, left=False)
                    )
                )

        try:
            await self._unit.one(Change(actor, conversation_id, Claim(member_delta=-1)), body)
        except NotFound:
            await self._db.for_tenant(actor.tenant_id).members.remove(conversation_id, user_id)


class TenantErasureJob:
    """Stage 0 shreds the keys; stage 1 deletes the tenant's objects (unreadable
    since stage 0); one stage per collection follows; the peers last."""

    def __init__(
        self,
        unit: UnitOfWork,
        shredder: KeyShredder | None,
        peers: Sequence[PeerEraser],
        batch_size: int,
        *,
        files: FileReaper,
    ) -> None:
        self._db = unit.database
        self._shredder = shredder
        self._files = files
        self._peers = peers
        self._batch = batch_size

    async def step(self, job: Job, at: Checkpoint) -> Step:
        tenant = job.tenant_id
        purge = self._db.purge(tenant)
        total = job.total
        if at == Checkpoint():
            total = sum([await purge.count(c) for c in TENANT_COLLECTIONS])
        stages = len(TENANT_COLLECTIONS) + 3
        if at.stage == 0:
            if self._shredder is not None:
                await self._shredder.shred(tenant)
            return Step(Checkpoint(1, "", 0, at.records), at.records, total)
        if at.stage == 1:
            await self._files.remove_tenant(tenant)
            return Step(Checkpoint(2, "", 0, at.records), at.records, total)
        if at.stage <= len(TENANT_COLLECTIONS) + 1:
            deleted = await purge.delete_batch(TENANT_COLLECTIONS[at.stage - 2], self._batch)
            done = at.records + deleted
            stage = at.stage if deleted == self._batch else at.stage + 1
            return Step(Checkpoint(stage, "", 0, done), done, max(total, done))
        if at.stage < stages:
            for peer in self._peers:
                await peer.erase_tenant(tenant)
            return Step(Checkpoint(at.stage + 1, "", 0, at.records), at.records, total)
        return Step(at, at.records, total, finished=True, result={"records": at.records})
