"""The upload engine: one local file -> one remote file, through an upload
session, in chunks.

* One session per upload.  Replacing a file uploads a new *version* (the
  dialect sends the expected previous one), so a failure at any point leaves
  the old content current: the new version only becomes visible when the
  last chunk completes the session.
* Chunks have the server's size and are streamed from the local file (never
  the whole file in memory).  Up to ``chunk_concurrency`` (the policy's,
  capped by ``upload_parallelism``) are in flight; the last chunk is sent
  alone after all the others succeeded where the backend needs it
  (``capabilities.last_chunk_alone``: Cloudreve < 4.18 completes a session
  when the last index arrives, whatever is missing).
* A backend that takes the whole file's SHA-256 up front
  (``capabilities.whole_file_hash``) gets it with the SHA-256 states every
  few MiB (:mod:`sha256state`): the caller's, hashed while the file was
  written, or read back from the file here.
* Each chunk is retried by the dialect (re-sending is accepted).  An
  expired session (``SessionExpired``) restarts the whole upload, a bounded number of
  times.  On failure or cancellation the session is cancelled (shielded,
  with its own short deadline) so the placeholder, lock and quota
  reservation go away.
* The two requests whose outcome must never be lost to a cancellation are
  shielded (with a deadline): opening the session (the server then holds a
  lock on the file that only a cancel with the session's id releases) and
  completing it (the server then has a new version that the caller must
  base its next upload on).  A cancellation meanwhile takes effect right
  after them.
* A small file (a new version, or a new file) goes up in one request where
  the dialect has one (:meth:`Dialect.put_whole`): no session to open,
  complete or cancel.
* Direct-to-cloud storage policies are refused with
  ``UnsupportedStoragePolicy``.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import trio

from cloudfs.client.bodies import FileSlice
from cloudfs.client.dialect import Dialect, RestartUpload, UploadSession
from cloudfs.client.models import UPLOAD_TAG_KEY, Entry
from cloudfs.client.plan import Chunk, chunk_concurrency, plan_chunks, split_last
from cloudfs.client.settings import ClientSettings
from cloudfs.client.sha256state import HashStates, hash_file
from cloudfs.client.tasks import run_all
from cloudfs.errors import BackendRefusal, CloudfsError, SessionExpired, TransportError, UnsupportedStoragePolicy

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]
#: told each new session's id before any chunk is sent (so a crash can cancel it later)
SessionFn = Callable[[str], Awaitable[None]]


class _Restart(Exception):
    """The session expired mid-upload: start again with a new one."""


@contextmanager
def _settling(seconds: float) -> Iterator[None]:
    """A shield for a request the server acts on whether or not we wait for
    its answer: cancelling the caller takes effect after it, not during.  If
    its own deadline passes the request is abandoned after all (raised as a
    timeout, never as a silent cancellation)."""
    with trio.CancelScope(shield=True, relative_deadline=seconds) as scope:
        yield
    if scope.cancelled_caught:
        raise CloudfsError("the server did not answer in time", errno=errno.ETIMEDOUT)


async def _hash_states_of(fd: int, size: int) -> HashStates:
    """The SHA-256 of the file's first ``size`` bytes with its states (in a
    thread: the hashing releases the GIL)."""
    try:
        return await trio.to_thread.run_sync(hash_file, fd, size)
    except OSError as exc:
        raise CloudfsError(f"cannot hash the local file: {exc.strerror or exc}", errno=errno.EIO) from None


class Uploader:
    def __init__(self, dialect: Dialect, settings: ClientSettings, stat: Callable[[str], Awaitable[Entry]]) -> None:
        self.dialect = dialect
        self.settings = settings
        self._stat = stat
        #: sessions a failed attempt could not cancel (the server was away), by
        #: target path: on v4 each still locks its file against the next session
        self._uncancelled: dict[str, UploadSession] = {}

    async def upload(self, path: str, source: Path, *, mtime_ns: int | None, replace: Entry | None,
                     progress: ProgressFn | None, on_session: SessionFn | None = None,
                     tag: str | None = None, metadata: Mapping[str, str] | None = None,
                     hashed: HashStates | None = None) -> Entry:
        try:
            # on the loop: opening a local file is a few microseconds, and the
            # hop to a worker thread and back costs far more (milliseconds each
            # way on a busy machine, once per small file a tar x or rsync made)
            fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise CloudfsError(f"cannot read {source}: {exc.strerror}", errno=exc.errno or errno.EIO) from None
        try:
            size = os.fstat(fd).st_size
            mtime_ms = mtime_ns // 1_000_000 if mtime_ns is not None else None
            done: set[int] = set()  # chunk indexes already reported to progress
            restarts = 0
            stale = self._uncancelled.pop(path, None)
            if stale is not None and not await self._cancel(stale, path):
                # still unanswered: a session opened now would meet the old one's
                # placeholder and lock (a name taken by someone else, by all it can tell)
                raise TransportError(f"upload of {path}: the server has not taken the cancel of "
                                     "its previous session yet")
            whole_max = self.settings.whole_upload_max if replace is not None else self.settings.whole_create_max
            if size <= whole_max and self.dialect.info.capabilities.whole_uploads:
                entry = await self._put_whole(path, fd, size, replace, mtime_ns, tag, metadata)
                if entry is not None:
                    if progress is not None and size:
                        progress(size)
                    return entry
            # a backend that takes the whole file's SHA-256 up front (capabilities.whole_file_hash):
            # the caller's (hashed as the file was written) if it is of this content's size, else read back
            states: HashStates | None = None
            if self.dialect.info.capabilities.whole_file_hash:
                if hashed is not None and hashed.size == size:
                    states = hashed
                    log.debug("SHA-256 of %s: hashed as it was written", path)
                else:
                    states = await _hash_states_of(fd, size)
                    log.debug("SHA-256 of %s: read back from the file", path)
            while True:
                try:
                    with _settling(2 * self.settings.deadline_s):
                        session = await self.dialect.open_upload(path, size, mtime_ms=mtime_ms,
                                                                 replace=replace, tag=tag, metadata=metadata,
                                                                 sha256=states.hexdigest if states else None,
                                                                 hash_states=states)
                    if session.complete_at_open:
                        # (no checkpoint since the open: a cancellation cannot come between)
                        return await self._finish_at_open(session, replace, progress, on_session)
                    await self._run_session(path, session, fd, replace, progress, done, on_session, tag)
                    # whatever finishes the upload (v3: the swap into place)
                    with _settling(2 * self.settings.deadline_s):
                        return await self.dialect.complete_upload(session, replace)
                except _Restart:
                    restarts += 1
                    if restarts > self.settings.max_upload_restarts:
                        raise CloudfsError(f"upload of {path}: the upload session keeps expiring",
                                           errno=errno.EIO) from None
                    log.warning("upload session for %s expired mid-upload; starting again", path)
        finally:
            os.close(fd)

    async def _finish_at_open(self, session: UploadSession, replace: Entry | None, progress: ProgressFn | None,
                              on_session: SessionFn | None) -> Entry:
        """The server made the file whole at open: what finishes the upload,
        shielded as a completing step is.  Cancelled instead, a new file
        would be left on the server at its name, the caller never told: a
        file renamed or unlinked here meanwhile would stay there under the
        old name, and the next upload of the file would find its own content
        taken for someone else's."""
        with _settling(2 * self.settings.deadline_s):
            if on_session is not None:
                await on_session(session.journal_ref)  # (what a crash's replay looks at)
            entry = await self.dialect.complete_upload(session, replace)
        if progress is not None and session.size:
            progress(session.size)
        return entry

    async def _put_whole(self, path: str, fd: int, size: int, replace: Entry | None, mtime_ns: int | None,
                         tag: str | None, metadata: Mapping[str, str] | None) -> Entry | None:
        """A small new version in one request, where the dialect has one."""
        content = os.pread(fd, size, 0)  # small, and a staging file is in the page cache
        if len(content) != size:
            raise CloudfsError(f"{path}: the local file changed while being read", errno=errno.EIO)
        values = {**(metadata or {}), **({UPLOAD_TAG_KEY: tag} if tag is not None else {})}
        with _settling(self.settings.transfer_deadline(size) + 2 * self.settings.deadline_s):
            # shielded: once sent, the new version may be current whether or not we hear of it
            return await self.dialect.put_whole(path, content, replace=replace, mtime_ns=mtime_ns, metadata=values)

    async def _run_session(self, path: str, session: UploadSession, fd: int, replace: Entry | None,
                           progress: ProgressFn | None, done: set[int], on_session: SessionFn | None,
                           tag: str | None) -> None:
        try:
            if on_session is not None:
                await on_session(session.journal_ref)
            if not session.through_server:
                raise UnsupportedStoragePolicy(
                    f"{session.path}: the storage policy ({session.policy_type}) uploads directly to the "
                    "cloud storage, which cloudfs does not support")
            await self._send_chunks(session, fd, progress, done)
        except RestartUpload as exc:
            # the server cannot go on with this session (v3: lost chunks)
            await self._cancel(session, path)
            raise _Restart() from exc
        except SessionExpired as exc:
            if await self._completed(session, replace, tag):
                return  # the lost answer was the completing one
            await self._cancel(session, path)  # releases what an expired session still holds
            raise _Restart() from exc
        except BaseException:
            await self._cancel(session, path)
            raise

    async def _send_chunks(self, session: UploadSession, fd: int, progress: ProgressFn | None,
                           done: set[int]) -> None:
        chunks = plan_chunks(session.size, session.chunk_size)
        if self.dialect.info.capabilities.last_chunk_alone:
            head, last = split_last(chunks)
        else:  # a call of its own completes the upload: the last part goes with the others
            head, last = chunks, None
        parallel = chunk_concurrency(session.concurrency, self.settings.upload_parallelism)

        async def send(chunk: Chunk) -> None:
            started = trio.current_time()
            await self.dialect.send_chunk(session, chunk.index, chunk.length, self._body(fd, chunk),
                                          deadline=self.settings.transfer_deadline(chunk.length))
            log.debug("chunk %d (%d bytes) of %s sent in %.3f s", chunk.index, chunk.length, session.path,
                      trio.current_time() - started)
            if chunk.index not in done:
                done.add(chunk.index)
                if progress is not None and chunk.length:
                    progress(chunk.length)

        if head:
            queue: Iterator[Chunk] = iter(head)

            async def worker() -> None:
                # workers take chunks in order, so the file is written mostly front to back
                for chunk in queue:
                    await send(chunk)

            await run_all([worker] * min(parallel, len(head)))
        # a cancellation that came as the last of the other chunks landed (no
        # checkpoint after it) takes effect here, before the completing step,
        # which it could no longer stop
        await trio.lowlevel.checkpoint()
        if last is not None:
            with _settling(self.settings.transfer_deadline(last.length) + self.settings.deadline_s):
                await send(last)  # alone and last: it completes the session
        log.debug("uploaded %d chunk(s) of %s", len(chunks), session.path)

    def _body(self, fd: int, chunk: Chunk) -> Callable[[], FileSlice] | bytes:
        if chunk.length == 0:
            return b""
        piece_size = max(self.settings.upload_read_size, 64 << 10)
        return lambda: FileSlice(fd, chunk.offset, chunk.length, piece_size)

    async def _completed(self, session: UploadSession, replace: Entry | None, tag: str | None) -> bool:
        """Whether the session completed although its last answer was lost
        (a re-sent last chunk then finds the session gone: ``SessionExpired``)."""
        try:
            entry = await self._stat(session.path)
        except CloudfsError:
            return False
        if entry.uploading or entry.is_dir or entry.size != session.size:
            return False
        if tag is not None and UPLOAD_TAG_KEY in entry.metadata:
            return entry.metadata[UPLOAD_TAG_KEY] == tag
        return replace is None or entry.version != replace.version

    async def _cancel(self, session: UploadSession, path: str) -> bool:
        """Cancel ``session`` (of an upload to ``path``); if the server cannot
        be told now, the next upload to ``path`` tries again first (False)."""
        # shielded: this also runs when the upload itself was cancelled
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.settings.deadline_s
            try:
                await self.dialect.cancel_upload(session)
                log.debug("cancelled the upload session for %s", session.path)
            except BackendRefusal as exc:
                # answered: gone already (expired, say), or refused for good
                log.warning("could not cancel the upload session for %s: %s", session.path, exc)
            except CloudfsError as exc:
                # unanswered (the server is away): the next upload of the file tries again first
                log.warning("could not cancel the upload session for %s (%s); will try again before the "
                            "next upload of it", session.path, exc)
                self._uncancelled[path] = session
        if scope.cancelled_caught:
            log.warning("cancelling the upload session for %s timed out; will try again before the next "
                        "upload of it", session.path)
            self._uncancelled[path] = session
        return path not in self._uncancelled
