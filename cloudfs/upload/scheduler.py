"""The write-back's scheduler: when each staged file's upload starts.

Each dirty file gets a *due time*.  Closing a file (or, for a file held open,
a pause in writing once it holds a lot of dirty data) sets it a short quiet
delay ahead, so save-then-rename patterns and bursts of small writes
coalesce into one upload; ``fsync`` makes it due at once (urgent).  A bounded
number of uploads run in parallel.  A change to a file cancels its upload in
flight and the file becomes due again; a rename holds the uploads of the
files it moves.  What one upload does is the caller's ``attempt``; a failure
is due again when the retry policy says.

It knows files by object id, path and size, never inodes or the server.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from cloudfs.upload.registry import StagedFiles
from cloudfs.upload.retry import Retries
from cloudfs.upload.staging import LocalFile

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")

#: files created or closed less than this apart make a burst: ordinary uploads wait for its end...
BURST_QUIET_S = 0.3
#: ...but never longer than this past their due time
BURST_MAX_WAIT_S = 10.0
#: a file written front to back and at least this large is uploaded as soon as it is closed
PROMPT_UPLOAD_MIN = 8 << 20
#: files up to this size count as small: their uploads are bound by round trips...
SMALL_UPLOAD_MAX = 1 << 20
#: ...and this many times ``max_parallel`` of them run at once
SMALL_PARALLEL_FACTOR = 4
#: how often the scheduler checks that every closed dirty file is due or uploading
UNHEARD_CLOSE_CHECK_S = 5.0


@dataclass
class Active:
    """One upload in flight."""

    scope: trio.CancelScope
    generation: int
    total: int
    done: int = 0
    finished: trio.Event = field(default_factory=trio.Event)


AttemptFn = Callable[[LocalFile, "Active"], Awaitable[None]]


class Scheduler:
    def __init__(
        self,
        files: StagedFiles,
        retries: Retries,
        attempt: AttemptFn,
        *,
        delay_s: float,
        max_parallel: int,
        small_parallel: int,
    ) -> None:
        self.files = files
        self.retries = retries
        self._attempt = attempt
        self.delay_s = delay_s
        self._limiter = trio.CapacityLimiter(max(max_parallel, 1))
        self._small_limiter = trio.CapacityLimiter(max(small_parallel, 1))
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
        self._active: dict[str, Active] = {}
        self._wakeup = trio.Event()
        #: set after every upload outcome; waiters re-check their condition
        self._outcome = trio.Event()
        #: files whose uploads must not start (a rename is moving them), with hold
        #: counts; by object, not id: an upload landing as a hold begins may change the id
        self._held: dict[int, int] = {}

    # ---- what the write-back asks ---------------------------------------------
    def uploading(self, file_id: str) -> Active | None:
        """The upload of ``file_id`` in flight, if any."""
        return self._active.get(file_id)

    @property
    def uploading_ids(self) -> Collection[str]:
        """The ids of the files whose uploads are in flight."""
        return self._active.keys()

    def pending(self, file_id: str) -> bool:
        """Whether an upload of ``file_id`` is running or due."""
        return file_id in self._active or file_id in self._due

    async def outcome(self) -> None:
        """Wait for the next upload outcome (or a file dropped)."""
        await self._outcome.wait()

    def forget(self, file_id: str) -> None:
        """``file_id`` is no longer due (it is gone, or clean)."""
        self._due.pop(file_id, None)
        self._urgent.discard(file_id)

    def rekey(self, old_file_id: str, file_id: str) -> None:
        """A landed upload gave a file a new id: its queue state follows it."""
        if old_file_id in self._urgent:
            self._urgent.discard(old_file_id)
            self._urgent.add(file_id)
        if old_file_id in self._due:
            self._set_due(file_id, self._due.pop(old_file_id))
        if old_file_id in self._active:  # a landed upload, finishing
            self._active[file_id] = self._active.pop(old_file_id)

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

    def failed(self, local: LocalFile, generation: int, exc: BaseException) -> None:
        """An upload of ``local`` failed: it is due again when the retry policy says."""
        self._set_due(local.file_id, trio.current_time() + self.retries.failed(local, generation, exc))

    def notify(self) -> None:
        """Wake those waiting for an upload outcome (they re-check their condition)."""
        self._outcome.set()
        self._outcome = trio.Event()

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
                active = self._active[file_id] = Active(trio.CancelScope(), local.generation, local.size)
                nursery.start_soon(self._upload, local, active, name=f"upload {file_id}")

    def _next_due(self, queue: list[tuple[float, int, str]]) -> float | None:
        """The earliest real due time in ``queue`` (stale entries dropped)."""
        while queue and self._due.get(queue[0][2]) != queue[0][0]:
            heapq.heappop(queue)
        return queue[0][0] if queue else None

    def _may_start(self, file_id: str) -> bool:
        local = self.files.get(file_id)
        return file_id not in self._active and (local is None or not self.is_held(local))

    async def _upload(self, local: LocalFile, active: Active) -> None:
        try:
            with active.scope:
                limiter = self._small_limiter if local.size <= SMALL_UPLOAD_MAX else self._limiter
                async with limiter:
                    await self._attempt(local, active)
        except Exception as exc:
            # one file's trouble (a bug, local disk trouble) must not end the
            # other uploads, and with them the mount: it stays staged and retried
            log.exception("upload of %s failed unexpectedly", local.remote_path)
            self.failed(local, active.generation, exc)
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
            self.notify()
