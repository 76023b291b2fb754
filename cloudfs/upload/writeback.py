"""WriteBack: uploads staged files in the background, crash-safely.

The facade the filesystem and the mount use; its parts, each with one purpose:

- registry.py: the staged files by object id (the filesystem reads it);
- scheduler.py: when each upload starts (quiet delay, bursts, urgent ones,
  holds during renames, parallel uploads);
- durability.py: what close/fsync acknowledged is in the journal before an
  upload starts, and leaves it only after the upload landed;
- attempt.py: one upload attempt, and what follows when it lands;
- conflicts.py: a file changed on the server meanwhile is never overwritten:
  its local content is uploaded beside it under a conflict name;
- retry.py: a failed upload is retried with a doubling delay;
- replay.py: after a crash, what the journal holds is staged again.

The write-back knows files by object id and remote path, never inodes; the
filesystem attaches itself (:meth:`WriteBack.attach`): it fetches bases, and
hears of each landed upload.  What the namespace must do in one step with its
inodes (drop a removed file, move files with a rename) are plain functions
here (:func:`drop_file`, :func:`relocate_files`): nothing between could fail.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import trio

from cloudfs.cache.blocks import BlockStore
from cloudfs.client.api import Client
from cloudfs.upload import durability
from cloudfs.upload.attempt import Hooks, UploadedFn, Uploader
from cloudfs.upload.conflicts import Conflicts
from cloudfs.upload.journal import Journal, Record
from cloudfs.upload.registry import StagedFiles
from cloudfs.upload.replay import replay
from cloudfs.upload.retry import SLOW_RETRY_ERRNOS, Retries
from cloudfs.upload.scheduler import SMALL_PARALLEL_FACTOR, Active, Scheduler
from cloudfs.upload.staging import FetchFn, LocalFile

#: what the filesystem and the mount use of the write-back (its parts are its own)
__all__ = ["SLOW_RETRY_ERRNOS", "UploadStatus", "UploadedFn", "WriteBack", "drop_file", "relocate_files"]

log = logging.getLogger(__name__)

#: fsync re-checks that its upload is running or due at least this often
SYNC_RECHECK_S = 2.0


def drop_file(writeback: "WriteBack", local: LocalFile) -> None:
    """The in-memory part of :meth:`WriteBack.forget` (no upload of ``local``
    may be running): a plain function, so the namespace can drop a removed
    file's upload in the same step as its inode, with nothing between that
    could fail (the upload would then bring the file back)."""
    writeback.scheduler.forget(local.file_id)
    writeback.retries.forget(local.file_id)
    writeback.files.discard(local)
    # for good: a write through a handle still open must not make it dirty
    # again (an fsync still waiting would take it for an upload gone missing)
    local.removed = True
    local.dirty = False
    writeback.scheduler.notify()  # an fsync waiting for it has nothing left to wait for
    # its record goes too, with the next journal write if not sooner (else a
    # replay would upload the removed file again)
    writeback.journal.forget_soon(local.file_id)


def relocate_files(writeback: "WriteBack", moves: Mapping[str, str], *, folders: bool = True) -> list[LocalFile]:
    """:meth:`WriteBack.relocate` as a plain function: the namespace moves
    nodes and staged uploads together in one step, with nothing between
    that could fail."""
    return writeback.files.relocate(moves, folders=folders)


@dataclass(frozen=True)
class UploadStatus:
    path: str
    size: int
    state: str  # "waiting", "uploading", "retrying"
    done: int
    error: str | None
    #: where its data is kept until it lands
    staging: str


class WriteBack:
    def __init__(
        self,
        client: Client,
        journal: Journal,
        store: BlockStore,
        *,
        delay_s: float,
        max_parallel: int,
    ) -> None:
        self.client = client
        self.journal = journal
        self.store = store
        #: every staged file, by object id (dirty or held open)
        self.files = StagedFiles()
        self.retries = Retries()
        #: where small files upload in one request or two each, their time is
        #: round trips, not bandwidth: more of them run at once (tar x, cp -r).
        #: (Not where each is a session and a swap, with folder listings:
        #: there more at once only crowd the server.)
        factor = SMALL_PARALLEL_FACTOR if client is not None and client.whole_uploads else 1
        self.conflicts = Conflicts(client, journal, self.files)
        self.scheduler = Scheduler(self.files, self.retries, self._attempt, delay_s=delay_s,
                                   max_parallel=max_parallel, small_parallel=max(max_parallel, 1) * factor)
        self._hooks = Hooks()
        self.uploader = Uploader(client, journal, store, self.conflicts, self.retries, self._hooks,
                                 failed=self.scheduler.failed, rekey=self.rekey, notify=self.scheduler.notify)

    def attach(self, *, fetch_base: FetchFn, on_uploaded: UploadedFn) -> None:
        """The filesystem over this write-back: where a staged file's base is
        fetched from, and who hears of each landed upload (``on_uploaded(local,
        entry, old_file_id)``, called in the same step as ``local`` takes the
        new version, perhaps under a new id: the inode follows it there)."""
        self._hooks.fetch_base = fetch_base
        self._hooks.on_uploaded = on_uploaded

    @property
    def uploads_done(self) -> int:
        """How many uploads landed since the mount started."""
        return self.uploader.uploads_done

    async def _attempt(self, local: LocalFile, active: Active) -> None:
        await self.uploader.attempt(local, active)

    # ---- bookkeeping ---------------------------------------------------------
    def add(self, local: LocalFile) -> None:
        self.files.add(local)

    def rekey(self, local: LocalFile, old_file_id: str) -> None:
        self.files.discard(local, old_file_id)
        self.files.add(local)
        self.scheduler.rekey(old_file_id, local.file_id)

    # ---- scheduling (see scheduler.py) ------------------------------------------
    def closed(self, local: LocalFile) -> None:
        """Its last writer closed ``local``: due now or after the quiet delay."""
        self.scheduler.closed(local)

    def note_activity(self) -> None:
        """A file was created or closed: uploads that are not urgent wait for a pause."""
        self.scheduler.note_activity()

    def schedule(self, local: LocalFile, delay_s: float | None = None) -> None:
        """Make ``local`` due for upload after ``delay_s`` (default: the quiet
        delay); 0 makes it urgent: it starts even in a burst of activity."""
        self.scheduler.schedule(local, delay_s)

    def cancel(self, local: LocalFile) -> None:
        """Stop the upload of ``local`` in flight, if any (it changed)."""
        self.scheduler.cancel(local)

    async def cancel_and_wait(self, local: LocalFile) -> None:
        """Cancel and wait until the server has released the upload (its lock)."""
        await self.scheduler.cancel_and_wait(local)

    def paused(self, files: list[LocalFile]) -> AbstractAsyncContextManager[None]:
        """No upload of ``files`` runs inside this block (those in flight are
        cancelled first); afterwards they are due again."""
        return self.scheduler.paused(files)

    def is_held(self, local: LocalFile) -> bool:
        """Whether a rename is moving ``local`` (its upload must wait)."""
        return self.scheduler.is_held(local)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start uploads as they fall due, until cancelled."""
        await self.scheduler.run(task_status=task_status)

    def describe(self) -> str:
        """The scheduler's state, file by file (for a task dump)."""
        return self.scheduler.describe()

    # ---- the staged files ----------------------------------------------------------
    async def forget(self, local: LocalFile) -> None:
        """The file is gone (unlinked): nothing of it is to be uploaded."""
        await self.cancel_and_wait(local)
        drop_file(self, local)
        await self.journal.forget(local.file_id)

    def under(self, path: str, *, folder: bool = True) -> list[LocalFile]:
        """Staged files at or below ``path`` (not ``folder``: a file's path)."""
        return self.files.under(path, folder=folder)

    def relocate(self, moves: Mapping[str, str]) -> list[LocalFile]:
        """Subtrees moved on the server (old root -> new root, all at once):
        the staged files in them take their new paths now, with no await, so
        no other task ever sees half of an exchange.  Returns the dirty ones,
        whose journal records :meth:`record_paths` then updates."""
        return self.files.relocate(moves)

    async def record_paths(self, files: list[LocalFile], *, durable: bool = True) -> None:
        """Journal where ``files`` are now (read as each record is written:
        a later rename may have moved one again meanwhile).  Not ``durable``
        (a rename that made no request): with the next journal statement,
        at the latest before an upload of one of them starts."""
        for local in files:
            if durable:
                await self.journal.move(local.file_id, local.remote_path)
            else:
                self.journal.move_soon(local)

    def release(self, local: LocalFile) -> bool:
        """Drop a clean file nobody writes; True if it left the write-back."""
        if local.dirty or local.writers or self.scheduler.uploading(local.file_id):
            return False
        self.files.discard(local)
        self.scheduler.forget(local.file_id)
        return True

    async def persist(self, local: LocalFile, *, again: bool = False) -> None:
        """Make the current content durable locally: staging fsync'd, then
        journaled (``again``: even if this generation is, e.g. on a new base)."""
        await durability.persist(self.journal, local, again=again)

    async def sync(self, local: LocalFile) -> None:
        """Return once the current content is on the server; raise the upload's error."""
        target = local.generation
        await self.persist(local)
        # only an attempt made from now on answers this call
        local.failed_generation = -1
        self.schedule(local, 0)
        while local.dirty and local.uploaded_generation < target:
            if local.failed_generation >= target and local.error is not None:
                raise local.error
            self._ensure_pending(local)
            with trio.move_on_after(SYNC_RECHECK_S):
                await self.scheduler.outcome()

    def _ensure_pending(self, local: LocalFile) -> None:
        """A safety net under fsync, which the kernel waits for holding the
        file's lock: a dirty file that no upload is running or due for would
        be waited for in vain.  Never expected, so logged as the bug it is."""
        if self.files.get(local.file_id) is not local:
            log.error("%s was missing from the write-back; uploading it now", local.remote_path)
            self.add(local)
        if not self.scheduler.pending(local.file_id):
            log.error("no upload of %s was running or due; starting one", local.remote_path)
            self.schedule(local, 0)

    async def drain(self, on_progress: Callable[[list[UploadStatus]], None] | None = None) -> list[UploadStatus]:
        """Upload everything now and wait until nothing is pending, or until
        what is left keeps failing (a full drive, a server that is down);
        that stays journaled.  Returns what is left."""
        self.retries.start_drain()
        try:
            for local in list(self.files.values()):
                self.schedule(local, 0)
            while True:
                if on_progress is not None:
                    on_progress(self.status())
                left = [local for local in self.files.values() if local.dirty]
                uploading = self.scheduler.uploading
                if not left or all(self.retries.given_up(local, uploading(local.file_id) is not None)
                                   for local in left):
                    break
                with trio.move_on_after(0.5):
                    await self.scheduler.outcome()
        finally:
            self.retries.end_drain()
        left_over = self.status()
        if left_over:
            log.warning("%d upload(s) keep failing; their data stays staged and journaled", len(left_over))
        return left_over

    def unconfirmed(self, at: str | None = None) -> list[LocalFile]:
        """Dirty files whose upload is running or has failed, and those
        not on the server yet (created here): those the server may not show
        for a while (a backend without in-place overwrite replaces a file by
        deleting it and renaming the new content into place; the rename may
        fail).  Cheap: not every staged file, only those; ``at``: only
        those whose path is that (a lookup, for each new name of a tar x
        while hundreds of files wait for their first upload: found by path)."""
        groups = (self.scheduler.uploading_ids, self.retries.failing, self.files.unsent)
        if at is not None:
            return self._dirty_at(at, groups)
        return self._dirty_among(itertools.chain(*groups))

    def in_flight(self, at: str | None = None) -> list[LocalFile]:
        """Dirty files whose upload is running, or failed (its answer may have
        been lost): the server may show their new content already, under an
        id the filesystem has not heard of yet (a replace that gives a new id,
        a file created by its upload).  ``at``: only those at that path.
        Cheap: a few files (the uploads running and failing), not every staged one."""
        groups = (self.scheduler.uploading_ids, self.retries.failing)
        if at is not None:
            return self._dirty_at(at, groups)
        return self._dirty_among(itertools.chain(*groups))

    def _dirty_among(self, ids: Iterable[str]) -> list[LocalFile]:
        files = self.files
        found = {file_id: local for file_id in ids if (local := files.get(file_id)) is not None and local.dirty}
        return list(found.values())

    def _dirty_at(self, path: str, groups: Iterable[Collection[str]]) -> list[LocalFile]:
        """The dirty files staged at ``path`` under an id in one of ``groups``."""
        return [local for file_id, local in self.files.at(path)
                if local.dirty and any(file_id in ids for ids in groups)]

    def status(self) -> list[UploadStatus]:
        out = []
        for local in self.files.values():
            if not local.dirty:
                continue
            active = self.scheduler.uploading(local.file_id)
            if active is not None:
                state, done = "uploading", active.done
            else:
                state, done = ("retrying" if local.error else "waiting"), 0
            out.append(UploadStatus(local.remote_path, local.size, state, done,
                                    str(local.error) if local.error else None, str(local.staging)))
        return out

    # ---- crash recovery (see replay.py) ------------------------------------------
    async def replay(self, records: list[Record]) -> int:
        """Re-stage what a previous run left pending, before the mount starts;
        returns how many files were re-queued (they upload once :meth:`run` is going)."""
        return await replay(records, self.client, self.journal, self.conflicts, self._requeue)

    def _requeue(self, local: LocalFile) -> None:
        self.add(local)
        self.schedule(local, 0)
