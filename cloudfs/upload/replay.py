"""Crash replay: re-stage what a previous run left pending in the journal.

Runs before the mount starts.  A session the previous run left open is
cancelled (it locks the file); content already on the server (the run died
after its last chunk landed) is dropped; content whose remote base changed
or vanished meanwhile goes up under a conflict name (or re-created), never
over someone else's version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cloudfs.client.api import Client
from cloudfs.client.models import Entry
from cloudfs.errors import CloudfsError
from cloudfs.upload.conflicts import Conflicts
from cloudfs.upload.journal import Journal, Record
from cloudfs.upload.staging import UNSENT_PREFIX, LocalFile, is_unsent

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")


async def replay(records: list[Record], client: Client, journal: Journal, conflicts: Conflicts,
                 requeue: Callable[[LocalFile], None]) -> int:
    """Re-stage what a previous run left pending, before the mount starts.

    Returns how many files were re-queued (``requeue`` hands each to the
    write-back, urgent); their uploads run once it is running.  Content
    whose remote base changed or vanished meanwhile is uploaded under a
    conflict name (or re-created), never over someone else's version.
    """
    count = 0
    for rec in records:
        try:
            rec.restore()  # a small file's content is in its record
        except OSError as exc:
            log.error("could not rewrite the staging file %s of %s: %s", rec.staging, rec.path, exc)
        if not rec.staging.exists():
            log.error("pending upload of %s lost its staging file %s; nothing to replay",
                      rec.path, rec.staging)
            await journal.forget(rec.file_id)
            continue
        # the previous run died mid-upload: its session still locks the file, and an
        # earlier attempt's failed swap may have left a whole copy beside it
        for session_id in rec.session_ids:
            try:
                await client.cancel_upload(rec.path, session_id)
            except CloudfsError as exc:
                log.warning("could not cancel the interrupted upload of %s: %s", rec.path, exc)
        local = LocalFile(
            file_id=rec.file_id, remote_path=rec.path, staging=rec.staging, size=rec.size,
            mtime_ns=rec.mtime_ns, base_limit=rec.base_limit, present=rec.present, dirty=True,
            metadata=dict(rec.metadata),
        )
        remote = await conflicts.stat_or_none(rec.path)
        if remote is not None and remote.file_id == rec.file_id and remote.version == (rec.base_version or ""):
            local.base = remote  # nothing changed remotely: a plain new version
        elif remote is not None and await _already_there(conflicts, remote, rec):
            # the previous run died after its last chunk landed: nothing to redo
            log.info("%s was already uploaded before the previous run stopped", rec.path)
            await journal.forget(rec.file_id)
            rec.staging.unlink(missing_ok=True)
            continue
        else:
            if remote is not None or not is_unsent(rec.file_id):
                await conflicts.lose_base(local, remote)  # (a file created here never had a base)
            if not is_unsent(rec.file_id):
                local.file_id = UNSENT_PREFIX + rec.file_id
                await journal.rekey(rec.file_id, local.file_id)
        local.journaled_generation = local.generation
        requeue(local)
        count += 1
        log.info("replaying pending upload of %s (%d bytes)", local.remote_path, rec.size)
    return count

async def _already_there(conflicts: Conflicts, remote: Entry, rec: Record) -> bool:
    """Whether the server's current content of the file is exactly the
    staged bytes (only done after a crash).  The object id may differ:
    on some servers a replaced file is a new object."""
    return await conflicts.holds(remote, rec.staging, rec.size, rec.present)
