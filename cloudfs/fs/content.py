"""File content: open, read, write, truncate, flush, fsync, release.

Reads of a clean file go through the fetcher (block cache, shared downloads)
with the handle's adaptive read-ahead.  The first write stages the file
(``LocalFile``); from then on reads and writes go to the staging file and the
write-back uploads it after the last writer closes.  ``close`` returns once
the data is durable locally (journaled); ``fsync`` once it is on the server
(or locally, with ``fsync=local``).
"""

from __future__ import annotations

import errno
import logging
import os


from cloudfs.cache.fetcher import Source
from cloudfs.cache.readahead import ReadAhead
from cloudfs.errors import CloudfsError, errno_for
from cloudfs.fs.core import Core, source_of
from cloudfs.fs.errors import fail
from cloudfs.fs.handles import FileHandle, Opened
from cloudfs.fs.inodes import Node
from cloudfs.upload.staging import LocalFile
from cloudfs.upload.writeback import SLOW_RETRY_ERRNOS

log = logging.getLogger(__name__)

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR
#: what fsync(2) and fdatasync(2) may say of data that did not reach its
#: destination (POSIX): a space error as it is, any other failure is EIO
#: (never, say, EEXIST or EPERM of an upload the server refused)
SYNC_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
#: close(2) also tells a file too large for the drive (EFBIG), as documented
CLOSE_ERRNOS = SYNC_ERRNOS | {errno.EFBIG}


class Content:
    def __init__(self, core: Core) -> None:
        self.core = core

    # ---- open / release ------------------------------------------------------
    async def open(self, node: Node, flags: int) -> Opened:
        core = self.core
        if node.is_dir:
            raise fail(errno.EISDIR)
        writer = bool(flags & WRITE_FLAGS)
        if writer:
            core.check_writable()
        await core.refresh(node)
        # staged before the handle exists: a staging file that cannot be made
        # (ENOSPC, EMFILE) fails the open without leaving a handle behind
        local = self.stage(node) if writer else None
        handle = self._new_handle(node, writer)
        if local is not None:
            local.writers += 1
            if flags & os.O_TRUNC and local.size:
                try:
                    self.truncate(node, 0)
                except BaseException:
                    self.release(handle.fh)  # the open fails: nothing of it stays open
                    raise
        # the kernel may keep its cached pages only if the content is what it cached
        version = node.entry.version if node.local is None else None
        keep = version is not None and node.cached_version == version
        node.cached_version = version
        return Opened(fh=handle.fh, keep_cache=keep)

    def _new_handle(self, node: Node, writer: bool) -> FileHandle:
        core = self.core
        settings = core.settings
        handle = FileHandle(
            fh=core.handles.next_fh(),
            node=node,
            source=source_of(node.entry),
            readahead=ReadAhead(initial=settings.readahead_initial, maximum=self._readahead_cap()),
            writer=writer,
        )
        core.handles.files[handle.fh] = handle
        node.opens += 1
        return handle

    def _readahead_cap(self) -> int:
        # a window bigger than a quarter of the cache would evict itself before being read
        store = self.core.fetcher.store
        return max(min(self.core.settings.readahead_max, store.cap_bytes // 4), store.page_size)

    def handle(self, fh: int) -> FileHandle:
        handle = self.core.handles.files.get(fh)
        if handle is None:
            raise fail(errno.EBADF)
        return handle

    def release(self, fh: int) -> None:
        core = self.core
        handle = core.handles.files.pop(fh, None)
        if handle is None:
            return
        node = handle.node
        node.opens -= 1
        local = node.local
        if handle.writer and isinstance(local, LocalFile):
            local.writers -= 1
            if local.writers == 0:
                local.close()
                if not node.unlinked:
                    core.writeback.closed(local)
        core.settle(node)

    def created(self, node: Node) -> Opened:
        """A handle on a file just created (empty, staged, open for writing)."""
        local = self.stage(node)  # before the handle, as in open
        handle = self._new_handle(node, writer=True)
        local.writers += 1
        self.core.writeback.note_activity()
        node.cached_version = None
        return Opened(fh=handle.fh)

    def stage(self, node: Node) -> LocalFile:
        """The node's LocalFile, created (nothing downloaded) if needed, and
        known to the write-back: a staged file it does not know is never
        uploaded.  (Every write and truncate comes here first, so a file the
        write-back let go of is known again before it changes: e.g. after an
        unlink that failed past forgetting the file's upload.)"""
        core = self.core
        local = node.local
        if not isinstance(local, LocalFile):
            # hashed as written where the backend wants the SHA-256 before the upload
            local = LocalFile.create(core.staging_dir, node.entry, spare=core.spares.take(),
                                     hash_content=core.client.capabilities.whole_file_hash)
        if node.unlinked:
            local.removed = True  # written for the handles still open, never uploaded
        else:
            core.writeback.add(local)  # before the node points at it
        node.local = local
        return local

    # ---- data ------------------------------------------------------------------
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        """The bytes for a FUSE read: a view of the cache file's pages
        (to be handed to the kernel before the next await), or bytes."""
        handle = self.handle(fh)
        local = handle.node.local
        if isinstance(local, LocalFile):
            return await local.read(off, size, self.core.fetch_base)
        source = handle.source
        entry = self.core.located(source.token)
        if entry is not source.token:
            # renamed while open: same content version, downloaded by its new path
            source = handle.source = Source(source.name, source.size, entry)
        ahead = handle.readahead.on_read(off, size, source.size)
        fetcher = self.core.fetcher
        if ahead is not None:
            fetcher.prefetch(source, ahead)
        return await fetcher.read(source, (off, off + size), mapped=True)

    async def read_all(self, node: Node) -> bytes:
        """The whole content of a small file (a link's target), staged or
        through the read cache."""
        local = node.local
        if isinstance(local, LocalFile):
            return await local.read(0, local.size, self.core.fetch_base)
        await self.core.refresh(node)
        entry = node.entry
        return await self.core.fetch_base(entry, (0, entry.size)) if entry.size else b""

    def write(self, fh: int, off: int, data: bytes) -> int:
        handle = self.handle(fh)
        if not handle.writer:
            raise fail(errno.EBADF)
        node = handle.node
        local = self.stage(node)
        writeback = self.core.writeback
        writeback.cancel(local)
        written = local.write(off, data)
        if local.size >= self.core.settings.dirty_threshold and not node.unlinked:
            # a big file held open: upload once the writes pause
            writeback.schedule(local)
        return written

    def truncate(self, node: Node, size: int) -> None:
        self.core.check_writable()
        local = self.stage(node)
        self.core.writeback.cancel(local)
        local.truncate(size)
        if local.writers == 0 and not node.unlinked:
            self.core.writeback.schedule(local)

    # ---- durability ---------------------------------------------------------
    async def flush(self, fh: int) -> None:
        """close(2): the data written so far is durable locally before we return."""
        handle = self.handle(fh)
        local = handle.node.local
        if not handle.writer or not isinstance(local, LocalFile) or handle.node.unlinked:
            return
        await self.core.writeback.persist(local)
        error = local.error
        code = getattr(error, "errno", None)
        if code in SLOW_RETRY_ERRNOS:
            # the last upload failed in a way that retrying will not fix soon;
            # close(2) may say so only as EIO, or as the space it lacks
            raise fail(code if code in CLOSE_ERRNOS else errno.EIO)
        await self._check_space(local)

    async def _check_space(self, local: LocalFile) -> None:
        """Fail close() at once when the file cannot fit the remaining quota
        (the data stays staged and is retried, nothing is lost)."""
        growth = local.size - (local.base.size if local.base else 0)
        if not local.dirty or growth <= 0:
            return
        try:
            capacity = await self.core.capacity(at_least=True)
            if capacity.total and growth > capacity.free:
                capacity = await self.core.capacity()  # space this mount freed since may make room
        except CloudfsError:
            return  # the upload will tell
        if capacity.total and growth > capacity.free:
            log.error("%s does not fit in the remaining space (%d > %d bytes); its data is kept in %s",
                      local.remote_path, growth, capacity.free, local.staging)
            raise fail(errno.ENOSPC)

    async def fsync(self, fh: int) -> None:
        handle = self.handle(fh)
        local = handle.node.local
        if not isinstance(local, LocalFile) or not local.dirty or handle.node.unlinked:
            return
        writeback = self.core.writeback
        try:
            if self.core.settings.fsync == "local":
                await writeback.persist(local)
            else:
                await writeback.sync(local)
        except (CloudfsError, OSError) as exc:
            code = errno_for(exc)
            if code not in SYNC_ERRNOS:
                log.info("fsync of %s failed: %s (reported as EIO)", local.remote_path, exc)
                code = errno.EIO
            raise fail(code) from None
