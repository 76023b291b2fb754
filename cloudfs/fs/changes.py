"""Live changes: what other clients do to the drive, applied to the mount's caches as it happens.

:class:`LiveChanges` runs the client's change feed for the whole drive and,
for each change, drops or refreshes exactly what it touches:

* the metadata cache: the entry at the path(s) concerned, and its place in
  the cached listing of its folder (updated with one stat where a listing is
  cached, so a folder of 10,000 entries is not listed again for one change);
* the inode table: a rename moves the node (and everything below it);
* the kernel: ``invalidate_entry`` for a name that went away,
  ``invalidate_inode`` (attributes and cached pages) for a file whose content
  changed, so ``stat``, ``ls`` and the next ``cat`` see the change at once.

A file with local changes not yet uploaded is left alone (its pages are this
mount's data); the write-back's conflict rules decide when it is uploaded.

While the feed is live the metadata TTL is ``events_ttl`` (10 min: a safety
net, not the way changes arrive); when it is connecting, disconnected, or the
server has none (an older server, a backend without one, switched off), the mount uses the
plain ``metadata_ttl``.  Each switch, every (re)subscription (even a
``resumed`` one: an event the server took for a stream that then broke is
lost) and a burst that may have overflowed the server's buffer drop
everything cached: a full re-check.

The kernel is told through :class:`Kernel` (:mod:`cloudfs.fs.kernel`: pyfuse3's
invalidation calls, queued and made from a worker thread).
"""

from __future__ import annotations

import errno
import logging
import math
from typing import Any, Protocol

import trio

from cloudfs.client.changefeed import Change, ChangeFeed, FeedState, StateChange
from cloudfs.client.models import Entry
from cloudfs.errors import CloudfsError
from cloudfs.fs.core import Core
from cloudfs.fs.inodes import ROOT_INODE, Node
from cloudfs.fs.meta import split

log = logging.getLogger(__name__)


class Kernel(Protocol):
    """Where cached names and attributes are dropped in the kernel
    (:class:`cloudfs.fs.kernel.KernelInvalidator`, the pyfuse3 side)."""

    async def run(self) -> None: ...
    def entry(self, parent_ino: int, name: str, deleted: int = 0) -> None: ...
    def inode(self, ino: int, attr_only: bool = False) -> None: ...


class LiveChanges:
    def __init__(self, core: Core, kernel: Kernel | None, *, live_ttl_s: float,
                 fallback_ttl_s: float) -> None:
        self.core = core
        self.kernel = kernel
        self.live_ttl_s = live_ttl_s
        self.fallback_ttl_s = fallback_ttl_s
        self.state = FeedState.CONNECTING
        self.reason = ""
        self.applied = 0
        self.rechecks = 0
        #: whether the server kept what happened while the feed was away (the last subscription)
        self.resumed = False
        self._queue, self._queued = trio.open_memory_channel[Change | StateChange](math.inf)
        #: where :meth:`recheck_all` checks folder names in the background (set while running)
        self._nursery: trio.Nursery | None = None
        self._checking_folders = trio.CancelScope()

    @property
    def mode(self) -> str:
        """What ``cloudfs status`` shows: ``events`` while live, else ``ttl`` and why."""
        if self.state == FeedState.LIVE:
            return "events"
        return f"ttl ({self.state.value}{': ' + self.reason if self.reason else ''})"

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "metadata_ttl_s": self.core.metadata_ttl_s, "applied": self.applied,
                "rechecks": self.rechecks, "resumed": self.resumed}

    # ---- feed callbacks (from the feed's task: queue, apply in order) -------------------
    def note(self, item: Change | StateChange) -> None:
        self._queue.send_nowait(item)

    async def run(self, feed: ChangeFeed) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.kernel is not None:
                nursery.start_soon(self.kernel.run)
            nursery.start_soon(self._follow, feed)
            async for item in self._queued:
                try:
                    if isinstance(item, StateChange):
                        self.switch(item)
                    else:
                        await self.apply(item)
                except CloudfsError as exc:
                    log.info("change %s not applied (%s): re-checking everything", item, exc)
                    self.recheck_all()
                except Exception:  # a bug here must not take the mount down; TTLs still hold
                    log.exception("internal error applying %s", item)
                    self.recheck_all()

    async def _follow(self, feed: ChangeFeed) -> None:
        try:
            await feed.run()
        except Exception:  # a bug in the feed must not take the mount down: TTLs take over
            log.exception("the change feed stopped on an internal error; using metadata_ttl")
            self.note(StateChange(FeedState.UNAVAILABLE, reason="internal error"))

    # ---- state ------------------------------------------------------------------------------
    def switch(self, change: StateChange) -> None:
        was_live = self.state == FeedState.LIVE
        self.state, self.reason = change.state, change.reason
        live = change.state == FeedState.LIVE
        if live and change.reason != "overflow":
            self.resumed = change.resumed
        if live or was_live:
            # Every (re)subscription starts over, "resumed" too: an event the server had taken
            # for a stream that then broke is lost, and an overflow loses some silently.
            # Leaving the live state starts over too: the kernel holds long timeouts.
            self.core.metadata_ttl_s = self.live_ttl_s if live else self.fallback_ttl_s
            self.core.meta.retime(self.core.metadata_ttl_s)
            self.recheck_all()

    def recheck_all(self) -> None:
        """Forget every cached entry and listing, in the kernel too (it may hold long timeouts)."""
        self.rechecks += 1
        self.core.meta.clear()
        if self.kernel is None:
            return
        nodes = [n for n in self.core.table if not n.unlinked]
        ino_at = {n.path: n.ino for n in nodes}
        # The kernel unhashes a folder whose name is dropped: getcwd() of every process inside
        # it fails (ENOENT) until someone looks the name up again (git fsck's helpers failed
        # so).  While the feed stays live, only the name of a folder that changed is dropped;
        # leaving it, every name goes as before (the kernel holds them for the live TTL).
        check_folders = self._nursery is not None and self.state == FeedState.LIVE
        folders: list[tuple[int, Node]] = []
        for node in nodes:
            if node.ino == ROOT_INODE:
                continue
            self.kernel.inode(node.ino, attr_only=node.local is not None)
            parent_ino = ino_at.get(split(node.path)[0])
            if parent_ino is None:
                continue
            if node.is_dir and check_folders:
                folders.append((parent_ino, node))
            else:
                self.kernel.entry(parent_ino, node.entry.name)
        self._checking_folders.cancel()  # a check under way is overtaken by this one
        if folders and self._nursery is not None:  # (always set when check_folders)
            self._checking_folders = trio.CancelScope()
            self._nursery.start_soon(self._drop_changed_folder_names, folders, self._checking_folders)

    async def _drop_changed_folder_names(self, folders: list[tuple[int, Node]], scope: trio.CancelScope) -> None:
        """Drop the kernel's name of each folder the server no longer has at its path."""
        assert self.kernel is not None
        with scope:
            for parent_ino, node in folders:
                if not node.unlinked and not await self._still_on_server(node):
                    self.kernel.entry(parent_ino, node.entry.name)

    async def _still_on_server(self, node: Node) -> bool:
        """Whether the server still has this folder at its path (False when it cannot tell)."""
        core = self.core
        if core.connectivity.offline:
            return False
        try:
            entry = await core.client.stat(node.path)
        except CloudfsError as exc:
            core.connectivity.failed(exc)  # unreachable: the folders left go at once (offline)
            return False
        return entry.is_dir and entry.file_id == node.entry.file_id

    # ---- one change ---------------------------------------------------------------------------
    async def apply(self, change: Change) -> None:
        self.applied += 1
        log.debug("remote change: %s", change)
        if change.kind == "delete":
            self._gone(change.path, change.file_id)
        elif change.kind == "rename":
            self._renamed(change)
            try:
                await self._refetch(change.new_path, change.file_id)
            finally:
                self._name_appeared(change.new_path)
        elif change.kind == "create":
            try:
                await self._refetch(change.path, change.file_id)
            finally:
                self._name_appeared(change.path)
        else:  # modify
            await self._refetch(change.path, change.file_id, changed_content=True)

    def _node(self, file_id: str, path: str) -> Node | None:
        node = self.core.table.by_file_id(file_id)
        if node is None or node.unlinked or node.path != path:
            return None
        return node

    def _parent_ino(self, path: str) -> int | None:
        parent = split(path)[0]
        if parent == "/":
            return ROOT_INODE
        node = self._node_at(parent)
        return node.ino if node is not None else None

    def _node_at(self, path: str) -> Node | None:
        for node in self.core.table:
            if node.path == path and not node.unlinked:
                return node
        return None

    def _gone(self, path: str, file_id: str) -> None:
        meta = self.core.meta
        meta.forget_subtree(path)
        meta.remove(path)
        node = self._node(file_id, path)
        parent_ino = self._parent_ino(path)
        if self.kernel is not None and parent_ino is not None:
            # with the node's number the kernel also tells inotify watchers
            # (not for a file with unsaved local data: it keeps showing until its upload lands)
            deleted = node.ino if node is not None and node.local is None else 0
            self.kernel.entry(parent_ino, split(path)[1], deleted)

    def _renamed(self, change: Change) -> None:
        core = self.core
        node = self._node(change.file_id, change.path)
        parent_ino = self._parent_ino(change.path)
        core.meta.forget_subtree(change.path)
        core.meta.remove(change.path)
        core.meta.forget_subtree(change.new_path)
        if node is not None:
            core.table.move_subtrees({change.path: change.new_path})
        if self.kernel is not None and parent_ino is not None:
            self.kernel.entry(parent_ino, split(change.path)[1])

    def _name_appeared(self, path: str) -> None:
        """Something now has ``path``: the kernel may hold the name as
        missing (a lookup answered so moments ago), which it must forget.
        Only once the caches here know the new entry (after :meth:`_refetch`):
        a lookup between the kernel forgetting and the stat's answer was
        answered from the cached listing, without the name, and the kernel
        kept it missing for ``negative_ttl`` again."""
        parent_ino = self._parent_ino(path)
        if self.kernel is not None and parent_ino is not None:
            self.kernel.entry(parent_ino, split(path)[1])

    async def _refetch(self, path: str, file_id: str, *, changed_content: bool = False) -> None:
        """The object at ``path`` is new or changed: a fresh entry where one is cached."""
        core = self.core
        meta = core.meta
        parent = split(path)[0]
        cached = meta.listing(parent) is not None or isinstance(meta.entry(path), Entry)
        entry: Entry | None = None
        if cached:
            since = meta.epoch
            try:
                found = await core.client.stat(path)
            except CloudfsError as exc:
                meta.invalidate(path)
                meta.invalidate_listing(parent)
                if exc.errno != errno.ENOENT:
                    raise
                return  # gone again already: its delete event follows
            # in the cached listing too; a folder's own listing stays (its changes come as events)
            now = meta.fill(found, since)
            entry = now if isinstance(now, Entry) else None
        else:
            meta.invalidate(path)  # a name known missing, say
            meta.invalidate_listing(parent)
        node = core.table.by_file_id(file_id)
        if node is None or node.unlinked or node.local is not None:
            return  # unknown to the kernel, or unsaved local data: the write-back's conflict rules decide
        if entry is not None and entry.file_id == node.entry.file_id:
            node.entry = entry
        if self.kernel is not None:
            self.kernel.inode(node.ino, attr_only=not changed_content)
