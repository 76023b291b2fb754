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

from cloudfs.client.models import Entry
from cloudfs.upload.staging import LocalFile
from cloudfs.client.paths import Relocation

__all__ = ["ROOT_INODE", "InodeTable", "Node"]

ROOT_INODE = 1

class Node:
    """One inode: the remote object it stands for, and what the kernel and
    the open handles hold of it."""

    __slots__ = ("_entry", "_paths", "atime_ns", "cached_version", "changed_ns", "children_changed_ns", "ino",
                 "local", "lookups", "opens", "unlinked")

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
        #: the table's index of nodes by path, which this node is filed in
        self._paths: PathIndex | None = None

    @property
    def entry(self) -> Entry:
        return self._entry

    @entry.setter
    def entry(self, value: Entry) -> None:
        old = self._entry
        self._entry = value
        paths = self._paths
        if paths is not None and old.path != value.path:
            _unfile(paths, old.path, self)
            _file(paths, self)

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


#: nodes by path (path -> inode number -> node): every path change goes
#: through ``Node.entry``, which keeps it
PathIndex = dict[str, dict[int, Node]]


def _file(paths: PathIndex, node: Node) -> None:
    paths.setdefault(node.entry.path, {})[node.ino] = node


def _unfile(paths: PathIndex, path: str, node: Node) -> None:
    filed = paths.get(path)
    if filed is not None and filed.get(node.ino) is node:
        del filed[node.ino]
        if not filed:
            del paths[path]


#: what only this mount knows of objects whose inode the kernel forgot (times:
#: atime, ctime, a folder's mtime): it forgets an unused inode as soon as its
#: entry times out (or its memory is short), and the next lookup must show the same
KEPT_TIMES = 65536

#: atime_ns, changed_ns, children_changed_ns
LocalState = tuple[int | None, int | None, int | None]
NOTHING_KEPT: LocalState = (None, None, None)


class InodeTable:
    def __init__(self, root: Entry) -> None:
        self._next_ino = ROOT_INODE + 1
        self._by_ino: dict[int, Node] = {}
        self._by_id: dict[str, int] = {root.file_id: ROOT_INODE}
        self._by_path: PathIndex = {}
        self._kept: LRUCache[str, LocalState] = LRUCache(maxsize=KEPT_TIMES)
        self._add(Node(ROOT_INODE, root, lookups=1))

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

    def at_path(self, path: str) -> list[Node]:
        """The nodes whose object is at ``path`` (unlinked ones included)."""
        filed = self._by_path.get(path)
        return list(filed.values()) if filed else []

    def _add(self, node: Node) -> None:
        self._by_ino[node.ino] = node
        node._paths = self._by_path
        _file(self._by_path, node)

    def remember(self, entry: Entry, *, lookup: bool = True) -> Node:
        """The node for ``entry`` (created if new), its entry refreshed, and
        its lookup count raised by one when the kernel is handed the inode."""
        node = self.by_file_id(entry.file_id)
        if node is None:
            atime_ns, changed_ns, children_changed_ns = \
                self._kept.pop(entry.file_id, NOTHING_KEPT) if self._kept else NOTHING_KEPT
            node = Node(self._next_ino, entry)
            self._next_ino += 1
            node.atime_ns, node.changed_ns, node.children_changed_ns = atime_ns, changed_ns, children_changed_ns
            self._add(node)
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
            node._paths = None
            _unfile(self._by_path, node.entry.path, node)
            if self._by_id.get(node.entry.file_id) == node.ino:
                del self._by_id[node.entry.file_id]
                kept = (node.atime_ns, node.changed_ns, node.children_changed_ns)
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

    def move_subtrees(self, moves: Mapping[str, str], *, folders: bool = True) -> None:
        """Fix the paths of every known node at or below each old root in
        ``moves`` (old -> new, all at once: ``{a: b, b: a}`` swaps two).
        Not ``folders``: every old root is a file's path (nothing below it)."""
        move_nodes(self.affected(moves, folders=folders), moves)

    def affected(self, moves: Mapping[str, str], *, folders: bool = True) -> list[Node]:
        """The nodes a move of ``moves`` may concern: every one, or where
        only files move, those at their paths."""
        if folders:
            return list(self._by_ino.values())
        return [node for old in moves for node in self.at_path(old)]


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
    # the new paths worked out first: an exchange swaps two at once
    changed = []
    for node in nodes:
        if node.unlinked:
            continue
        path = relocation.of(node.entry.path)
        if path is not None:
            changed.append((node, path))
    for node, path in changed:
        node.entry = dataclasses.replace(node.entry, path=path)
