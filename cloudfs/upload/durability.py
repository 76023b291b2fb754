"""Durability: what close and fsync acknowledged is in the journal.

Before an upload starts, and before any close/fsync is acknowledged, the
file's content is fsync'd in its staging file and recorded in the journal; it
leaves the journal only after its upload landed (and a replay after a crash
finds it there otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from cloudfs.upload.journal import Journal
from cloudfs.upload.staging import LocalFile

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")


async def persist(journal: Journal, local: LocalFile, *, again: bool = False) -> None:
    """Make the current content durable locally: staging fsync'd, then
    journaled (``again``: even if this generation is, e.g. on a new base)."""
    if not local.dirty or (local.journaled_generation == local.generation and not again):
        return
    generation = local.generation
    await journal.record(local, sync_first=True)
    local.journaled_generation = max(local.journaled_generation, generation)


async def journal_quietly(update: Awaitable[None]) -> bool:
    """A journal update that may fail (cache disk full) without failing
    the caller: it is logged, and False tells the caller to keep what
    the journal had."""
    try:
        await update
    except OSError as exc:
        log.warning("could not update the upload journal: %s", exc)
        return False
    return True


async def unjournal(journal: Journal, file_id: str) -> None:
    """Drop a landed upload's journal record.  If the journal cannot be
    written (cache disk full), the record stays: a replay finds the
    content already on the server and uploads nothing."""
    await journal_quietly(journal.forget(file_id))
