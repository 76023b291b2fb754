"""One upload attempt of a staged file, and what follows when it lands.

An attempt makes the content durable (journal), downloads what it still
needs of the base version, and uploads it; a conflict with a version changed
on the server is settled by the conflict policy (conflicts.py).  When the
upload lands, the file takes the new version (perhaps under a new id) and the
filesystem hears of it in the same step; then the journal record goes, and
the staging file is kept as clean read cache.  A failure goes to the
scheduler, which retries it.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import trio

from cloudfs.cache.blocks import BlockStore, cache_name
from cloudfs.cache.ranges import Span
from cloudfs.client.api import Client
from cloudfs.client.models import MTIME_KEY, Entry, mtime_value, stored_mtime_ns
from cloudfs.errors import AlreadyExists, CloudfsError, VersionConflict
from cloudfs.upload import durability
from cloudfs.upload.conflicts import CONTENT_CHECK_MAX, Conflicts, staged_digest
from cloudfs.upload.journal import Journal
from cloudfs.upload.retry import Retries
from cloudfs.upload.scheduler import Active
from cloudfs.upload.staging import FetchFn, LocalFile

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")

#: after an upload landed, recording its exact mtime may delay a cancellation this long
SETTLE_S = 30.0
#: a just-uploaded version up to this size is copied into the read cache on the event
#: loop; a larger one in a worker thread, after its upload is reported done
ADOPT_INLINE_MAX = 4 << 20
#: ...in pieces of this size: a cancellation (the mount ending) waits for one piece, not the whole file
CACHE_COPY_PIECE = 32 << 20

#: the filesystem's news of a landed upload: (the file, its new entry, the id it had)
UploadedFn = Callable[[LocalFile, Entry, str], None]


async def _no_filesystem(entry: Entry, span: Span) -> bytes:
    raise CloudfsError("no filesystem is attached to the write-back to fetch a base from", errno=errno.EIO)


@dataclass
class Hooks:
    """What the filesystem gives the write-back (see ``WriteBack.attach``)."""

    #: fetches bytes of a staged file's base version (through the read cache)
    fetch_base: FetchFn = _no_filesystem
    #: hears of each landed upload, in the same step as the file takes its new version
    on_uploaded: UploadedFn = lambda local, entry, old_file_id: None


#: an upload failed: (the file, the generation it carried, the error)
FailedFn = Callable[[LocalFile, int, BaseException], None]
#: a landed upload gave a file a new id: (the file, its old id)
RekeyFn = Callable[[LocalFile, str], None]


def _copy_span(source: int, target: int, start: int, length: int) -> None:
    """Copy ``length`` bytes at ``start`` between two files, same offsets (in the kernel)."""
    done = 0
    while done < length:
        n = os.copy_file_range(source, target, length - done, start + done, start + done)
        if n == 0:
            raise OSError(errno.EIO, "the staging file is shorter than its version")
        done += n


class Uploader:
    def __init__(
        self,
        client: Client,
        journal: Journal,
        store: BlockStore,
        conflicts: Conflicts,
        retries: Retries,
        hooks: Hooks,
        *,
        failed: FailedFn,
        rekey: RekeyFn,
        notify: Callable[[], None],
    ) -> None:
        self.client = client
        self.journal = journal
        self.store = store
        self.conflicts = conflicts
        self.retries = retries
        self.hooks = hooks
        self._failed = failed
        self._rekey = rekey
        self._notify = notify
        self.uploads_done = 0

    async def attempt(self, local: LocalFile, active: Active) -> None:
        """Upload ``local`` once (the generation ``active`` started with)."""
        generation = active.generation
        try:
            await durability.persist(self.journal, local)
            if self.journal.moving(local):
                # renamed with no request since: the upload creates it at its new
                # path, and a replay after it landed must not upload it again at the old one
                await self.journal.flush()
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
            await local.fill(self.hooks.fetch_base)
        except CloudfsError as exc:
            # ENOENT: no file at the path; ESTALE: a file of other content there
            base = local.base
            if exc.errno not in (errno.ENOENT, errno.ESTALE) or base is None:
                raise
            remote = await self.conflicts.stat_or_none(local.remote_path)
            if remote is not None and (remote.file_id, remote.version) == (base.file_id, base.version):
                raise  # still there after all (renamed and back, say): retried as any failure
            log.warning("the content of %s that was never fetched is lost: it reads as zeros", local.remote_path)
            await self.conflicts.lose_base(local, remote)

    async def _landed(self, local: LocalFile, generation: int, entry: Entry, metadata: dict[str, str]) -> int | None:
        """Record a landed upload; returns the staging file opened for the
        caller to copy into the read cache (a large one), or None."""
        self.retries.forget(local.file_id)
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
            self._rekey(local, old_id)
        # the staging file is exactly this version: keep it as clean cache
        # (opened now: the filesystem may drop the staging file just below)
        kept = self._copy_source(local, entry) if not local.dirty else None
        self.uploads_done += 1
        log.info("uploaded %s (%d bytes)", local.remote_path, local.size)
        try:
            self.hooks.on_uploaded(local, entry, old_id)
            # then the journal: a landed version's record goes, unless a newer
            # acknowledged generation stands on it (it is recorded on the new base first)
            if local.dirty and local.journaled_generation > generation:
                if not await durability.journal_quietly(durability.persist(self.journal, local, again=True)):
                    return None  # the old record stays: a replay finds the content and its base
            if old_id != local.file_id:
                await durability.unjournal(self.journal, old_id)
            if not local.dirty:
                await durability.unjournal(self.journal, local.file_id)
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

    async def _keep_exact_mtime(self, local: LocalFile, entry: Entry) -> Entry:
        """Servers may keep upload times to the millisecond, and only after
        the epoch (an upload's time of 0 or less means "now"); record finer
        or earlier ones (set by utimensat, e.g. ``cp -p``, ``rsync -a``,
        ``tar x`` of an archive made with no times) in metadata."""
        kept_by_server = local.mtime_ns > 0 and local.mtime_ns % 1_000_000 == 0
        if kept_by_server or stored_mtime_ns(entry) == local.mtime_ns:
            return entry  # kept by the server, or recorded with the upload
        value = mtime_value(local.mtime_ns, entry.version)
        try:
            await self.client.set_metadata(entry, {MTIME_KEY: value})  # (the Entry: no lookup by path)
        except CloudfsError as exc:
            log.debug("cannot record the exact mtime of %s: %s", entry.path, exc)
            return entry
        return dataclasses.replace(entry, metadata={**entry.metadata, MTIME_KEY: value})

    async def _send(self, local: LocalFile, progress: Callable[[int], None], metadata: dict[str, str]) -> Entry:
        """One upload, resolving a conflict with a changed or vanished remote file."""
        async def record_session(session_id: str) -> None:
            # only a crash needs it (to cancel the session it left); the
            # content itself is journaled: upload rather than wait for disk
            await durability.journal_quietly(self.journal.set_session(local.file_id, session_id))

        async def upload(path: str, replace: Entry | None) -> Entry:
            tag = secrets.token_hex(8)
            local.attempts[tag] = (local.size, local.mtime_ns)
            # hashed as it was written, if it was (else None: the upload reads it back if it needs a hash)
            hashed = local.hashed()
            if local.size <= CONTENT_CHECK_MAX:
                # a small upload may land untagged (see Conflicts.holds_untagged): know it by content
                local.sent_digests.add(hashed.hexdigest if hashed else await staged_digest(local.staging, local.size))
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
        conflicts = self.conflicts
        remote = await conflicts.stat_or_none(local.remote_path)
        if remote is not None and (conflicts.is_own_upload(local, remote)
                                   or await conflicts.holds_untagged(local, remote)):
            # not someone else's edit: an earlier attempt of ours landed, and
            # every answer about it was lost (a dropped connection, a restart)
            log.info("an earlier upload of %s landed unconfirmed; uploading the current content over it",
                     local.remote_path)
            local.base = remote
            return await upload(local.remote_path, remote)
        # the file changed on the server since we based our content on it: keep both
        target = await self.conflicts.conflict_path(local.remote_path)
        log.warning(
            "%s changed on the server while local changes were pending; "
            "keeping the server's version and saving the local one as %s",
            local.remote_path, target,
        )
        conflicts.files.set_path(local, target)
        local.base = None
        await self.journal.move(local.file_id, target)
        return await upload(target, None)
