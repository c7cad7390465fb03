"""What the compliance jobs need for files in tests: a real GridFS blob store."""

from __future__ import annotations

from conversation.jobs.files import FileReaper
from conversation.storage.blobs import GridFsBlobStore
from conversation.storage.db import Database


def reaper(db: Database) -> FileReaper:
    return FileReaper(db, GridFsBlobStore(db.db))
