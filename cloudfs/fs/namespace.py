"""Namespace changes: create, mkdir, unlink, rmdir, rename, and attribute changes.

Every change is made on the server first and then mirrored in the caches, so
the mount never shows what the server refused; except for a file created
here: the server learns of it with its first upload (which creates it), so
until then its renames and its removal are local too.  No backend overwrites on
rename or move, so POSIX "rename over an existing target" is done as: move
the target aside under a temporary name, put the source in place, delete the
target; if placing the source fails, the target is moved back.  A server may
reset a file's updated time on rename, so the mtime is re-recorded in
``dav:cloudfs:mtime`` afterwards.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import time
import uuid
from contextlib import aclosing


from cloudfs.client.models import MODE_KEY, MTIME_KEY, Entry, mtime_value
from cloudfs.errors import CloudfsError
from cloudfs.fs import attrs
from cloudfs.fs.content import Content
from cloudfs.fs.core import Core
from cloudfs.fs.errors import fail
from cloudfs.fs.handles import Opened
from cloudfs.fs.inodes import Node, detach_node, move_nodes
from cloudfs.fs.links import LINK_MARK, PATH_MAX
from cloudfs.fs.meta import join, split
from cloudfs.upload.staging import LocalFile, is_unsent, unsent_entry
from cloudfs.upload.writeback import drop_file, relocate_files

log = logging.getLogger(__name__)

#: rename's flags, as renameat(2) takes them (the kernel hands them on unchanged)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

TEMP_PREFIX = ".cloudfs-"
#: the longest name, in bytes, that Linux and the servers take
NAME_MAX = 255


def children_changed(*folders: Node) -> None:
    """A child was created, removed or renamed in ``folders``: their mtime
    and ctime are now (kept in the inodes; see attrs.build)."""
    now = time.time_ns()
    for folder in folders:
        folder.children_changed_ns = folder.changed_ns = now


def temp_name(purpose: str) -> str:
    return f"{TEMP_PREFIX}{purpose}-{uuid.uuid4().hex[:12]}"


class Namespace:
    def __init__(self, core: Core, content: Content) -> None:
        self.core = core
        self.content = content

    # ---- creation ------------------------------------------------------------
    async def create(self, parent: Node, name: str, mode: int, flags: int = os.O_EXCL) -> tuple[Opened, Node]:
        core = self.core
        core.check_writable()
        path = join(parent.path, name)
        core.client.check_new_name(path)
        existing = await self._existing(parent, name)
        if existing is not None:
            if flags & os.O_EXCL:
                raise fail(errno.EEXIST)
            # the kernel asked to create because it believed the name free,
            # but another client made it meanwhile: without O_EXCL,
            # open(O_CREAT) opens the existing file
            return await self._open_existing(existing, flags)
        try:
            node = await self._new_file(path)
        except CloudfsError as exc:
            if exc.errno != errno.EEXIST or flags & os.O_EXCL:
                raise
            # (made on the server at once: another client made it since we looked)
            core.meta.invalidate(path)
            return await self._open_existing(await core.client.stat(path), flags)
        children_changed(parent)
        info = self.content.created(node)
        bits = mode & 0o7777
        if bits != attrs.permission_bits(node.entry, core.owner):
            # the file is staged: its first upload carries the mode (no request now)
            await self._set_node_metadata(node, {MODE_KEY: f"{bits:o}"}, new=True)
        return info, node

    async def _existing(self, parent: Node, name: str) -> Entry | None:
        """What is at ``name`` before a create: known here if the folder's
        listing is (a folder this mount made, or listed within
        ``metadata_ttl``: tar x, cp -r and builds create in those), else the
        server's answer, not a name found missing moments ago (another
        client may have just made it: O_EXCL is then EEXIST, and O_CREAT
        opens their file)."""
        core = self.core
        if core.meta.listing(parent.path) is None:
            core.meta.invalidate(join(parent.path, name))
            if core.links.by_name:
                core.meta.invalidate(join(parent.path, core.links.stored_name(name, True)))
        return await core.child_or_none(parent, name)

    async def _new_file(self, path: str) -> Node:
        """A new empty file, made here: the server learns of it with its
        upload (which creates it), so creating costs no request and a burst
        of them (tar x, a build) runs at the speed of the local disk.  Its
        name was checked (:meth:`_existing`, and the server's naming rules);
        if another client takes the name before the upload, the content
        goes up beside theirs under a conflict name (docs/semantics.md).
        (On a backend that needs files made at once, a request after all.)"""
        core = self.core
        entry = unsent_entry(path) if core.client.capabilities.creates_by_upload else None
        if entry is None:
            entry = await core.client.create_file(path)  # (a backend that needs it made now)
        core.meta.put(entry)
        return core.remember(entry)

    async def symlink(self, parent: Node, name: str, target: bytes) -> Node:
        """A link is a small file holding its target (see ``links.py``),
        staged and uploaded like any new file: durable here at once."""
        core = self.core
        core.check_writable()
        if not target or len(target) >= PATH_MAX:
            raise fail(errno.ENOENT if not target else errno.ENAMETOOLONG)
        if await self._existing(parent, name) is not None:
            raise fail(errno.EEXIST)
        stored = core.links.stored_name(name, True)
        if len(os.fsencode(stored)) > NAME_MAX:
            raise fail(errno.ENAMETOOLONG)  # the mark in the name made it too long
        path = join(parent.path, stored)
        core.client.check_new_name(path)
        node = await self._new_file(path)
        children_changed(parent)
        local = self.content.stage(node)
        local.write(0, target)
        if not core.links.by_name:
            local.set_metadata(dict(LINK_MARK))
        local.close()
        core.writeback.note_activity()
        await core.writeback.persist(local)
        core.writeback.closed(local)
        return node

    async def readlink(self, node: Node) -> bytes:
        if not self.core.is_link(node):
            raise fail(errno.EINVAL)
        return await self.content.read_all(node)

    async def _open_existing(self, entry: Entry, flags: int) -> tuple[Opened, Node]:
        core = self.core
        if entry.is_dir:
            raise fail(errno.EISDIR)
        node = core.remember(entry)
        try:
            return await self.content.open(node, flags), node
        except BaseException:
            # the kernel never learns of this inode: give back its lookup
            core.table.forget(node.ino, 1)
            raise

    async def mkdir(self, parent: Node, name: str, mode: int) -> Node:
        core = self.core
        core.check_writable()
        path = join(parent.path, name)
        try:
            entry = await core.client.mkdir(path)
        except CloudfsError as exc:
            if exc.errno == errno.EEXIST:
                # the kernel looked the name up first and we said there was
                # none: what we know of the folder is stale (another client,
                # or a mkdir of ours that failed after the server acted), and
                # mkdir -p looks again after an EEXIST
                core.meta.invalidate(path)
                core.meta.invalidate_listing(parent.path)
            raise
        entry = await self._store_mode(entry, mode)
        core.meta.put(entry)
        # a new folder is empty: its listing is known without asking
        core.meta.put_listing(entry, [])
        children_changed(parent)
        return core.remember(entry)

    async def _store_mode(self, entry: Entry, mode: int) -> Entry:
        bits = mode & 0o7777
        if bits == attrs.permission_bits(entry, self.core.owner):
            return entry
        return await self._set_metadata(entry, {MODE_KEY: f"{bits:o}"})

    async def _set_node_metadata(self, node: Node, values: dict[str, str], *, new: bool = False) -> None:
        """Set public metadata of a node's object.  While its content waits
        for an upload (or, ``new``, the file was just created and staged),
        the upload carries it, at no request of its own (also where the
        backend keeps metadata in the client only: the new version's, not
        the old one's, may be the object that shows it)."""
        local = node.local
        if isinstance(local, LocalFile) and (local.dirty or new) and not node.unlinked:
            local.set_metadata(values)
            return
        node.entry = await self._set_metadata(node.entry, values)
        self.core.meta.put(node.entry)
        if isinstance(local, LocalFile):  # its next upload replaces the entry as it is now
            local.base_metadata_set(node.entry)

    async def _set_metadata(self, entry: Entry, values: dict[str, str]) -> Entry:
        # (a backend without custom metadata keeps it in the client, for as
        # long as the mount: capabilities.custom_metadata)
        await self.core.client.set_metadata(entry, values)
        return dataclasses.replace(entry, metadata={**(entry.metadata or {}), **values})

    # ---- removal -------------------------------------------------------------
    async def unlink(self, parent: Node, name: str) -> None:
        core = self.core
        core.check_writable()
        entry = await core.child(parent, name)
        if entry.is_dir:
            raise fail(errno.EISDIR)
        node = core.table.by_file_id(entry.file_id)  # (no await since ``entry`` was read: see _now)
        async with core.locks.hold(*([node.ino] if node else [])):
            local = await self._before_removal(entry, node)
            # its upload waits meanwhile; it is forgotten only once the file
            # is gone: if the delete fails, the staged content still goes up
            async with core.writeback.paused([local] if local is not None else []):
                entry = _now(entry, node)
                if not is_unsent(entry.file_id):
                    await self._delete(entry)
                await self._forget_removed(node, local)
                core.meta.remove(entry.path)
                core.pins.removed(entry.path)
                children_changed(parent)

    async def rmdir(self, parent: Node, name: str) -> None:
        core = self.core
        core.check_writable()
        entry = await core.child(parent, name)
        if not entry.is_dir:
            raise fail(errno.ENOTDIR)
        if await self._has_children(entry.path):
            raise fail(errno.ENOTEMPTY)
        await self._delete(entry)
        core.meta.remove(entry.path)
        core.pins.removed(entry.path)
        children_changed(parent)
        node = core.table.by_file_id(entry.file_id)
        if node is not None:
            self._removed(node)

    async def _has_children(self, path: str) -> bool:
        if any(split(node.path)[0] == path for node in self.core.unconfirmed_files()):
            return True  # one the server may not show while we upload it (see Core.listing)
        # ask the server, not the cache: another client may have added something
        async with aclosing(self.core.client.list_dir(path)) as pages:
            async for page in pages:
                if page:
                    return True
        return False

    async def _delete(self, entry: Entry) -> None:
        await self.core.client.delete([entry], permanent=not self.core.settings.delete_to_trash)
        self.core.forget_capacity()

    async def _before_removal(self, entry: Entry, node: Node | None, *, strict: bool = True) -> LocalFile | None:
        """For a file about to leave the namespace: keep its content readable
        for processes that still have it open.  Returns its staged content,
        for the caller to forget in the write-back once the file is gone.
        ``strict``: a failure to fetch that content is raised (before
        anything was given up), else only logged (the caller is past the
        point of no return)."""
        core = self.core
        local = node.local if node is not None else core.writeback.files.get(entry.file_id)
        held_open = node is not None and node.opens > 0 and not node.is_dir
        if not isinstance(local, LocalFile):
            if node is None or not held_open:
                return None
            local = self.content.stage(node)
        if held_open:
            # downloads are signed by path, and the path goes now (to the
            # recycle bin or for good): fetch what the open handles may still
            # read, while the server can still find it
            try:
                await local.fill(core.fetch_base)
            except (CloudfsError, OSError) as exc:
                if strict:
                    raise
                log.warning("%s left the namespace while open; its content could not be kept for the open "
                            "handles: %s", entry.path, exc)
        return local

    def _removed(self, node: Node) -> None:
        self.core.table.detach(node)
        self.core.settle(node)

    async def _forget_removed(self, node: Node | None, local: LocalFile | None) -> None:
        """A file left the namespace: its node is marked removed first, with
        no await before, so that a write through a handle still open can no
        longer stage it again; then its staged upload is forgotten.  (The
        other way round, a write while the write-back awaited its journal
        staged the file again under the deleted name: an upload that
        re-created it, or moved along with later renames of that name.)"""
        # one step, with nothing between that could fail: a node detached
        # whose staged upload is still due would bring the file back
        if node is not None:
            detach_node(self.core.table, node)
        if local is not None:
            drop_file(self.core.writeback, local)
            await self.core.writeback.forget(local)  # its journal record, now
        if node is not None:
            self.core.settle(node)

    # ---- rename --------------------------------------------------------------
    async def rename(self, old_parent: Node, old_name: str, new_parent: Node, new_name: str, flags: int) -> None:
        core = self.core
        core.check_writable()
        src = await core.child(old_parent, old_name)
        src_node = core.table.by_file_id(src.file_id)  # (no await since each entry was read: see _now)
        dst = await core.child_or_none(new_parent, new_name)
        dst_node = core.table.by_file_id(dst.file_id) if dst is not None else None
        new_name = core.links.stored_name(new_name, core.links.is_link(src))
        new_path = join(new_parent.path, new_name)
        if src.is_dir and (new_path + "/").startswith(src.path.rstrip("/") + "/"):
            raise fail(errno.EINVAL)  # into itself or its own subtree
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise fail(errno.ENOENT)
            if dst.is_dir and (src.path + "/").startswith(dst.path.rstrip("/") + "/"):
                raise fail(errno.EINVAL)
            await self._exchange((src, src_node), (dst, dst_node))
            children_changed(old_parent, new_parent)
            return
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise fail(errno.EEXIST)
            if dst.file_id == src.file_id:
                return
            if src.is_dir and not dst.is_dir:
                raise fail(errno.ENOTDIR)
            if dst.is_dir and not src.is_dir:
                raise fail(errno.EISDIR)
            if dst.is_dir and await self._has_children(dst.path):
                raise fail(errno.ENOTEMPTY)
        inos = [n.ino for n in (src_node, dst_node) if n is not None]
        writeback = core.writeback
        moving = writeback.under(src.path, folder=src.is_dir) + \
            (writeback.under(dst.path, folder=dst.is_dir) if dst is not None else [])
        async with core.locks.hold(*inos), writeback.paused(moving):
            src = _now(src, src_node)
            dst = _now(dst, dst_node) if dst is not None else None
            aside = None
            if dst is not None:
                aside = await self._relocate(dst, split(dst.path)[0], temp_name("replaced"))
                if dst_node is not None:
                    dst_node.entry = aside  # where its content is fetched from until it goes
            try:
                moved = await self._relocate(src, new_parent.path, new_name)
            except BaseException:
                if aside is not None and dst is not None:
                    await self._undo(aside, dst.path)
                    if dst_node is not None:
                        dst_node.entry = dst
                raise
            # the server moved it: inodes and uploads follow at once, before
            # anything else that may fail.  (A file not on the server yet, put
            # on a free name or over another such, moved nowhere but here: the
            # journal learns its new path with its next statement, as a local
            # filesystem's rename is durable with the next sync; fsyncdir syncs it.)
            local_only = is_unsent(src.file_id) and (dst is None or is_unsent(dst.file_id))
            await self._remap({src.path: moved.path}, durable=not local_only, folders=src.is_dir)
            if dst is not None and aside is not None:
                replaced = await self._before_removal(aside, dst_node, strict=False)
                if not is_unsent(aside.file_id):
                    await self._delete_quietly(aside)
                await self._forget_removed(dst_node, replaced)  # its uploads are paused with the rename's
                core.meta.remove(dst.path)
            moved = await self._keep_mtime(src, moved)
            self._recache(src, moved)
            if src_node is not None:
                src_node.entry = moved
                src_node.changed_ns = time.time_ns()  # a rename changes the inode's ctime, as on Linux
                core.keep_times(src_node)
            children_changed(old_parent, new_parent)

    async def _exchange(self, first: tuple[Entry, Node | None], second: tuple[Entry, Node | None]) -> None:
        """RENAME_EXCHANGE: swap two names (three renames through a temporary one)."""
        core = self.core
        (a, a_node), (b, b_node) = first, second
        nodes = [a_node, b_node]
        moving = core.writeback.under(a.path, folder=a.is_dir) + core.writeback.under(b.path, folder=b.is_dir)
        async with core.locks.hold(*[n.ino for n in nodes if n is not None]), core.writeback.paused(moving):
            a, b = _now(a, a_node), _now(b, b_node)
            a_folder, a_name = split(a.path)
            b_folder, b_name = split(b.path)
            # each takes the other's shown name (a link file keeps its mark)
            links = core.links
            b_to = links.stored_name(links.shown_name(a_name, links.is_link(a)), links.is_link(b))
            a_to = links.stored_name(links.shown_name(b_name, links.is_link(b)), links.is_link(a))
            a_aside = await self._relocate(a, a_folder, temp_name("exchange"))
            b_moved = await self._relocate(b, a_folder, b_to)
            a_moved = await self._relocate(a_aside, b_folder, a_to)
            await self._remap({a.path: a_moved.path, b.path: b_moved.path}, folders=a.is_dir or b.is_dir)
            a_moved = await self._keep_mtime(a, a_moved)
            b_moved = await self._keep_mtime(b, b_moved)
            for old in (a, b):
                core.meta.remove(old.path)
                if old.is_dir:
                    core.meta.forget_subtree(old.path)
            for node, moved in zip(nodes, (a_moved, b_moved)):
                core.meta.put(moved)
                if node is not None:
                    node.entry = moved

    async def _relocate(self, entry: Entry, folder: str, name: str) -> Entry:
        """Put ``entry`` at ``folder/name`` (which must be free) with rename/move."""
        if is_unsent(entry.file_id):
            # not on the server yet: its upload creates it where it is by then
            self.core.client.check_new_name(join(folder, name))
            return dataclasses.replace(entry, path=join(folder, name))
        moved = await self.core.client.relocate(entry, folder, name, spare_name=temp_name("rename"))
        if entry.metadata and moved is not entry:
            # the object keeps its metadata (mode, mtime) on the server, but
            # the rename answer may leave it out: the cached entry must not
            merged = {**entry.metadata, **(moved.metadata or {})}
            moved = dataclasses.replace(moved, metadata=merged)
        return moved

    async def _undo(self, entry: Entry, original_path: str) -> None:
        """Best effort to put ``entry`` back where it was after a failed step."""
        try:
            await self._relocate(entry, *split(original_path))
        except (CloudfsError, OSError) as exc:
            log.error("could not move %s back to %s after a failed rename: %s", entry.path, original_path, exc)

    async def _delete_quietly(self, entry: Entry) -> None:
        try:
            await self._delete(entry)
        except CloudfsError as exc:
            log.warning("renamed over a target, but could not delete its old version %s: %s", entry.path, exc)

    def _recache(self, old: Entry, moved: Entry) -> None:
        meta = self.core.meta
        meta.remove(old.path)
        if old.is_dir:
            meta.forget_subtree(old.path)
            meta.forget_subtree(moved.path)
        meta.put(moved)

    async def _remap(self, moves: dict[str, str], *, durable: bool = True, folders: bool = True) -> None:
        """Subtrees moved on the server (old root -> new root, all at once):
        inodes and pending uploads take their new paths in one step, with no
        await between (two renames or exchanges run concurrently, and each
        must see the other's moves whole), then the journal records follow."""
        # in one step, with nothing between that could fail: an inode and its
        # staged upload left at different paths (the upload then re-creates
        # the old name, or conflicts with the file at the new one)
        moved = _move_paths(self.core, moves, folders=folders)
        self.core.pins.moved(moves)
        await self.core.writeback.record_paths(moved, durable=durable)

    async def _keep_mtime(self, old: Entry, moved: Entry) -> Entry:
        if old.is_dir:
            return moved
        local = self.core.writeback.files.get(old.file_id)
        if local is not None and local.dirty:
            return moved  # the upload will carry the mtime
        mtime_ns = attrs.file_mtime_ns(old)
        if moved.mtime_ns == mtime_ns and attrs.stored_mtime_ns(moved) is None:
            return moved
        try:
            return await self._set_metadata(moved, {MTIME_KEY: mtime_value(mtime_ns, moved.version)})
        except CloudfsError as exc:
            log.debug("cannot keep the mtime of %s across the rename: %s", moved.path, exc)
            return moved

    # ---- attributes ----------------------------------------------------------
    async def setattr(self, node: Node, changes: attrs.AttrChanges) -> None:
        core = self.core
        if changes.uid is not None or changes.gid is not None:
            uid_ok = changes.uid in (None, -1, core.owner.uid)
            gid_ok = changes.gid in (None, -1, core.owner.gid)
            if not (uid_ok and gid_ok):
                raise fail(errno.EPERM)  # servers keep no owners; only the mount's own are kept
        if changes.size is not None or changes.mode is not None or changes.mtime_ns is not None:
            core.check_writable()
        async with core.locks.hold(node.ino):
            if changes.size is not None:
                if node.is_dir:
                    raise fail(errno.EISDIR)
                self.content.truncate(node, changes.size)
            if changes.mode is not None:
                bits = changes.mode & 0o7777
                if bits != attrs.node_permission_bits(node, core.owner):
                    await self._set_node_metadata(node, {MODE_KEY: f"{bits:o}"})
            if changes.mtime_ns is not None:
                await self._set_mtime(node, changes.mtime_ns)
            if changes.atime_ns is not None:
                node.atime_ns = changes.atime_ns
            if changes.mtime_ns is not None and node.is_dir:
                node.children_changed_ns = None  # the time just set is shown exactly
            if any(v is not None for v in (changes.size, changes.mode, changes.mtime_ns, changes.atime_ns)):
                node.changed_ns = time.time_ns()
                core.keep_times(node, changes.mtime_ns)

    async def _set_mtime(self, node: Node, mtime_ns: int) -> None:
        local = node.local
        if isinstance(local, LocalFile) and local.dirty:
            local.set_mtime(mtime_ns)  # goes up with the content
            return
        if isinstance(local, LocalFile):
            local.mtime_ns = mtime_ns
        entry = node.entry
        node.entry = await self._set_metadata(entry, {MTIME_KEY: mtime_value(mtime_ns, entry.version)})
        self.core.meta.put(node.entry)


def _now(entry: Entry, node: Node | None) -> Entry:
    """``entry`` (read before an await) as it is now that the caller paused
    the file's uploads: one that landed meanwhile gave a file created here
    its server object, or a file replaced on a backend whose replace gives a
    new id its new object; the node learnt it in the same step (``node``:
    looked up by ``entry``'s id with no await between)."""
    if node is not None and not node.unlinked and node.entry.file_id != entry.file_id:
        return node.entry
    return entry


def _move_paths(core: Core, moves: dict[str, str], *, folders: bool = True) -> list[LocalFile]:
    """Inodes and staged uploads take their new paths; returns the dirty
    uploads moved (their journal records are to follow).  Not ``folders``:
    only files move, found by their paths (rsync renames every file it
    writes: no pass over every inode and staged file for each)."""
    move_nodes(core.table.affected(moves, folders=folders), moves)
    return relocate_files(core.writeback, moves, folders=folders)


def decode_name(name: bytes) -> str:
    """A name from the kernel as the server wants it: UTF-8, at most 255 bytes."""
    if len(name) > 255:
        raise fail(errno.ENAMETOOLONG)
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(errno.EINVAL) from None

