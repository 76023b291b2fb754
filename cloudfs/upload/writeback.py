"""WriteBack: uploads staged files in the background, crash-safely.

Each dirty :class:`LocalFile` gets a *due time*.  Closing a file (or, for a
file held open, a pause in writing once it holds a lot of dirty data) sets it
a short quiet delay ahead, so save-then-rename patterns and bursts of small
writes coalesce into one upload; ``fsync`` makes it due at once.  A bounded
number of uploads run in parallel.  A change to a file cancels its upload in
flight (the session is cancelled, the old version stays intact) and the file
becomes due again.

Before an upload starts, and before any close/fsync is acknowledged, the file
is in the journal; it leaves the journal only after its upload landed.  A
failed upload is retried with a doubling delay; a file changed on the server
meanwhile is never overwritten: its local content is uploaded beside it under
a conflict name.

The write-back knows files by object id and remote path, never inodes; it
tells the filesystem about outcomes through ``on_uploaded``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import heapq
import itertools
import logging
import math
import os
import posixpath
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from cloudfs.cache.blocks import BlockStore, cache_name
from cloudfs.cache.ranges import SpanSet
from cloudfs.client.api import Client
from cloudfs.client.paths import relocated, within
from cloudfs.client.models import (
    MTIME_KEY,
    UPLOAD_TAG_KEY,
    Entry,
    mtime_value,
    stored_mtime_ns,
)
from cloudfs.errors import AlreadyExists, CloudfsError, VersionConflict
from cloudfs.upload.journal import Journal, Record
from cloudfs.upload.staging import UNSENT_PREFIX, FetchFn, LocalFile, is_unsent

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 300.0
#: while draining (umount, shutdown), a failed upload is retried this soon...
DRAIN_RETRY_S = 2.0
#: ...and the drain gives up on a file after this many failures in a row
DRAIN_ATTEMPTS = 3
#: errors that another attempt will not fix soon: retried slowly
#: the way out of a full drive, said where the failure is logged
FULL_DRIVE_HINT = ("; deleted files in the server's recycle bin still count against the quota: "
                   "`cloudfs trash URL` shows them, `cloudfs trash URL --empty` frees their space")
SLOW_RETRY_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EINVAL, errno.EACCES, errno.EPERM,
                     errno.ENAMETOOLONG, errno.EOPNOTSUPP}
#: after an upload landed, recording its exact mtime may delay a cancellation this long
SETTLE_S = 30.0
#: fsync re-checks that its upload is running or due at least this often
SYNC_RECHECK_S = 2.0
#: the scheduler checks this often that every closed dirty file is due or uploading
UNHEARD_CLOSE_CHECK_S = 5.0
#: a just-uploaded version up to this size is copied into the read cache on the event
#: loop; a larger one in a worker thread, after its upload is reported done
ADOPT_INLINE_MAX = 4 << 20
#: ...in pieces of this size: a cancellation (the mount ending) waits for one piece, not the whole file
CACHE_COPY_PIECE = 32 << 20
#: files created or closed less than this apart make a burst: ordinary uploads wait for its end...
BURST_QUIET_S = 0.3
#: ...but never longer than this past their due time
BURST_MAX_WAIT_S = 10.0
#: a file written front to back and at least this large is uploaded as soon as it is closed
PROMPT_UPLOAD_MIN = 8 << 20
#: a version without our tag is compared with the staged content (downloaded) up to this size
CONTENT_CHECK_MAX = 16 << 20
#: files up to this size count as small: their uploads are bound by round trips...
SMALL_UPLOAD_MAX = 1 << 20
#: ...and this many times ``max_parallel`` of them run at once
SMALL_PARALLEL_FACTOR = 4
#: the suffix a conflict copy's name carries (see _conflict_path)
CONFLICT_SUFFIX = re.compile(r" \(conflict \d{4}-\d\d-\d\d \d{6}(?: \d+)?\)$")

UploadedFn = Callable[[LocalFile, Entry, str], None]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_span(source: int, target: int, start: int, length: int) -> None:
    """Copy ``length`` bytes at ``start`` between two files, same offsets (in the kernel)."""
    done = 0
    while done < length:
        n = os.copy_file_range(source, target, length - done, start + done, start + done)
        if n == 0:
            raise OSError(errno.EIO, "the staging file is shorter than its version")
        done += n


async def _digest(path: Path, size: int) -> str:
    """SHA-256 of a staging file (a small one is read right here: page cache)."""
    if size <= 1 << 20:
        return _sha256_of(path)
    return await trio.to_thread.run_sync(_sha256_of, path)


def drop_file(writeback: "WriteBack", local: LocalFile) -> None:
    """The in-memory part of :meth:`WriteBack.forget` (no upload of ``local``
    may be running): a plain function, so the namespace can drop a removed
    file's upload in the same step as its inode, with nothing between that
    could fail (the upload would then bring the file back)."""
    writeback._due.pop(local.file_id, None)
    writeback._urgent.discard(local.file_id)
    writeback._retry_delay.pop(local.file_id, None)
    if writeback.files.get(local.file_id) is local:
        del writeback.files[local.file_id]
        writeback._unsent.discard(local.file_id)
    # for good: a write through a handle still open must not make it dirty
    # again (an fsync still waiting would take it for an upload gone missing)
    local.removed = True
    local.dirty = False
    writeback._notify()  # an fsync waiting for it has nothing left to wait for
    # its record goes too, with the next journal write if not sooner (else a
    # replay would upload the removed file again)
    writeback.journal.forget_soon(local.file_id)


def relocate_files(files: Iterable[LocalFile], moves: Mapping[str, str]) -> list[LocalFile]:
    """:meth:`WriteBack.relocate` over ``files`` (a plain function: the
    namespace moves nodes and staged uploads together in one step)."""
    moved = []
    for local in files:
        path = relocated(local.remote_path, moves)
        if path is not None:
            local.remote_path = path
            if local.dirty:
                moved.append(local)
    return moved


@dataclass
class _Active:
    scope: trio.CancelScope
    generation: int
    total: int
    done: int = 0
    finished: trio.Event = field(default_factory=trio.Event)


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
        fetch_base: FetchFn,
        *,
        delay_s: float,
        max_parallel: int,
        on_uploaded: UploadedFn,
    ) -> None:
        self.client = client
        self.journal = journal
        self.store = store
        self._fetch_base = fetch_base
        self.delay_s = delay_s
        self._limiter = trio.CapacityLimiter(max(max_parallel, 1))
        #: where small files upload in one request or two each, their time is
        #: round trips, not bandwidth: more of them run at once (tar x, cp -r).
        #: (Not where each is a session and a swap, with folder listings:
        #: there more at once only crowd the server.)
        factor = SMALL_PARALLEL_FACTOR if client is not None and client.whole_uploads else 1
        self._small_limiter = trio.CapacityLimiter(max(max_parallel, 1) * factor)
        self._on_uploaded = on_uploaded
        #: every staged file, by object id (dirty or held open)
        self.files: dict[str, LocalFile] = {}
        #: the ids among them of files not on the server yet (created here):
        #: the server shows none of them until their first upload lands
        self._unsent: set[str] = set()
        #: when each file's next upload is due (by id); the queues order them
        #: (heaps with stale entries, skipped when popped: no scan per wake-up).
        #: Urgent files (fsync, umount, a closed copy) start when due; the
        #: others wait, while files keep being created and closed (a burst:
        #: tar x, cp -r, a build), for a pause, or until they waited BURST_MAX_WAIT_S
        self._due: dict[str, float] = {}
        self._queue: list[tuple[float, int, str]] = []
        self._urgent_queue: list[tuple[float, int, str]] = []
        self._urgent: set[str] = set()
        self._queued = itertools.count()
        self._last_activity = -math.inf
        self._active: dict[str, _Active] = {}
        self._retry_delay: dict[str, float] = {}
        self._wakeup = trio.Event()
        #: set after every upload outcome; waiters re-check their condition
        self._outcome = trio.Event()
        self.uploads_done = 0
        #: files whose uploads must not start (a rename is moving them), with hold
        #: counts; by object, not id: an upload landing as a hold begins may change the id
        self._held: dict[int, int] = {}
        #: failures per file since the current drain started (None: not draining)
        self._drain_failures: dict[str, int] | None = None

    # ---- bookkeeping ---------------------------------------------------------
    def add(self, local: LocalFile) -> None:
        self.files[local.file_id] = local
        if is_unsent(local.file_id):
            self._unsent.add(local.file_id)

    def rekey(self, local: LocalFile, old_file_id: str) -> None:
        if self.files.get(old_file_id) is local:
            del self.files[old_file_id]
            self._unsent.discard(old_file_id)
        self.add(local)
        if old_file_id in self._urgent:
            self._urgent.discard(old_file_id)
            self._urgent.add(local.file_id)
        if old_file_id in self._due:
            self._set_due(local.file_id, self._due.pop(old_file_id))
        if old_file_id in self._active:  # a landed upload, finishing
            self._active[local.file_id] = self._active.pop(old_file_id)

    def closed(self, local: LocalFile) -> None:
        """Its last writer closed ``local``.  A large file written front to
        back (a copy) is uploaded at once: nobody edits it in place, and every
        second waited is a second more before it is on the server.  Anything
        else waits the quiet delay (save-then-rename, bursts of small files)."""
        self.note_activity()
        prompt = local.sequential and local.size >= PROMPT_UPLOAD_MIN
        self.schedule(local, 0 if prompt else None)

    def note_activity(self) -> None:
        """A file was created or closed: uploads that are not urgent wait for
        a pause (the kernel's requests then have the CPU and the server to
        themselves; the content is safe in the journal meanwhile)."""
        self._last_activity = trio.current_time()

    def schedule(self, local: LocalFile, delay_s: float | None = None) -> None:
        """Make ``local`` due for upload after ``delay_s`` (default: the quiet
        delay); 0 makes it urgent: it starts even in a burst of activity."""
        if not local.dirty:
            return
        if delay_s == 0:
            self._urgent.add(local.file_id)
        delay = self.delay_s if delay_s is None else delay_s
        self._set_due(local.file_id, trio.current_time() + delay)

    def _set_due(self, file_id: str, due: float) -> None:
        self._due[file_id] = due
        queue = self._urgent_queue if file_id in self._urgent else self._queue
        heapq.heappush(queue, (due, next(self._queued), file_id))
        self._wakeup.set()

    def cancel(self, local: LocalFile) -> None:
        """Stop the upload of ``local`` in flight, if any (it changed)."""
        active = self._active.get(local.file_id)
        if active is not None:
            active.scope.cancel()

    async def cancel_and_wait(self, local: LocalFile) -> None:
        """Cancel and wait until the server has released the upload (its lock)."""
        active = self._active.get(local.file_id)
        if active is not None:
            active.scope.cancel()
            await active.finished.wait()

    @asynccontextmanager
    async def paused(self, files: list[LocalFile]) -> AsyncIterator[None]:
        """No upload of ``files`` runs inside this block (those in flight are
        cancelled first); afterwards they are due again.  Namespace changes
        use it: an upload session locks its path on the server, and an
        upload started mid-rename would target the old path."""
        for local in files:
            self._held[id(local)] = self._held.get(id(local), 0) + 1
        try:
            for local in files:
                await self.cancel_and_wait(local)
            yield
        finally:
            for local in files:
                count = self._held.get(id(local), 1) - 1
                if count > 0:
                    self._held[id(local)] = count
                else:
                    self._held.pop(id(local), None)
                self.schedule(local)

    def is_held(self, local: LocalFile) -> bool:
        """Whether a rename is moving ``local`` (its upload must wait)."""
        return id(local) in self._held

    async def forget(self, local: LocalFile) -> None:
        """The file is gone (unlinked): nothing of it is to be uploaded."""
        await self.cancel_and_wait(local)
        drop_file(self, local)
        await self.journal.forget(local.file_id)

    def under(self, path: str) -> list[LocalFile]:
        """Staged files at or below ``path``."""
        return [local for local in self.files.values() if within(local.remote_path, path)]

    def relocate(self, moves: Mapping[str, str]) -> list[LocalFile]:
        """Subtrees moved on the server (old root -> new root, all at once):
        the staged files in them take their new paths now, with no await, so
        no other task ever sees half of an exchange.  Returns the dirty ones,
        whose journal records :meth:`record_paths` then updates."""
        return relocate_files(self.files.values(), moves)

    async def record_paths(self, files: list[LocalFile]) -> None:
        """Journal where ``files`` are now (read as each record is written:
        a later rename may have moved one again meanwhile)."""
        for local in files:
            await self.journal.move(local.file_id, local.remote_path)

    def release(self, local: LocalFile) -> bool:
        """Drop a clean file nobody writes; True if it left the write-back."""
        if local.dirty or local.writers or local.file_id in self._active:
            return False
        if self.files.get(local.file_id) is local:
            del self.files[local.file_id]
            self._unsent.discard(local.file_id)
        self._due.pop(local.file_id, None)
        self._urgent.discard(local.file_id)
        return True

    async def persist(self, local: LocalFile, *, again: bool = False) -> None:
        """Make the current content durable locally: staging fsync'd, then
        journaled (``again``: even if this generation is, e.g. on a new base)."""
        if not local.dirty or (local.journaled_generation == local.generation and not again):
            return
        generation = local.generation
        await self.journal.record(local, sync_first=True)
        local.journaled_generation = max(local.journaled_generation, generation)

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
                await self._outcome.wait()

    def _ensure_pending(self, local: LocalFile) -> None:
        """A safety net under fsync, which the kernel waits for holding the
        file's lock: a dirty file that no upload is running or due for would
        be waited for in vain.  Never expected, so logged as the bug it is."""
        if self.files.get(local.file_id) is not local:
            log.error("%s was missing from the write-back; uploading it now", local.remote_path)
            self.add(local)
        if local.file_id not in self._active and local.file_id not in self._due:
            log.error("no upload of %s was running or due; starting one", local.remote_path)
            self.schedule(local, 0)

    async def drain(self, on_progress: Callable[[list[UploadStatus]], None] | None = None) -> list[UploadStatus]:
        """Upload everything now and wait until nothing is pending, or until
        what is left keeps failing (a full drive, a server that is down);
        that stays journaled.  Returns what is left."""
        self._drain_failures = {}
        try:
            for local in list(self.files.values()):
                self.schedule(local, 0)
            while True:
                if on_progress is not None:
                    on_progress(self.status())
                left = [local for local in self.files.values() if local.dirty]
                if not left or all(self._given_up(local) for local in left):
                    break
                with trio.move_on_after(0.5):
                    await self._outcome.wait()
        finally:
            self._drain_failures = None
        left_over = self.status()
        if left_over:
            log.warning("%d upload(s) keep failing; their data stays staged and journaled", len(left_over))
        return left_over

    def _given_up(self, local: LocalFile) -> bool:
        failures = (self._drain_failures or {}).get(local.file_id, 0)
        if local.file_id in self._active or failures == 0:
            return False
        code = getattr(local.error, "errno", None)
        return failures >= DRAIN_ATTEMPTS or code in SLOW_RETRY_ERRNOS

    def unconfirmed(self, at: str | None = None) -> list[LocalFile]:
        """Dirty files whose upload is running or has failed, and those
        not on the server yet (created here): those the server may not show
        for a while (a backend without in-place overwrite replaces a file by
        deleting it and renaming the new content into place; the rename may
        fail).  Cheap: not every staged file, only those; ``at``: only
        those whose path is that (a lookup, for each new name of a tar x
        while hundreds of files wait for their first upload)."""
        return self._dirty_among(itertools.chain(self._active, self._retry_delay, self._unsent), at)

    def in_flight(self, at: str | None = None) -> list[LocalFile]:
        """Dirty files whose upload is running, or failed (its answer may have
        been lost): the server may show their new content already, under an
        id the filesystem has not heard of yet (a replace that gives a new id,
        a file created by its upload).  ``at``: only those at that path.
        Cheap: a few files (the uploads running and failing), not every staged one."""
        return self._dirty_among(itertools.chain(self._active, self._retry_delay), at)

    def _dirty_among(self, file_ids: Iterable[str], at: str | None) -> list[LocalFile]:
        files = self.files
        found = {}
        for file_id in file_ids:
            local = files.get(file_id)
            if local is not None and local.dirty and (at is None or local.remote_path == at):
                found[file_id] = local
        return list(found.values())

    def status(self) -> list[UploadStatus]:
        out = []
        for local in self.files.values():
            if not local.dirty:
                continue
            active = self._active.get(local.file_id)
            if active is not None:
                state, done = "uploading", active.done
            else:
                state, done = ("retrying" if local.error else "waiting"), 0
            out.append(UploadStatus(local.remote_path, local.size, state, done,
                                    str(local.error) if local.error else None, str(local.staging)))
        return out

    def describe(self) -> str:
        """The scheduler's state, file by file (for a task dump)."""
        now = trio.current_time()
        lines = [f"write-back: {len(self.files)} staged, {len(self._active)} uploading, {len(self._held)} held"]
        strays = {f: round(d - now, 1) for f, d in self._due.items() if f not in self.files}
        if strays:
            lines.append(f"  due but not staged: {strays}")
        for file_id, local in self.files.items():
            due = self._due.get(file_id)
            known_as = "" if local.file_id == file_id else f" (now {local.file_id})"
            lines.append(
                f"  {file_id}{known_as} {local.remote_path}: dirty={local.dirty} generation={local.generation} "
                f"journaled={local.journaled_generation} uploaded={local.uploaded_generation} "
                f"failed={local.failed_generation} writers={local.writers} "
                f"due={'-' if due is None else f'{due - now:+.1f} s'} active={file_id in self._active} "
                f"held={self.is_held(local)} "
                f"error={local.error!r}")
        return "\n".join(lines)

    # ---- the scheduler ---------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._schedule_unheard_closes)
            task_status.started()
            while True:
                now = trio.current_time()
                self._start_due(self._urgent_queue, now, 0.0, nursery)
                quiet_at = self._last_activity + BURST_QUIET_S
                # in a burst, only what waited too long already
                self._start_due(self._queue, now, 0.0 if now >= quiet_at else BURST_MAX_WAIT_S, nursery)
                wake = math.inf
                if (urgent := self._next_due(self._urgent_queue)) is not None:
                    wake = urgent
                if (ordinary := self._next_due(self._queue)) is not None:
                    wake = min(wake, min(max(ordinary, quiet_at), ordinary + BURST_MAX_WAIT_S))
                self._wakeup = trio.Event()
                with trio.move_on_at(wake):
                    await self._wakeup.wait()

    async def _schedule_unheard_closes(self) -> None:
        """Every dirty file that nobody writes is due or uploading; one whose
        close the write-back never heard of (the call failed after the data
        was journaled: the handler that closed it failed past that point) is
        scheduled here, rather than left until an fsync or the umount.  Only
        once seen at two checks in a row: a handler may be between closing
        a file and saying so (a symlink's, awaiting the journal)."""
        suspects: set[str] = set()
        while True:
            await trio.sleep(UNHEARD_CLOSE_CHECK_S)
            unheard = {file_id for file_id, local in self.files.items()
                       if local.dirty and not local.writers and file_id == local.file_id
                       and file_id not in self._due and file_id not in self._active}
            for file_id in unheard & suspects:
                local = self.files[file_id]
                log.warning("the close of %s went unheard; its upload is scheduled now", local.remote_path)
                self.schedule(local)
            suspects = unheard

    def _start_due(self, queue: list[tuple[float, int, str]], now: float, grace: float,
                   nursery: trio.Nursery) -> None:
        """Start the uploads in ``queue`` due ``grace`` seconds before ``now`` or earlier.
        (Compared as ``due + grace``, the wake-up time computed in run: the same
        sum in both places, or float rounding could keep run waking up at once.)"""
        while queue and queue[0][0] + grace <= now:
            due, _, file_id = heapq.heappop(queue)
            if self._due.get(file_id) != due:
                continue  # rescheduled, started or forgotten since
            if not self._may_start(file_id):
                continue  # stays due: queued again when its upload ends or its hold goes
            del self._due[file_id]
            self._urgent.discard(file_id)
            local = self.files.get(file_id)
            if local is not None and local.dirty:
                active = self._active[file_id] = _Active(trio.CancelScope(), local.generation, local.size)
                nursery.start_soon(self._upload, local, active, name=f"upload {file_id}")

    def _next_due(self, queue: list[tuple[float, int, str]]) -> float | None:
        """The earliest real due time in ``queue`` (stale entries dropped)."""
        while queue and self._due.get(queue[0][2]) != queue[0][0]:
            heapq.heappop(queue)
        return queue[0][0] if queue else None

    def _may_start(self, file_id: str) -> bool:
        local = self.files.get(file_id)
        return file_id not in self._active and (local is None or not self.is_held(local))

    async def _upload(self, local: LocalFile, active: _Active) -> None:
        try:
            with active.scope:
                limiter = self._small_limiter if local.size <= SMALL_UPLOAD_MAX else self._limiter
                async with limiter:
                    await self._attempt(local, active)
        except Exception as exc:
            # one file's trouble (a bug, local disk trouble) must not end the
            # other uploads, and with them the mount: it stays staged and retried
            log.exception("upload of %s failed unexpectedly", local.remote_path)
            self._failed(local, active.generation, exc)
        finally:
            # (by the current id: a landed upload may have changed it)
            if self._active.get(local.file_id) is active:
                del self._active[local.file_id]
            active.finished.set()
            if local.file_id in self._due:
                # became due while this upload ran (the scheduler passed it over): queue it again
                self._set_due(local.file_id, self._due[local.file_id])
            elif local.dirty:
                # cancelled by a change, or changed while uploading: again after the quiet delay.
                # (A failure is due already.  An error left by an earlier attempt is
                # no reason to stop: an fsync may be waiting for this upload, and
                # the change that cancelled it may be an open(O_TRUNC) that the
                # kernel holds until that fsync returns.)
                self.schedule(local)
            # the scheduler skipped this file while it was active: if it became
            # due meanwhile (a close during the upload), nothing else wakes it
            self._wakeup.set()
            self._notify()

    async def _attempt(self, local: LocalFile, active: _Active) -> None:
        generation = active.generation
        try:
            await self.persist(local)
            await self._fill(local)
            if local.generation != generation:
                return  # changed while we were downloading: the next attempt takes it
            active.total = local.size
            log.debug("uploading %s (%d bytes)", local.remote_path, local.size)

            def progress(n: int) -> None:
                active.done += n

            # what this generation's upload carries (the content's generation was checked just now)
            metadata = dict(local.metadata)
            entry = await self._send(local, progress, metadata)
        except (CloudfsError, OSError) as exc:  # OSError: the staging file itself (cache disk trouble)
            if local.generation != generation:
                # changed (truncated, say) while it was read for the upload:
                # the failure is that change's doing, as a cancellation would
                # have been (an fsync waiting for the new content must not
                # hear of it); the new content goes up next
                log.debug("upload of %s gave up on a content that changed: %s", local.remote_path, exc)
                return
            self._failed(local, generation, exc)
            return
        # The version is on the server: record it even if a change is cancelling
        # this upload right now, or the next upload would be based on the
        # version before it and be refused as a conflict with ourselves.
        with trio.CancelScope(shield=True):
            with trio.move_on_after(SETTLE_S):
                entry = await self._keep_exact_mtime(local, entry)
            kept = await self._landed(local, generation, entry, metadata)
        if kept is not None:
            # outside the shield: nobody waits for this copy, and the mount
            # ending (umount waits for its exit) must not wait for it either
            try:
                await self._keep_as_cache(kept, entry, local, generation)
            finally:
                os.close(kept)

    async def _fill(self, local: LocalFile) -> None:
        """Download what the upload needs of the base version.  If another
        client deleted or changed the file before we had all of it, those
        bytes are lost to us: they read as zeros and the content is uploaded
        as a new file (beside the changed one, under a conflict name), as a
        replay does; retrying would fail for ever."""
        try:
            await local.fill(self._fetch_base)
        except CloudfsError as exc:
            # ENOENT: no file at the path; ESTALE: a file of other content there
            base = local.base
            if exc.errno not in (errno.ENOENT, errno.ESTALE) or base is None:
                raise
            remote = await self._stat_or_none(local.remote_path)
            if remote is not None and (remote.file_id, remote.version) == (base.file_id, base.version):
                raise  # still there after all (renamed and back, say): retried as any failure
            log.warning("the content of %s that was never fetched is lost: it reads as zeros", local.remote_path)
            await self._lose_base(local, remote)

    async def _lose_base(self, local: LocalFile, remote: Entry | None) -> None:
        """The version ``local`` was based on is gone (``remote``: what is at
        its path now): what we never had of it reads as zeros, and the
        content goes up as a new file, never over someone else's."""
        local.present.add((0, local.size))
        local.base_limit = 0
        local.base = None
        if remote is None:
            log.warning("%s vanished from the server before pending changes could be uploaded; re-creating it",
                        local.remote_path)
            return
        path = local.remote_path
        local.remote_path = await self._conflict_path(path)
        log.warning("%s changed on the server before pending changes could be uploaded; they will be saved as %s",
                    path, local.remote_path)
        await self.journal.move(local.file_id, local.remote_path)

    async def _landed(self, local: LocalFile, generation: int, entry: Entry, metadata: dict[str, str]) -> int | None:
        """Record a landed upload; returns the staging file opened for the
        caller to copy into the read cache (a large one), or None."""
        self._retry_delay.pop(local.file_id, None)
        local.attempts.clear()
        local.sent_digests.clear()
        old_id = local.file_id
        # What the filesystem sees changes all at once, with no await between
        # the local file taking the new version (perhaps under a new id) and
        # the inode learning it: a close meanwhile would find a clean file the
        # write-back no longer knows by its old id, drop its staging, and show
        # the inode's old entry (a file read as empty after a swap).
        local.uploaded(entry, generation, metadata)
        if old_id != entry.file_id:
            self.rekey(local, old_id)
        # the staging file is exactly this version: keep it as clean cache
        # (opened now: the filesystem may drop the staging file just below)
        kept = self._copy_source(local, entry) if not local.dirty else None
        self.uploads_done += 1
        log.info("uploaded %s (%d bytes)", local.remote_path, local.size)
        try:
            self._on_uploaded(local, entry, old_id)
            # then the journal: a landed version's record goes, unless a newer
            # acknowledged generation stands on it (it is recorded on the new base first)
            if local.dirty and local.journaled_generation > generation:
                if not await self._journal_quietly(self.persist(local, again=True)):
                    return None  # the old record stays: a replay finds the content and its base
            if old_id != local.file_id:
                await self._unjournal(old_id)
            if not local.dirty:
                await self._unjournal(local.file_id)
            if kept is not None:
                self._notify()  # nobody waits for the cache copy (umount, fsync)
            handed, kept = kept, None
            return handed
        finally:
            if kept is not None:
                os.close(kept)

    def _copy_source(self, local: LocalFile, entry: Entry) -> int | None:
        """The staging file, opened to be copied into the read cache; a
        small one is copied right here (None: nothing left to do)."""
        if entry.size <= ADOPT_INLINE_MAX:
            self.store.adopt(cache_name(entry.file_id, entry.version, entry.size), entry.size, local.staging)
            return None
        try:
            return os.open(local.staging, os.O_RDONLY)
        except OSError:
            return None

    async def _keep_as_cache(self, source: int, entry: Entry, local: LocalFile, generation: int) -> None:
        """Copy a large just-uploaded version into the read cache in a worker
        thread (not on the event loop: hundreds of MiB), if the staged
        content did not change meanwhile.  A cancellation stops it between
        pieces, and nothing is cached."""
        store = self.store
        pages = range(-(-entry.size // store.page_size))
        reservation = store.reserve(cache_name(entry.file_id, entry.version, entry.size), entry.size, pages)
        if reservation is None:
            return
        try:
            try:
                for start in range(0, entry.size, CACHE_COPY_PIECE):
                    length = min(CACHE_COPY_PIECE, entry.size - start)
                    await trio.to_thread.run_sync(_copy_span, source, reservation.fd, start, length)
            except OSError as exc:
                log.info("read cache: cannot keep %s: %s", entry.path, exc)
                return
            if local.generation == generation:  # no write since: the copy is this version
                store.commit(reservation)
        finally:
            store.release(reservation)

    @staticmethod
    async def _journal_quietly(update: Awaitable[None]) -> bool:
        """A journal update that may fail (cache disk full) without failing
        the caller: it is logged, and False tells the caller to keep what
        the journal had."""
        try:
            await update
        except OSError as exc:
            log.warning("could not update the upload journal: %s", exc)
            return False
        return True

    async def _unjournal(self, file_id: str) -> None:
        """Drop a landed upload's journal record.  If the journal cannot be
        written (cache disk full), the record stays: a replay finds the
        content already on the server and uploads nothing."""
        await self._journal_quietly(self.journal.forget(file_id))

    async def _keep_exact_mtime(self, local: LocalFile, entry: Entry) -> Entry:
        """Servers may keep upload times to the millisecond; record finer ones
        (set by utimensat, e.g. ``cp -p``, ``rsync -a``) in metadata."""
        if local.mtime_ns % 1_000_000 == 0 or stored_mtime_ns(entry) == local.mtime_ns:
            return entry  # kept by the server, or recorded with the upload
        value = mtime_value(local.mtime_ns, entry.version)
        try:
            await self.client.set_metadata(entry.path, {MTIME_KEY: value})
        except CloudfsError as exc:
            log.debug("cannot record the exact mtime of %s: %s", entry.path, exc)
            return entry
        return dataclasses.replace(entry, metadata={**entry.metadata, MTIME_KEY: value})

    async def _send(self, local: LocalFile, progress: Callable[[int], None], metadata: dict[str, str]) -> Entry:
        """One upload, resolving a conflict with a changed or vanished remote file."""
        async def record_session(session_id: str) -> None:
            # only a crash needs it (to cancel the session it left); the
            # content itself is journaled: upload rather than wait for disk
            await self._journal_quietly(self.journal.set_session(local.file_id, session_id))

        async def upload(path: str, replace: Entry | None) -> Entry:
            tag = secrets.token_hex(8)
            local.attempts[tag] = (local.size, local.mtime_ns)
            # hashed as it was written, if it was (else None: the upload reads it back if it needs a hash)
            hashed = local.hashed()
            if local.size <= CONTENT_CHECK_MAX:
                # a small upload may land untagged (see _holds_untagged): know it by content
                local.sent_digests.add(hashed.hexdigest if hashed else await _digest(local.staging, local.size))
            return await self.client.upload(path, local.staging, mtime_ns=local.mtime_ns, replace=replace,
                                            progress=progress, on_session=record_session, tag=tag,
                                            metadata=metadata, hashed=hashed)

        try:
            return await upload(local.remote_path, local.base)
        except VersionConflict:
            pass
        except AlreadyExists:
            if local.base is not None:
                raise
        # the version we based on changed, or a name we meant to create (a
        # conflict copy, a file re-created after it vanished) is taken
        remote = await self._stat_or_none(local.remote_path)
        if remote is not None and (self._is_own_upload(local, remote) or await self._holds_untagged(local, remote)):
            # not someone else's edit: an earlier attempt of ours landed, and
            # every answer about it was lost (a dropped connection, a restart)
            log.info("an earlier upload of %s landed unconfirmed; uploading the current content over it",
                     local.remote_path)
            local.base = remote
            return await upload(local.remote_path, remote)
        # the file changed on the server since we based our content on it: keep both
        target = await self._conflict_path(local.remote_path)
        log.warning(
            "%s changed on the server while local changes were pending; "
            "keeping the server's version and saving the local one as %s",
            local.remote_path, target,
        )
        local.remote_path = target
        local.base = None
        await self.journal.move(local.file_id, target)
        return await upload(target, None)

    @staticmethod
    def _is_own_upload(local: LocalFile, remote: Entry) -> bool:
        """Whether the server's current version of the file is one that an
        unconfirmed attempt of ours uploaded: its tag, size and mtime (the
        tag alone could be left over on the file under another client's
        version; mtimes may be kept to the second only)."""
        attempt = local.attempts.get(remote.metadata.get(UPLOAD_TAG_KEY, ""))
        if attempt is None or remote.uploading or remote.is_dir:
            return False
        size, mtime_ns = attempt
        remote_mtime_ns = stored_mtime_ns(remote) or remote.mtime_ns
        return remote.size == size and abs(remote_mtime_ns - mtime_ns) < 1_000_000_000

    async def _holds_untagged(self, local: LocalFile, remote: Entry) -> bool:
        """Whether the server's current version is a small one of ours that
        never got its tag: an upload in one request (the client's
        ``put_whole``) whose answer was lost tags the version only after it
        landed.  Told by content (SHA-256), so small files only.  Such an
        upload replaces its base object in place: another object with equal
        content (empty files, say) is someone else's, and uploading over it
        would take the id of a file the write-back may be staging too.  A new
        file (no base) made by such an upload is a new object: one this
        write-back stages under its own id is not it."""
        base = local.base
        if base is None and remote.file_id in self.files:
            return False
        if base is not None and remote.file_id != base.file_id:
            return False
        if not local.sent_digests or remote.size > CONTENT_CHECK_MAX or remote.is_dir or remote.uploading:
            return False
        return await self._remote_digest(remote) in local.sent_digests

    async def _conflict_path(self, path: str) -> str:
        """A free name beside ``path`` for a conflict copy.  Free on the
        server, and not the path of another staged file of ours (several
        files losing their place at once would pick the same name, then
        conflict with each other).  The caller takes it with no await in
        between.  A conflict copy that conflicts again is named after the
        original, not nested."""
        folder, name = posixpath.split(path)
        stem, ext = posixpath.splitext(name)
        stem = CONFLICT_SUFFIX.sub("", stem) or stem
        stamp = time.strftime("%Y-%m-%d %H%M%S")
        for n in range(1, 100):
            suffix = f" (conflict {stamp})" if n == 1 else f" (conflict {stamp} {n})"
            candidate = posixpath.join(folder, f"{stem}{suffix}{ext}")
            if self._claimed(candidate):
                continue
            if await self._stat_or_none(candidate) is None and not self._claimed(candidate):
                return candidate
        raise CloudfsError(f"no free conflict name for {path}", errno=errno.EEXIST)

    def _claimed(self, path: str) -> bool:
        return any(local.remote_path == path for local in self.files.values())

    def _failed(self, local: LocalFile, generation: int, exc: BaseException) -> None:
        local.error = exc
        local.failed_generation = max(local.failed_generation, generation)
        code = getattr(exc, "errno", None)
        delay = self._retry_delay.get(local.file_id, RETRY_MIN_S / 2) * 2
        if code in SLOW_RETRY_ERRNOS:
            delay = RETRY_MAX_S
            log.error(
                "upload of %s failed: %s; its data is kept in %s and will be retried%s",
                local.remote_path, exc, local.staging, FULL_DRIVE_HINT if code in (errno.ENOSPC, errno.EDQUOT) else "",
            )
        else:
            log.warning("upload of %s failed (%s); retrying in %.0f s", local.remote_path, exc, delay)
        delay = min(delay, RETRY_MAX_S)
        self._retry_delay[local.file_id] = delay
        if self._drain_failures is not None:
            self._drain_failures[local.file_id] = self._drain_failures.get(local.file_id, 0) + 1
            delay = min(delay, DRAIN_RETRY_S)
        self._set_due(local.file_id, trio.current_time() + delay)

    def _notify(self) -> None:
        self._outcome.set()
        self._outcome = trio.Event()

    # ---- crash recovery ----------------------------------------------------------
    async def replay(self, records: list[Record]) -> int:
        """Re-stage what a previous run left pending, before the mount starts.

        Returns how many files were re-queued; their uploads run once
        :meth:`run` is going.  Content whose remote base changed or vanished
        meanwhile is uploaded under a conflict name (or re-created), never
        over someone else's version.
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
                await self.journal.forget(rec.file_id)
                continue
            if rec.session_id:
                # the previous run died mid-upload: its session still locks the file
                try:
                    await self.client.cancel_upload(rec.path, rec.session_id)
                except CloudfsError as exc:
                    log.warning("could not cancel the interrupted upload of %s: %s", rec.path, exc)
            local = LocalFile(
                file_id=rec.file_id, remote_path=rec.path, staging=rec.staging, size=rec.size,
                mtime_ns=rec.mtime_ns, base_limit=rec.base_limit, present=rec.present, dirty=True,
                metadata=dict(rec.metadata),
            )
            remote = await self._stat_or_none(rec.path)
            if remote is not None and remote.file_id == rec.file_id and remote.version == (rec.base_version or ""):
                local.base = remote  # nothing changed remotely: a plain new version
            elif remote is not None and await self._already_there(remote, rec):
                # the previous run died after its last chunk landed: nothing to redo
                log.info("%s was already uploaded before the previous run stopped", rec.path)
                await self.journal.forget(rec.file_id)
                rec.staging.unlink(missing_ok=True)
                continue
            else:
                if remote is not None or not is_unsent(rec.file_id):
                    await self._lose_base(local, remote)  # (a file created here never had a base)
                if not is_unsent(rec.file_id):
                    local.file_id = UNSENT_PREFIX + rec.file_id
                    await self.journal.rekey(rec.file_id, local.file_id)
            local.journaled_generation = local.generation
            self.add(local)
            self.schedule(local, 0)
            count += 1
            log.info("replaying pending upload of %s (%d bytes)", local.remote_path, rec.size)
        return count

    async def _already_there(self, remote: Entry, rec: Record) -> bool:
        """Whether the server's current content of the file is exactly the
        staged bytes (only done after a crash).  The object id may differ:
        on some servers a replaced file is a new object."""
        return await self._holds(remote, rec.staging, rec.size, rec.present)

    async def _holds(self, remote: Entry, staging: Path, size: int, present: SpanSet) -> bool:
        """Whether ``remote``'s content is exactly the staged bytes (SHA-256)."""
        if remote.size != size or remote.uploading:
            return False
        if present.missing((0, size)):
            return False  # parts of our content were never local: it cannot be ours alone
        local_hash = await trio.to_thread.run_sync(_sha256_of, staging)
        return await self._remote_digest(remote) == local_hash

    async def _remote_digest(self, remote: Entry) -> str:
        digest = hashlib.sha256()
        async with aclosing(self.client.stream(remote, 0, remote.size)) as pieces:
            async for piece in pieces:
                digest.update(piece)
        return digest.hexdigest()

    async def _stat_or_none(self, path: str) -> Entry | None:
        try:
            return await self.client.stat(path)
        except CloudfsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
