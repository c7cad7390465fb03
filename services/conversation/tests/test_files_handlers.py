"""Files' rules on the real database and GridFS (docs/files.md): uploads and every
refusal (nothing left stored), retry safety, quotas racing, tenant and
conversation isolation, downloads, deletes, and files attached to messages."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import files_pb2 as fpb
from confab_core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_MEMBER,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from conversation.handlers import filepolicy
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.files import FileHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.moderation import ModerationHandler
from conversation.handlers.platform import PlatformHandler
from conversation.handlers.policy import PolicyHandler, PolicyPatch
from conversation.handlers.support import SupportHandler
from conversation.handlers.tenant_settings import FILES, SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.blobs import GridFsBlobStore
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import FileRecord, FileStatus
from conversation.storage.settings import FilesRecord, SettingsRecord

from .conftest import ALICE, BOB, CAROL, MALLORY, TENANT_A, create, decode, outbox, send, user

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
STAFF = user("pf", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
TEXT = b"meeting notes\n" * 100


class Work:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def blobs(db: Database) -> FileBytes:
    return FileBytes(GridFsBlobStore(db.db), db.keys)


@pytest.fixture
def settings(unit: UnitOfWork) -> SettingsHandler:
    trail = AuditTrail(unit.database, unit.clock, unit.locks)
    return SettingsHandler(unit.database, unit.clock, trail, asyncio.Event())


@pytest.fixture
def work() -> Work:
    return Work()


@pytest.fixture
def files(unit: UnitOfWork, blobs: FileBytes, settings: SettingsHandler, work: Work) -> FileHandler:
    return FileHandler(unit, blobs, settings, work)


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _start(
    conversation_id: str, client_id: str = "c1", name: str = "notes.txt", **kw: Any
) -> fpb.UploadStart:
    return fpb.UploadStart(conversation_id=conversation_id, client_id=client_id, name=name, **kw)


def _png(size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG")
    return out.getvalue()


async def _group(conversations: ConversationHandler, *members: str) -> str:
    return (await create(conversations, ALICE, members=list(members or ["bob"]))).conversation.id


async def _stored(db: Database) -> tuple[int, int, int]:
    """File records, GridFS objects, bytes held in quota counters."""
    usage = [d async for d in db.db["file_usage"].find({})]
    held = sum(int(v) for d in usage for k, v in d.items() if k.endswith("bytes"))
    return (
        await db.db["files"].count_documents({}),
        await db.db["blobs.files"].count_documents({}),
        held,
    )


async def _policy(settings: SettingsHandler, **kw: Any) -> None:
    version = (await settings.get(ADMIN)).settings.version
    await settings.update(ADMIN, SettingsRecord(files=FilesRecord(**kw)), [FILES], version)


async def test_an_upload_is_stored_pending_and_wakes_the_processor(
    files: FileHandler, conversations: ConversationHandler, db: Database, work: Work
) -> None:
    conv = await _group(conversations)
    done = await files.upload(ALICE, _start(conv, name="../../notes.txt"), _chunks(TEXT))
    assert done.created and work.woken == 1
    f = done.file
    assert (f.status, f.name, f.content_type, f.kind) == (
        FileStatus.PENDING,
        "notes.txt",
        "text/plain; charset=utf-8",
        "text",
    )
    assert f.size_bytes == len(TEXT) and f.uploader_id == "alice"
    assert (await files.get(ALICE, conv, f.id)).id == f.id
    records, objects, held = await _stored(db)
    assert records == 1 and objects == 1 and held == 2 * len(TEXT)


async def test_a_retry_with_the_same_client_id_stores_nothing_new(
    files: FileHandler, conversations: ConversationHandler, db: Database
) -> None:
    conv = await _group(conversations)
    first = await files.upload(ALICE, _start(conv), _chunks(TEXT))
    again = await files.upload(ALICE, _start(conv), _chunks(b"other bytes"))
    assert not again.created and again.file.id == first.file.id
    # The same client id of another uploader is another file.
    bobs = await files.upload(BOB, _start(conv), _chunks(TEXT))
    assert bobs.created and bobs.file.id != first.file.id
    assert (await _stored(db))[:2] == (2, 2)


REFUSED = [
    (b"MZ\x90\x00" + b"\x00" * 5000, "holiday.png", {}, InvalidArgument, "file_type_not_allowed"),
    (b"\x7fELF" + b"\x00" * 100, "a.txt", {}, InvalidArgument, "file_type_not_allowed"),
    (b"#!/bin/sh\necho hi\n", "run.txt", {}, InvalidArgument, "file_type_not_allowed"),
    (
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "a.svg",
        {},
        InvalidArgument,
        "file_type_not_allowed",
    ),
    (TEXT, "a.txt", {"allowed_kinds": ("pdf",)}, InvalidArgument, "file_type_not_allowed"),
    (b"x" * 300_000, "a.txt", {"max_size_bytes": 200_000}, TooLarge, "file_too_large"),
    (
        _png((2000, 1000)),
        "a.png",
        {"max_image_pixels": 1_000_000},
        InvalidArgument,
        "image_too_large",
    ),
    (b"x" * 300_000, "a.txt", {"user_quota_bytes": 200_000}, TooLarge, "quota_exceeded"),
    (b"x" * 300_000, "a.txt", {"tenant_quota_bytes": 200_000}, TooLarge, "quota_exceeded"),
    (b"", "a.txt", {}, InvalidArgument, "empty_file"),
]


@pytest.mark.parametrize(("data", "name", "policy", "error", "code"), REFUSED)
async def test_every_refusal_leaves_nothing_stored(
    files: FileHandler,
    conversations: ConversationHandler,
    settings: SettingsHandler,
    db: Database,
    work: Work,
    data: bytes,
    name: str,
    policy: dict[str, Any],
    error: type[Exception],
    code: str,
) -> None:
    conv = await _group(conversations)
    if policy:
        await _policy(settings, **policy)
    with pytest.raises(error) as err:
        await files.upload(ALICE, _start(conv, name=name), _chunks(data))
    assert getattr(err.value, "code", None) == code
    assert await _stored(db) == (0, 0, 0) and work.woken == 0


async def test_a_declared_size_is_refused_before_any_byte(
    files: FileHandler, conversations: ConversationHandler, settings: SettingsHandler, db: Database
) -> None:
    conv = await _group(conversations)
    await _policy(settings, max_size_bytes=1000, user_quota_bytes=0)
    read = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"x"

    with pytest.raises(TooLarge) as err:
        await files.upload(ALICE, _start(conv, declared_size_bytes=1001), counted())
    assert err.value.code == "file_too_large" and read == 0
    await _policy(settings, user_quota_bytes=filepolicy.MIB)
    with pytest.raises(TooLarge) as err:
        await files.upload(ALICE, _start(conv, declared_size_bytes=filepolicy.MIB + 1), counted())
    assert err.value.code == "quota_exceeded" and read == 0
    assert await _stored(db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("start", "code"),
    [
        ({"client_id": ""}, "invalid_client_id"),
        ({"client_id": "a/b"}, "invalid_client_id"),
        ({"declared_size_bytes": -1}, "invalid_size"),
    ],
)
async def test_bad_starts_are_422(
    files: FileHandler, conversations: ConversationHandler, start: dict[str, Any], code: str
) -> None:
    conv = await _group(conversations)
    with pytest.raises(InvalidArgument) as err:
        await files.upload(ALICE, replace_start(_start(conv), **start), _chunks(TEXT))
    assert err.value.code == code


def replace_start(start: fpb.UploadStart, **kw: Any) -> fpb.UploadStart:
    out = fpb.UploadStart()
    out.CopyFrom(start)
    for k, v in kw.items():
        setattr(out, k, v)
    return out


async def test_parallel_uploads_cannot_both_take_the_last_quota(
    files: FileHandler, conversations: ConversationHandler, settings: SettingsHandler, db: Database
) -> None:
    conv = await _group(conversations)
    size = 100_000
    await _policy(settings, user_quota_bytes=int(size * 1.5))
    results = await asyncio.gather(
        *(
            files.upload(ALICE, _start(conv, client_id=f"c{i}"), _chunks(b"y" * size, 10_000))
            for i in range(3)
        ),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 1, results
    assert all(isinstance(r, TooLarge) and r.code == "quota_exceeded" for r in refused)
    records, objects, held = await _stored(db)
    assert (records, objects, held) == (1, 1, 2 * size)


async def test_who_may_upload_is_who_may_send(
    files: FileHandler, conversations: ConversationHandler
) -> None:
    conv = await _group(conversations)
    with pytest.raises(NotFound):
        await files.upload(CAROL, _start(conv), _chunks(TEXT))
    with pytest.raises(NotFound):
        await files.upload(MALLORY, _start(conv), _chunks(TEXT))
    await conversations.archive(ALICE, conv)
    with pytest.raises(FailedPrecondition) as err:
        await files.upload(ALICE, _start(conv), _chunks(TEXT))
    assert err.value.code == "conversation_archived"


async def test_another_tenants_or_conversations_file_is_not_found(
    files: FileHandler, conversations: ConversationHandler
) -> None:
    conv = await _group(conversations)
    other = await _group(conversations, "carol")
    f = (await files.upload(ALICE, _start(conv), _chunks(TEXT))).file
    with pytest.raises(NotFound) as err:
        await files.get(ALICE, other, f.id)
    assert err.value.code == "file_not_found"
    with pytest.raises(NotFound):
        await files.get(MALLORY, conv, f.id)
    with pytest.raises(NotFound):
        await files.get(CAROL, conv, f.id)
    with pytest.raises(NotFound):
        await files.download(MALLORY, conv, f.id, fpb.FILE_VARIANT_ORIGINAL)
    assert [x.id for x in (await files.list(ALICE, conv, limit=10, page_token="")).files] == [f.id]
    # Not sent with a message yet: the uploader's draft, which nobody else sees.
    assert (await files.list(BOB, conv, limit=10, page_token="")).files == []
    with pytest.raises(NotFound):
        await files.get(BOB, conv, f.id)
    assert (await files.list(ALICE, other, limit=10, page_token="")).files == []


async def _clean(db: Database, f: FileRecord) -> None:
    """What the processor does once the scan passed."""
    await db.db["files"].update_one({"_id": f.id}, {"$set": {"status": FileStatus.CLEAN.value}})


async def test_only_clean_files_download_in_small_chunks(
    files: FileHandler, conversations: ConversationHandler, db: Database
) -> None:
    conv = await _group(conversations)
    data = bytes(range(256)) * 4000 + b"%PDF"  # binary: sniffed by its first bytes
    pdf = b"%PDF-1.4\n" + data
    f = (await files.upload(ALICE, _start(conv, name="r.pdf"), _chunks(pdf))).file
    with pytest.raises(FailedPrecondition) as err:
        await files.download(ALICE, conv, f.id, fpb.FILE_VARIANT_ORIGINAL)
    assert err.value.code == "file_pending"
    await _clean(db, f)
    got = await files.download(ALICE, conv, f.id, fpb.FILE_VARIANT_ORIGINAL)
    assert (got.content_type, got.attachment, got.size_bytes) == (
        "application/pdf",
        False,
        len(pdf),
    )
    chunks = [c async for c in got.chunks]
    assert b"".join(chunks) == pdf and max(len(c) for c in chunks) <= 256 * 1024
    with pytest.raises(NotFound) as err:
        await files.download(ALICE, conv, f.id, fpb.FILE_VARIANT_THUMBNAIL)
    assert err.value.code == "variant_not_found"


async def test_svg_download_only_is_an_attachment_of_octet_stream(
    files: FileHandler, conversations: ConversationHandler, settings: SettingsHandler, db: Database
) -> None:
    conv = await _group(conversations)
    await _policy(settings, svg_mode="download_only")
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    f = (await files.upload(ALICE, _start(conv, name="a.svg"), _chunks(svg))).file
    assert f.download_only and f.content_type == "image/svg+xml"
    await _clean(db, f)
    got = await files.download(ALICE, conv, f.id, fpb.FILE_VARIANT_ORIGINAL)
    assert (got.content_type, got.attachment) == ("application/octet-stream", True)


async def test_delete_rules(
    files: FileHandler, conversations: ConversationHandler, db: Database
) -> None:
    conv = await _group(conversations, "bob", "carol")
    mine = (await files.upload(BOB, _start(conv, client_id="b1"), _chunks(TEXT))).file
    theirs = (await files.upload(CAROL, _start(conv, client_id="c1"), _chunks(TEXT))).file
    with pytest.raises(PermissionDenied):
        await files.delete(BOB, conv, theirs.id)
    await files.delete(BOB, conv, mine.id)
    with pytest.raises(NotFound):
        await files.get(BOB, conv, mine.id)
    # The owner moderates: an audited delete of someone else's file.
    await files.delete(ALICE, conv, theirs.id)
    audited = [d async for d in db.db["audit"].find({"action": "file.deleted_by_other"})]
    assert len(audited) == 1
    assert (await _stored(db))[2] == 0
    # Released once: the records hold nothing a compliance job could give back again.
    assert {d["reserved_bytes"] async for d in db.db["files"].find({})} == {0}


async def test_a_file_message_attaches_an_uploaded_file(
    files: FileHandler, conversations: ConversationHandler, messages: MessageHandler, db: Database
) -> None:
    conv = await _group(conversations)
    f = (await files.upload(ALICE, _start(conv, name="plan.txt"), _chunks(TEXT))).file
    sent = await send(
        messages,
        ALICE,
        conv,
        "the plan",
        client_msg_id="m1",
        kind=pb.MESSAGE_KIND_FILE,
        file={"file_id": f.id, "name": "lies.exe", "size_bytes": 1},
    )
    att = sent.message.file
    assert att is not None
    assert (att.file_id, att.name, att.content_type, att.size_bytes, att.url) == (
        f.id,
        "plan.txt",
        "text/plain; charset=utf-8",
        len(TEXT),
        "",
    )
    # Sent: the conversation's to see.
    assert (await files.get(BOB, conv, f.id)).message_id == sent.message.id
    assert [x.id for x in (await files.list(BOB, conv, limit=10, page_token="")).files] == [f.id]
    # A retry of the send is the stored message.
    again = await send(
        messages,
        ALICE,
        conv,
        "the plan",
        client_msg_id="m1",
        kind=pb.MESSAGE_KIND_FILE,
        file={"file_id": f.id},
    )
    assert not again.created and again.message.id == sent.message.id
    # Attached: not deletable by itself, and not attachable twice.
    with pytest.raises(FailedPrecondition) as err:
        await files.delete(ALICE, conv, f.id)
    assert err.value.code == "file_attached"
    with pytest.raises(InvalidArgument) as err:
        await send(messages, ALICE, conv, "", kind=pb.MESSAGE_KIND_FILE, file={"file_id": f.id})
    assert err.value.code == "invalid_file"


async def test_only_the_uploaders_own_unattached_file_of_this_conversation_attaches(
    files: FileHandler, conversations: ConversationHandler, messages: MessageHandler, db: Database
) -> None:
    conv = await _group(conversations)
    other = await _group(conversations, "bob")
    bobs = (await files.upload(BOB, _start(conv), _chunks(TEXT))).file
    elsewhere = (await files.upload(ALICE, _start(other), _chunks(TEXT))).file
    for caller, file_id in ((ALICE, bobs.id), (ALICE, elsewhere.id), (ALICE, "nope")):
        with pytest.raises(InvalidArgument) as err:
            await send(
                messages, caller, conv, "", kind=pb.MESSAGE_KIND_FILE, file={"file_id": file_id}
            )
        assert err.value.code == "invalid_file"
    infected = (await files.upload(ALICE, _start(conv, client_id="x"), _chunks(TEXT))).file
    await db.db["files"].update_one(
        {"_id": infected.id}, {"$set": {"status": FileStatus.INFECTED.value}}
    )
    with pytest.raises(InvalidArgument):
        await send(
            messages, ALICE, conv, "", kind=pb.MESSAGE_KIND_FILE, file={"file_id": infected.id}
        )
    # A link still works as before.
    link = {"url": "https://example.com/a.pdf", "name": "a.pdf"}
    assert (await send(messages, ALICE, conv, "", kind=pb.MESSAGE_KIND_FILE, file=link)).created


async def test_deleting_the_message_deletes_its_file_and_tells_the_room(
    files: FileHandler, conversations: ConversationHandler, messages: MessageHandler, db: Database
) -> None:
    conv = await _group(conversations)
    f = (await files.upload(ALICE, _start(conv), _chunks(TEXT))).file
    sent = await send(messages, ALICE, conv, "", kind=pb.MESSAGE_KIND_FILE, file={"file_id": f.id})
    await messages.delete(ALICE, conversation_id=conv, message_id=sent.message.id)
    with pytest.raises(NotFound):
        await files.get(ALICE, conv, f.id)
    events = [decode(d) for d in await outbox(db, conv)]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[-2:] == ["message_deleted", "file_updated"]
    assert events[-1].file_updated.file.status == fpb.FILE_STATUS_DELETED
    assert (await _stored(db))[2] == 0
    assert {d["reserved_bytes"] async for d in db.db["files"].find({})} == {0}


async def test_tenants_never_meet(files: FileHandler, conversations: ConversationHandler) -> None:
    conv = await _group(conversations)
    f = (await files.upload(ALICE, _start(conv), _chunks(TEXT))).file
    mallorys = (await create(conversations, MALLORY, members=[])).conversation.id
    with pytest.raises(NotFound):
        await files.get(MALLORY, mallorys, f.id)
    with pytest.raises(NotFound):
        await files.delete(MALLORY, conv, f.id)
    assert MALLORY.tenant_id != TENANT_A


async def test_platform_staff_read_an_escalated_tickets_files_audited(
    unit: UnitOfWork, blobs: FileBytes, settings: SettingsHandler, work: Work, db: Database
) -> None:
    support = SupportHandler(unit)
    staff_files = FileHandler(unit, blobs, settings, work, PlatformHandler(support))
    requester = user("mia", TENANT_A, ROLE_MEMBER)
    opened = await support.open(requester, subject="Payout stuck", priority=0)
    conv = opened.ticket.conversation_id
    f = (await staff_files.upload(requester, _start(conv), _chunks(TEXT))).file
    # Sent to the ticket (through the desk's send, which attaches it in its unit).
    sent = await send(
        MessageHandler(unit, tickets=support),
        requester,
        conv,
        "the statement",
        kind=pb.MESSAGE_KIND_FILE,
        file={"file_id": f.id},
    )
    assert sent.message.file is not None and sent.message.file.file_id == f.id
    # Not escalated yet: nothing, whatever the ticket id.
    with pytest.raises(NotFound):
        await staff_files.get(STAFF, conv, f.id, opened.ticket.id)
    await support.escalate(ADMIN, opened.ticket.id, "needs the platform")
    with pytest.raises(NotFound):
        await staff_files.get(STAFF, conv, f.id)
    got = await staff_files.get(STAFF, conv, f.id, opened.ticket.id)
    assert got.id == f.id
    page = await staff_files.list(STAFF, conv, limit=10, page_token="", ticket_id=opened.ticket.id)
    assert [x.id for x in page.files] == [f.id]
    await _clean(db, f)
    got_bytes = await staff_files.download(
        STAFF, conv, f.id, fpb.FILE_VARIANT_ORIGINAL, opened.ticket.id
    )
    assert b"".join([c async for c in got_bytes.chunks]) == TEXT
    reads = [d async for d in db.db["audit"].find({"action": "platform.files_read"})]
    assert len(reads) == 3 and {r["tenant_id"] for r in reads} == {TENANT_A}
    # Another conversation with the same ticket id is not theirs to read.
    other = (await create(ConversationHandler(unit), ALICE, members=[])).conversation.id
    with pytest.raises(NotFound):
        await staff_files.list(STAFF, other, limit=10, page_token="", ticket_id=opened.ticket.id)


async def test_a_thread_reply_attaches_and_a_moderators_delete_takes_the_file(
    unit: UnitOfWork,
    files: FileHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    db: Database,
) -> None:
    conv = await _group(conversations)
    root = (await send(messages, ALICE, conv, "root")).message
    f = (await files.upload(BOB, _start(conv), _chunks(TEXT))).file
    reply = await messages.send(
        BOB,
        conversation_id=conv,
        client_msg_id="r1",
        text="see attached",
        kind=pb.MESSAGE_KIND_FILE,
        thread_root_id=root.id,
        file={"file_id": f.id},
    )
    assert (await files.get(ALICE, conv, f.id)).message_id == reply.message.id
    moderation = ModerationHandler(unit)
    entry = (
        await moderation.report(
            ALICE, conversation_id=conv, message_id=reply.message.id, reason="x"
        )
    ).entry
    await moderation.resolve(
        ADMIN, entry_id=entry.id, action="delete_message", expires_at=None, tenant_wide=False
    )
    with pytest.raises(NotFound):
        await files.get(BOB, conv, f.id)
    last = decode((await outbox(db, conv))[-1])
    assert last.file_updated.file.id == f.id
    assert last.file_updated.file.status == fpb.FILE_STATUS_DELETED


async def test_file_names_are_screened_like_text(
    unit: UnitOfWork,
    blobs: FileBytes,
    settings: SettingsHandler,
    work: Work,
    conversations: ConversationHandler,
    db: Database,
) -> None:
    pii = PolicyHandler(unit.database, unit.clock)
    files = FileHandler(unit, blobs, settings, work, pii_policies=pii)
    conv = await _group(conversations)
    await pii.update(ADMIN, PolicyPatch(pii_mode="block"))
    with pytest.raises(InvalidArgument) as err:
        await files.upload(ALICE, _start(conv, name="AB123456C.pdf"), _chunks(TEXT))
    assert err.value.code == "pii_blocked"
    assert await _stored(db) == (0, 0, 0)
    await pii.update(ADMIN, PolicyPatch(pii_mode="mask"))
    masked = (await files.upload(ALICE, _start(conv, name="AB123456C.txt"), _chunks(TEXT))).file
    assert "AB123456C" not in masked.name


async def test_racing_retries_of_one_upload_make_one_file(
    files: FileHandler, conversations: ConversationHandler, db: Database
) -> None:
    conv = await _group(conversations)
    results = await asyncio.gather(
        *(files.upload(ALICE, _start(conv, client_id="same"), _chunks(TEXT, 500)) for _ in range(3))
    )
    assert len({r.file.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await _stored(db) == (1, 1, 2 * len(TEXT))
