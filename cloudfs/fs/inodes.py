"""InodeTable: kernel inode numbers <-> remote objects, with lookup counts.

An inode stands for one remote object, keyed by its server object id, so a
rename keeps the inode.  Numbers come from a counter that never goes back, so
a number is never reused for another object during the mount.

The kernel holds a *lookup count* on every inode it was handed (by lookup,
create, mkdir, readdirplus...).  ``forget`` lowers it; an inode leaves the
table when the kernel has forgotten it, no handle has it open and it holds no
unsaved data.  That bounds memory on a walk over millions of entries.

Plain ``def`` only: every method is atomic with respect to other trio tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping

from cachetools import LRUCache

from cloudfs.client.models import MEMORY_ONLY_KEY, Entry
from cloudfs.upload.staging import LocalFile
from cloudfs.client.paths import Relocation

__all__ = ["MEMORY_ONLY_KEY", "ROOT_INODE", "InodeTable", "Node", "keep_memory_only"]

ROOT_INODE = 1

# MEMORY_ONLY_KEY (client.models): metadata only this mount knows, set where
# the server has none (capabilities.custom_metadata), so a chmod or utimes lasts as long as
# the inode instead of until the next refresh from the server


def keep_memory_only(old: Entry | None, new: Entry) -> Entry:
    """``new`` with the memory-only metadata of ``old`` that it lacks (its
    own memory-only keys, e.g. a time the client kept, win)."""
    if old is None or not old.metadata or MEMORY_ONLY_KEY not in old.metadata:
        return new
    new_meta = dict(new.metadata or {})
    keys = [k for k in old.metadata[MEMORY_ONLY_KEY].split(",") if k in old.metadata]
    carried = {k: old.metadata[k] for k in keys if k not in new_meta}
    if not carried:
        return new
    memory = [k for k in new_meta.get(MEMORY_ONLY_KEY, "").split(",") if k] + list(carried)
    return dataclasses.replace(new, metadata={**new_meta, **carried, MEMORY_ONLY_KEY: ",".join(memory)})


class Node:
    """One inode: the remote object it stands for, and what the kernel and
    the open handles hold of it."""

    __slots__ = ("_entry", "atime_ns", "cached_version", "changed_ns", "children_changed_ns", "ino", "local",
                 "lookups", "opens", "unlinked")

    def __init__(self, ino: int, entry: Entry, *, lookups: int = 0) -> None:
        self.ino = ino
        self._entry = entry
        self.lookups = lookups
        self.opens = 0
        #: removed from the namespace while still open (or still dirty)
        self.unlinked = False
        #: content version the kernel may still have cached pages of
        self.cached_version: str | None = None
        #: an access time set explicitly (utimensat): kept in memory for the
        #: inode's lifetime (the servers keep none; otherwise atime = mtime)
        self.atime_ns: int | None = None
        #: when this mount last changed the inode (chmod, utimens, a child
        #: created, removed or renamed): its ctime, kept for the inode's lifetime
        self.changed_ns: int | None = None
        #: a folder: when this mount last created, removed or renamed a child
        #: in it (its mtime; the servers keep no such time for a folder)
        self.children_changed_ns: int | None = None
        #: local content state (set by the write side while the file has staged data)
        self.local: LocalFile | None = None

    @property
    def entry(self) -> Entry:
        return self._entry

    @entry.setter
    def entry(self, value: Entry) -> None:
        # a fresh entry from the server must not drop what only this mount knows
        self._entry = keep_memory_only(self._entry, value)

    def __repr__(self) -> str:
        return f"Node(ino={self.ino}, path={self._entry.path!r}, lookups={self.lookups}, opens={self.opens})"

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir

    @property
    def pinned(self) -> bool:
        """Must stay in the table even with no kernel reference."""
        return self.ino == ROOT_INODE or self.opens > 0 or self.local is not None


#: what only this mount knows of objects whose inode the kernel forgot (times:
#: atime, ctime, a folder's mtime; a mode or mtime kept in memory where the
#: server keeps no metadata): it forgets an unused inode as soon as its entry
#: times out (or its memory is short), and the next lookup must show the same
KEPT_TIMES = 65536

#: atime_ns, changed_ns, children_changed_ns, and the entry if it carries memory-only metadata
LocalState = tuple[int | None, int | None, int | None, Entry | None]
NOTHING_KEPT: LocalState = (None, None, None, None)


class InodeTable:
    def __init__(self, root: Entry) -> None:
        self._next_ino = ROOT_INODE + 1
        self._by_ino: dict[int, Node] = {ROOT_INODE: Node(ROOT_INODE, root, lookups=1)}
        self._by_id: dict[str, int] = {root.file_id: ROOT_INODE}
        self._kept: LRUCache[str, LocalState] = LRUCache(maxsize=KEPT_TIMES)

    def __len__(self) -> int:
        return len(self._by_ino)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._by_ino.values()))

    @property
    def root(self) -> Node:
        return self._by_ino[ROOT_INODE]

    def get(self, ino: int) -> Node | None:
        return self._by_ino.get(ino)

    def by_file_id(self, file_id: str) -> Node | None:
        ino = self._by_id.get(file_id)
        return self._by_ino.get(ino) if ino is not None else None

    def remember(self, entry: Entry, *, lookup: bool = True) -> Node:
        """The node for ``entry`` (created if new), its entry refreshed, and
        its lookup count raised by one when the kernel is handed the inode."""
        node = self.by_file_id(entry.file_id)
        if node is None:
            atime_ns, changed_ns, children_changed_ns, kept_entry = \
                self._kept.pop(entry.file_id, NOTHING_KEPT) if self._kept else NOTHING_KEPT
            node = Node(self._next_ino, keep_memory_only(kept_entry, entry))
            self._next_ino += 1
            node.atime_ns, node.changed_ns, node.children_changed_ns = atime_ns, changed_ns, children_changed_ns
            self._by_ino[node.ino] = node
            self._by_id[entry.file_id] = node.ino
        else:
            # always the latest remote state; staged local data lives in node.local
            node.entry = entry
        if lookup:
            node.lookups += 1
        return node

    def forget(self, ino: int, count: int) -> None:
        node = self._by_ino.get(ino)
        if node is None:
            return
        node.lookups = max(node.lookups - count, 0)
        self.drop_if_unused(node)

    def drop_if_unused(self, node: Node) -> None:
        if node.lookups == 0 and not node.pinned and self._by_ino.get(node.ino) is node:
            del self._by_ino[node.ino]
            if self._by_id.get(node.entry.file_id) == node.ino:
                del self._by_id[node.entry.file_id]
                memory_only = node.entry if MEMORY_ONLY_KEY in (node.entry.metadata or {}) else None
                kept = (node.atime_ns, node.changed_ns, node.children_changed_ns, memory_only)
                if not node.unlinked and kept != NOTHING_KEPT:
                    self._kept[node.entry.file_id] = kept

    def detach(self, node: Node) -> None:
        """The object left the namespace (unlinked, or replaced by a rename):
        a new object with the same id can no longer reach this node."""
        detach_node(self, node)

    def rebind(self, node: Node, entry: Entry) -> None:
        """The node's object got a new id (e.g. re-created remotely)."""
        if self._by_id.get(node.entry.file_id) == node.ino:
            del self._by_id[node.entry.file_id]
        node.entry = entry
        self._by_id[entry.file_id] = node.ino

    def move_subtrees(self, moves: Mapping[str, str]) -> None:
        """Fix the paths of every known node at or below each old root in
        ``moves`` (old -> new, all at once: ``{a: b, b: a}`` swaps two)."""
        move_nodes(self._by_ino.values(), moves)


def detach_node(table: InodeTable, node: Node) -> None:
    """:meth:`InodeTable.detach` without dropping the node (a plain function
    that calls no method: the namespace detaches a removed file's node and
    drops its staged upload in one step, with nothing between that could
    fail; the caller settles the node afterwards)."""
    node.unlinked = True
    if table._by_id.get(node.entry.file_id) == node.ino:
        del table._by_id[node.entry.file_id]


def move_nodes(nodes: Iterable[Node], moves: Mapping[str, str]) -> None:
    """:meth:`InodeTable.move_subtrees` over ``nodes`` (a plain function: the
    namespace moves nodes and staged uploads together in one step)."""
    relocation = Relocation(moves)
    for node in nodes:
        if node.unlinked:
            continue
        path = relocation.of(node.entry.path)
        if path is not None:
            node.entry = dataclasses.replace(node.entry, path=path)
