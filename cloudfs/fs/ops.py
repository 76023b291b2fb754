"""Operations: the pyfuse3 adapter.  Each handler decodes its arguments, calls
the core, namespace or content layer, and builds the reply.

Where a POSIX call becomes an HTTP request, in one step: handler here ->
``namespace.py`` / ``content.py`` -> ``Client`` method.

No exception may escape a handler: ``@fuse_op`` turns every error into an
errno reply (through THE table, ``cloudfs.errors.errno_for``) and logs the
unexpected ones once, with context, so the daemon survives anything.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast

import pyfuse3
import trio

from cloudfs.errors import CloudfsError, errno_for
from cloudfs.fs import attrs
from cloudfs.fs.content import Content
from cloudfs.fs.core import Core
from cloudfs.fs.errors import FsError, fail
from cloudfs.fs.handles import DirHandle, Opened
from cloudfs.fs.inodes import Node
from cloudfs.fs.namespace import RENAME_EXCHANGE, RENAME_NOREPLACE, Namespace, decode_name

log = logging.getLogger(__name__)

T = TypeVar("T")
#: a handler, whose signature the decorator keeps (pyfuse3's stubs check it)
Handler = TypeVar("Handler", bound=Callable[..., Coroutine[Any, Any, Any]])
#: a handler that waits on the server longer than this many timeouts is cut off
DEADLINE_FACTOR = 3
#: st_blocks unit, and what statfs reports capacity in
STATFS_BLOCK = 4096
#: what statfs shows for a drive without a quota
UNLIMITED_BYTES = 1 << 50


@dataclasses.dataclass(slots=True)
class InFlight:
    """A handler the kernel is waiting on (for ``cli/taskdump.py``).  Made
    for every request, reads included: slots, not frozen, halve its cost."""

    name: str
    args: tuple
    started: float
    coro: Any


#: the running handlers, by task: what a stuck mount is stuck on
IN_FLIGHT: dict[trio.lowlevel.Task, InFlight] = {}


def fuse_op(*, bounded: bool = True) -> Callable[[Handler], Handler]:
    """Run a handler under a deadline and turn any exception into an errno."""

    def decorate(handler: Handler) -> Handler:
        name = handler.__name__

        @functools.wraps(handler)
        async def wrapper(self: "Operations", *args: Any) -> Any:
            task = trio.lowlevel.current_task()
            coro = handler(self, *args)
            IN_FLIGHT[task] = InFlight(name, args, time.monotonic(), coro)
            try:
                if bounded:
                    # (a plain cancel scope, not fail_after's generator-made context
                    # manager: every kernel request passes here, rsync's 18 per file)
                    with trio.CancelScope(deadline=trio.current_time()
                                          + self.core.settings.timeout_s * DEADLINE_FACTOR):
                        return await coro
                    raise trio.TooSlowError  # (only reached when the deadline cancelled the handler)
                return await coro
            except FsError as exc:
                # the core's own answer: the only place it becomes pyfuse3's
                raise pyfuse3.FUSEError(exc.errno) from None
            except pyfuse3.FUSEError:
                raise
            except trio.TooSlowError:
                log.warning("%s%r: no answer from the server in time", name, brief_args(args))
                raise pyfuse3.FUSEError(errno.ETIMEDOUT) from None
            except (CloudfsError, OSError) as exc:
                code = errno_for(exc)
                level = logging.DEBUG if code in (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY) else logging.INFO
                log.log(level, "%s%r: %s", name, brief_args(args), exc)
                raise pyfuse3.FUSEError(code) from None
            except Exception:
                log.exception("internal error in %s%r", name, brief_args(args))
                raise pyfuse3.FUSEError(errno.EIO) from None
            finally:
                del IN_FLIGHT[task]

        return cast(Handler, wrapper)

    return decorate


def brief_args(args: tuple) -> tuple:
    """Handler arguments fit for a log line (no file data)."""
    return tuple(f"<{len(a)} bytes>" if isinstance(a, (bytes, bytearray)) and len(a) > 64 else a
                 for a in args if not isinstance(a, pyfuse3.RequestContext))


class Operations(pyfuse3.Operations):
    # no NFS export: the kernel never looks up "." or ".."
    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core
        self.content = Content(core)
        self.namespace = Namespace(core, self.content)

    def _attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        return entry_attributes(self.core.attributes(node))

    # ---- lookups and attributes ------------------------------------------------
    @fuse_op()
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        core = self.core
        parent = core.node(parent_inode)
        try:
            entry = await core.child(parent, decode_name(name))
        except FsError as exc:
            ttl = core.settings.negative_ttl_s
            if exc.errno != errno.ENOENT or ttl <= 0:
                raise
            # the kernel keeps the missing name as long as the mount would
            # answer the same (``negative_ttl``; a create event drops it
            # sooner): rsync, tar and builds look up every name before making
            # it, and each round trip to the mount costs more than the answer
            return negative_entry(ttl)
        return self._attributes(core.remember(entry))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # pyfuse3 sends no reply to a forget, so it catches nothing either: an
        # exception here, even a FUSEError, would end the main loop.  Each
        # inode is settled on its own so one failure does not skip the rest.
        core = self.core
        for ino, count in inode_list:
            try:
                core.table.forget(ino, count)
                node = core.table.get(ino)
                if node is not None:
                    core.settle(node)
            except Exception:
                log.exception("internal error in forget(%d, %d)", ino, count)

    @fuse_op()
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.core.node(inode)
        await self.core.refresh(node)
        return self._attributes(node)

    @fuse_op()
    async def setattr(
        self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self.core.node(inode)
        await self.namespace.setattr(node, attr_changes(attr, fields))
        return self._attributes(node)

    @fuse_op()
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        capacity = await self.core.capacity()
        total = capacity.total if capacity.total > 0 else max(UNLIMITED_BYTES, capacity.used)
        free = max(total - capacity.used, 0)
        stats = pyfuse3.StatvfsData()
        stats.f_bsize = STATFS_BLOCK
        stats.f_frsize = STATFS_BLOCK
        stats.f_blocks = total // STATFS_BLOCK
        stats.f_bfree = free // STATFS_BLOCK
        stats.f_bavail = free // STATFS_BLOCK
        # servers have no inode limit; report plenty so tools do not refuse
        stats.f_files = 1 << 32
        stats.f_ffree = stats.f_favail = (1 << 32) - len(self.core.table)
        stats.f_namemax = 255
        return stats

    # ---- folders ---------------------------------------------------------------
    @fuse_op(bounded=False)  # (never awaits: no deadline to keep)
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        core = self.core
        node = core.node(inode)
        if not node.is_dir:
            raise fail(errno.ENOTDIR)
        handle = DirHandle(core.handles.next_fh(), node)
        core.handles.dirs[handle.fh] = handle
        node.opens += 1
        return handle.fh

    @fuse_op()
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        core = self.core
        handle = core.handles.dirs.get(fh)
        if handle is None:
            raise fail(errno.EBADF)
        if start_id == 0 or handle.listing is None:
            # one pass from the start: offsets stay valid while the kernel pages through it
            if handle.listing is not None:
                handle.listing.cancel()
            handle.listing = await core.open_listing(handle.node)
        listing = handle.listing
        # what is here of the pass (an empty reply would end it: at least one entry, or its end)
        await listing.wait_beyond(start_id)
        shown = listing.shown
        for index in range(start_id, len(shown)):
            name, entry = shown[index]
            node = core.remember(entry, lookup=False, since=listing.since)
            if not pyfuse3.readdir_reply(token, name, self._attributes(node), index + 1):
                core.table.drop_if_unused(node)
                return
            node.lookups += 1

    @fuse_op(bounded=False)  # (never awaits: no deadline to keep)
    async def releasedir(self, fh: int) -> None:
        handle = self.core.handles.dirs.pop(fh, None)
        if handle is not None:
            if handle.listing is not None:
                handle.listing.cancel()
            handle.node.opens -= 1
            self.core.settle(handle.node)

    @fuse_op()
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self.namespace.mkdir(self.core.node(parent_inode), decode_name(name), mode)
        return self._attributes(node)

    @fuse_op()
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.namespace.rmdir(self.core.node(parent_inode), decode_name(name))

    # ---- names -------------------------------------------------------------------
    @fuse_op()
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.namespace.unlink(self.core.node(parent_inode), decode_name(name))

    @fuse_op()
    async def rename(
        self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes, flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        core = self.core
        await self.namespace.rename(
            core.node(parent_inode_old), decode_name(name_old), core.node(parent_inode_new), decode_name(name_new),
            rename_flags(flags),
        )

    @fuse_op()
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self.namespace.symlink(self.core.node(parent_inode), decode_name(name), target)
        return self._attributes(node)

    @fuse_op()
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.namespace.readlink(self.core.node(inode))

    @fuse_op()
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise fail(errno.EPERM)  # nor hard links

    @fuse_op()
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise fail(errno.EPERM)  # nor devices, FIFOs or sockets

    # ---- content -----------------------------------------------------------------
    @fuse_op()
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        opened, node = await self.namespace.create(self.core.node(parent_inode), decode_name(name), mode, flags)
        return file_info(opened), self._attributes(node)

    @fuse_op()
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return file_info(await self.content.open(self.core.node(inode), flags))

    # data handlers are bounded by the transfers themselves (the client gives
    # every range a deadline) and must stay cheap: no extra cancel scope
    @fuse_op(bounded=False)
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        # pyfuse3 replies with any buffer (PyObject_GetBuffer), though its stub says bytes
        return await self.content.read(fh, off, size)

    @fuse_op(bounded=False)
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.content.write(fh, off, buf)

    @fuse_op()
    async def flush(self, fh: int) -> None:
        await self.content.flush(fh)

    @fuse_op(bounded=False)
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.content.fsync(fh)

    @fuse_op(bounded=False)  # (never awaits: no deadline to keep)
    async def release(self, fh: int) -> None:
        self.content.release(fh)

    @fuse_op()
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        # namespace changes are made on the server synchronously, except the
        # renames of files not on the server yet: their journal records follow now
        await self.core.writeback.journal.flush()


# ---- the core's data as pyfuse3's ---------------------------------------------------
def negative_entry(timeout_s: float) -> pyfuse3.EntryAttributes:
    """A lookup's answer "no such name", which the kernel may keep for ``timeout_s``
    (inode 0: FUSE's negative entry)."""
    reply = pyfuse3.EntryAttributes()
    reply.st_ino = 0
    reply.entry_timeout = timeout_s
    reply.attr_timeout = 0
    return reply


def entry_attributes(built: attrs.Attributes) -> pyfuse3.EntryAttributes:
    # field by field, not a loop over the names: five times faster, and a
    # listing builds one per child (tests/unit/test_fs_adapter.py checks all are copied)
    reply = pyfuse3.EntryAttributes()
    reply.st_ino = built.st_ino
    reply.generation = built.generation
    reply.entry_timeout = built.entry_timeout
    reply.attr_timeout = built.attr_timeout
    reply.st_mode = built.st_mode
    reply.st_nlink = built.st_nlink
    reply.st_uid = built.st_uid
    reply.st_gid = built.st_gid
    reply.st_rdev = built.st_rdev
    reply.st_size = built.st_size
    reply.st_blksize = built.st_blksize
    reply.st_blocks = built.st_blocks
    reply.st_atime_ns = built.st_atime_ns
    reply.st_mtime_ns = built.st_mtime_ns
    reply.st_ctime_ns = built.st_ctime_ns
    reply.st_birthtime_ns = built.st_birthtime_ns
    return reply


def file_info(opened: Opened) -> pyfuse3.FileInfo:
    return pyfuse3.FileInfo(fh=opened.fh, keep_cache=opened.keep_cache)


def attr_changes(attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields) -> attrs.AttrChanges:
    return attrs.AttrChanges(
        size=attr.st_size if fields.update_size else None,
        mode=attr.st_mode if fields.update_mode else None,
        mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
        atime_ns=attr.st_atime_ns if fields.update_atime else None,
        uid=attr.st_uid if fields.update_uid else None,
        gid=attr.st_gid if fields.update_gid else None,
    )


def rename_flags(flags: int) -> int:
    """pyfuse3's rename flags as the namespace takes them."""
    return ((RENAME_NOREPLACE if flags & pyfuse3.RENAME_NOREPLACE else 0)
            | (RENAME_EXCHANGE if flags & pyfuse3.RENAME_EXCHANGE else 0))
