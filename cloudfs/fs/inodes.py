"""InodeTable: kernel inode numbers <-> remote objects, with lookup counts.

An inode stands for one remote object, keyed by its server object id, so a
rename keeps the inode.  Its number is a hash of the object id (63 bits), so
a remount, or the kernel forgetting an idle inode, gives the same object the
same number, without keeping anything per lookup; a file created here is
numbered by the hash of its first, local id, and the number it had when its
upload landed is kept by the id the server gave it (``records``: the cache
dir's :class:`~cloudfs.fs.records.InodeRecords`), as is the number a
rewrite's new object takes over where a replace gives a new id.  A number
already held by another inode, or recorded for another object, is never
handed out (the next hash of the id is tried), so numbers stay unique
within the mount.

An object may take a new id under the same inode (:meth:`InodeTable.rebind`:
a file created here gets its server id when its upload lands; a backend whose
replace gives a new id swaps the new version in).  A server answer read just
before that step may still name the old id (a listing, a stat, a readdir pass
handed out page by page): the old id keeps leading to the same inode, whose
newer entry stays, so the file's inode number does not change under programs
that keep it (git's index, rsync, tar).

The kernel holds a *lookup count* on every inode it was handed (by lookup,
create, mkdir, readdirplus...).  ``forget`` lowers it; an inode leaves the
table when the kernel has forgotten it, no handle has it open and it holds no
unsaved data.  That bounds memory on a walk over millions of entries.  The
kernel forgets an unused inode as soon as its entry times out (a file closed
more than ``metadata_ttl`` after it was looked up, a file created here once
its upload lands and nothing holds it): the next lookup hands out the same
number (its hash or its record; also kept, with the times only this mount
knows, for the newest :data:`KEPT` objects).

Plain ``def`` only: every method is atomic with respect to other trio tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping

from cachetools import LRUCache

from cloudfs.client.models import Entry
from cloudfs.upload.staging import LocalFile
from cloudfs.client.paths import Relocation
from cloudfs.fs.records import InodeRecords, Uploaded

__all__ = ["ROOT_INODE", "InodeTable", "Node", "hashed_number"]

ROOT_INODE = 1
#: inode numbers are below this (63 bits: programs that keep them signed see them positive)
NUMBER_BITS = 63


def hashed_number(file_id: str, attempt: int = 0) -> int:
    """Inode number candidate ``attempt`` of object ``file_id`` (never 0 or the root's)."""
    key = file_id if attempt == 0 else f"{file_id}\0{attempt}"
    number = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big")
    number &= (1 << NUMBER_BITS) - 1
    return number if number > ROOT_INODE else hashed_number(file_id, attempt + 1_000_000)

class Node:
    """One inode: the remote object it stands for, and what the kernel and
    the open handles hold of it."""

    __slots__ = ("_entry", "_paths", "atime_ns", "cached_version", "changed_ns", "children_changed_ns", "ino",
                 "local", "lookups", "opens", "unlinked", "uploaded")

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
        #: the times shown when this mount's upload of a content version
        #: landed (kept in the cache dir: a remount shows them too)
        self.uploaded: Uploaded | None = None
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


#: what only this mount knows of objects whose inode the kernel forgot (their
#: inode number; times: atime, ctime, a folder's mtime): it forgets an unused
#: inode as soon as its entry times out (or its memory is short), and the next
#: lookup must show the same
KEPT = 65536

#: the old ids kept for one node (see :meth:`InodeTable.rebind`)
RETIRED_PER_NODE = 4

#: atime_ns, changed_ns, children_changed_ns
LocalState = tuple[int | None, int | None, int | None]
NOTHING_KEPT: LocalState = (None, None, None)
#: an object's inode number and its local state, while the kernel has forgotten the inode
Kept = tuple[int, LocalState]


class InodeTable:
    def __init__(self, root: Entry, records: InodeRecords | None = None) -> None:
        #: the inode numbers and times of objects this mount uploaded (see the module docstring)
        self.records = records if records is not None else InodeRecords()
        self._by_ino: dict[int, Node] = {}
        self._by_id: dict[str, int] = {root.file_id: ROOT_INODE}
        self._by_path: PathIndex = {}
        #: ids a node had before :meth:`rebind` -> its inode number (see the module docstring)
        self._retired: dict[str, int] = {}
        #: inode number -> the ids retired for it (dropped with the node)
        self._retired_of: dict[int, list[str]] = {}
        self._kept: LRUCache[str, Kept] = LRUCache(maxsize=KEPT)
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
        if node is None and self._retired:
            node = self._retired_node(entry.file_id)
            if node is not None:
                # a stale answer naming the id the node had: the node's entry is newer
                if lookup:
                    node.lookups += 1
                return node
        if node is None:
            kept = self._kept.pop(entry.file_id, None) if self._kept else None
            if kept is not None and kept[0] not in self._by_ino:
                ino, (atime_ns, changed_ns, children_changed_ns) = kept
            else:
                ino, (atime_ns, changed_ns, children_changed_ns) = self._number_for(entry.file_id), NOTHING_KEPT
            node = Node(ino, entry)
            node.uploaded = self.records.get(entry.file_id)
            node.atime_ns, node.changed_ns, node.children_changed_ns = atime_ns, changed_ns, children_changed_ns
            self._add(node)
            self._by_id[entry.file_id] = node.ino
        else:
            # always the latest remote state; staged local data lives in node.local
            node.entry = entry
        if lookup:
            node.lookups += 1
        return node

    def _number_for(self, file_id: str) -> int:
        """A number no inode holds: the one recorded for the object, else
        the first of its hashes that no inode holds and no other object's
        record keeps."""
        recorded = self.records.get(file_id)
        if recorded is not None and recorded.ino not in self._by_ino:
            return recorded.ino
        for attempt in itertools.count():
            number = hashed_number(file_id, attempt)
            if number not in self._by_ino and self.records.owner_of(number) in (None, file_id):
                return number
        raise AssertionError("unreachable")

    def _retired_node(self, file_id: str) -> Node | None:
        ino = self._retired.get(file_id)
        node = self._by_ino.get(ino) if ino is not None else None
        return node if node is not None and not node.unlinked else None

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
            _unretire(self, node.ino)
            if self._by_id.get(node.entry.file_id) == node.ino:
                del self._by_id[node.entry.file_id]
                if not node.unlinked:
                    self._kept[node.entry.file_id] = (node.ino, (node.atime_ns, node.changed_ns,
                                                                 node.children_changed_ns))

    def detach(self, node: Node) -> None:
        """The object left the namespace (unlinked, or replaced by a rename):
        a new object with the same id can no longer reach this node."""
        detach_node(self, node)

    def rebind(self, node: Node, entry: Entry) -> None:
        """The node's object got a new id (its upload created it, or a
        replace gave a new id); the old id still leads here (see the module
        docstring)."""
        old_id = node.entry.file_id
        if self._by_id.get(old_id) == node.ino:
            del self._by_id[old_id]
            self._retired[old_id] = node.ino
            retired = self._retired_of.setdefault(node.ino, [])
            retired.append(old_id)
            if len(retired) > RETIRED_PER_NODE:  # a file rewritten all day: only answers of the last moments matter
                del self._retired[retired.pop(0)]
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
    if node.uploaded is not None:
        table.records.drop(node.entry.file_id)  # (a failed write of the store is logged, never raised)
    # a stale answer naming an id it had no longer leads to a removed file
    _unretire(table, node.ino)


def _unretire(table: InodeTable, ino: int) -> None:
    """Forget the ids retired for inode ``ino`` (a plain function: see :func:`detach_node`)."""
    for file_id in table._retired_of.pop(ino, ()):
        if table._retired.get(file_id) == ino:
            del table._retired[file_id]


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
