"""Messages and their uploaded files: what a send may attach, the attach inside
the send's unit of work, and the file's delete inside the message's
(docs/files.md#attach)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import files_pb2 as fpb
from confab_core.errors import InvalidArgument
from conversation import convert
from conversation.handlers.unit import Taken
from conversation.storage.db import TenantStore
from conversation.storage.files import FileRecord, FileStatus
from conversation.storage.messages import Message

# A message may carry a file that is stored, scanned or not yet.
ATTACHABLE = frozenset({FileStatus.PENDING, FileStatus.CLEAN})


def not_attachable() -> InvalidArgument:
    return InvalidArgument(
        "file_id: an unattached file you uploaded to this conversation", "invalid_file"
    )


async def attachable(
    store: TenantStore, conversation_id: str, sender_id: str, file_id: str
) -> FileRecord:
    """The uploaded file a send may carry: same conversation, the sender's own,
    unattached, stored (pending or clean). Anything else is one refusal, so a
    file id of another conversation or tenant tells nothing."""
    found = await store.files.get(conversation_id, file_id)
    if (
        found is None
        or found.uploader_id != sender_id
        or found.message_id
        or found.status not in ATTACHABLE
    ):
        raise not_attachable()
    return found


async def attach_all(t: Taken, messages: Iterable[Message], now: datetime) -> None:
    """Inside a send's unit: each stored message naming an uploaded file takes
    it, on the conditions ``attachable`` checked, which the write checks again
    (two sends racing for one file: one wins)."""
    for message in messages:
        if message.file is None or not message.file.file_id:
            continue
        done = await t.store.files.attach(
            message.conversation_id, message.file.file_id, message.sender_id, message.id, now
        )
        if done is None:
            raise not_attachable()


def file_updated(file: fpb.File) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(file_updated=fpb.FileUpdated(file=file))


def file_of(message: Message) -> str:
    """The uploaded file a message carries; empty for none or a link."""
    return message.file.file_id if message.file is not None else ""


async def delete_with_message(t: Taken, file_id: str, now: datetime) -> None:
    """Inside the unit that deletes a message (which claimed one more event for
    this): its file becomes DELETED, its quota is given back, and the room hears
    it. The processor purges the bytes and every variant."""
    conversation_id = t.change.conversation_id
    gone = await t.store.files.mark_deleted(conversation_id, file_id, now)
    if gone is not None:
        if gone.reserved_bytes > 0:
            # Held no more by the record: a later compliance removal gives nothing back twice.
            await t.store.files.set_reserved(gone.id, 0, now)
            await t.store.file_usage.release(gone.uploader_id, gone.reserved_bytes)
        t.emit(convert.file_updated(gone))
        return
    # Already deleted (or removed by a compliance job): the event claimed still
    # says so.
    t.emit(
        file_updated(
            fpb.File(id=file_id, conversation_id=conversation_id, status=fpb.FILE_STATUS_DELETED)
        )
    )
