"""The only place that builds a node's :class:`Attributes` (what stat(2)
shows; ``ops.py`` hands them to the kernel as pyfuse3's ``EntryAttributes``).

Servers know sizes and times but not POSIX owners or modes.  Owner and
group are the mounting user's (or the ``uid``/``gid`` options), permission
bits come from the ``umask`` option unless a ``chmod`` stored explicit bits in
the object's ``dav:cloudfs:mode`` metadata.  The modification time is the
server's ``updated_at``, except where cloudfs recorded an exact one in
``dav:cloudfs:mtime`` for the current content version (a server may reset
``updated_at`` on rename and move, which would break ``rsync -a``).  A
folder's mtime and any inode's ctime also follow the changes this mount made
(Node.children_changed_ns, Node.changed_ns): the servers keep no such times.

A content version this mount uploaded shows the times it showed when the
upload landed (Node.uploaded, kept in the cache dir for the next mount):
the server's time of that upload is not a change of the file's status, and
servers without custom metadata keep no exact mtime, so ctime and mtime stay what
they were while the upload waited, in this mount and the next.  ctime is
otherwise the latest of the mtime, the server's own time of the object
(which a rename, move or new content by anyone moves) and this mount's
changes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from cloudfs.client.models import MODE_KEY, Entry, file_mtime_ns, stored_mtime_ns
from cloudfs.fs.inodes import Node

BLOCK_SIZE = 1 << 20  # st_blksize: tools size their I/O buffers by it, and fewer, larger requests cost less


@dataclass(frozen=True)
class Ownership:
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    umask: int = 0o022


def stored_mode(entry: Entry) -> int | None:
    raw = entry.metadata.get(MODE_KEY) if entry.metadata else None
    if not raw:
        return None
    try:
        return int(raw, 8) & 0o7777
    except ValueError:
        return None


def permission_bits(entry: Entry, owner: Ownership) -> int:
    bits = stored_mode(entry)
    if bits is None:
        bits = (0o777 if entry.is_dir else 0o666) & ~owner.umask
    return bits


def node_permission_bits(node: Node, owner: Ownership) -> int:
    """The bits a node shows: a mode set while its content waits for an
    upload is pending in its staged file (the upload carries it)."""
    pending = getattr(node.local, "metadata", None)
    if pending and MODE_KEY in pending:
        return int(pending[MODE_KEY], 8) & 0o7777
    return permission_bits(node.entry, owner)


@dataclass(slots=True)
class Attributes:
    """What stat(2) shows of an inode, and how long the kernel may cache it
    (the fields of pyfuse3's ``EntryAttributes``, which ``ops.py`` fills)."""

    st_ino: int = 0
    generation: int = 0
    entry_timeout: float = 0.0
    attr_timeout: float = 0.0
    st_mode: int = 0
    st_nlink: int = 0
    st_uid: int = 0
    st_gid: int = 0
    st_rdev: int = 0
    st_size: int = 0
    st_blksize: int = 0
    st_blocks: int = 0
    st_atime_ns: int = 0
    st_mtime_ns: int = 0
    st_ctime_ns: int = 0
    st_birthtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class AttrChanges:
    """What a setattr asks to change (None: leave it)."""

    size: int | None = None
    mode: int | None = None
    mtime_ns: int | None = None
    atime_ns: int | None = None
    #: owners (-1: "unchanged", as chown(2) takes it)
    uid: int | None = None
    gid: int | None = None


def build(node: Node, owner: Ownership, timeout_s: float, *, link: bool = False) -> Attributes:
    entry = node.entry
    attrs = Attributes()
    attrs.st_ino = node.ino
    attrs.generation = 0
    attrs.entry_timeout = timeout_s
    attrs.attr_timeout = timeout_s
    kind = stat.S_IFDIR if entry.is_dir else stat.S_IFREG
    local = node.local
    size = entry.size
    mtime_ns = file_mtime_ns(entry)
    status_ns = entry.mtime_ns
    uploaded = node.uploaded
    if uploaded is not None and uploaded.version == entry.version and not entry.is_dir:
        mtime_ns, status_ns = uploaded.mtime_ns, uploaded.ctime_ns
    bits = node_permission_bits(node, owner)
    if local is not None:
        size = local.size
        mtime_ns = local.mtime_ns
    if node.children_changed_ns is not None:
        mtime_ns = max(mtime_ns, node.children_changed_ns)
    if link:
        # a link's own mode means nothing on Linux: always shown as 0777
        kind, bits = stat.S_IFLNK, 0o777
    attrs.st_mode = kind | bits
    # folders report 1: "link count unknown", so tools never assume a leaf
    # folder; a file unlinked while open has no name left: 0
    attrs.st_nlink = 0 if node.unlinked and not entry.is_dir else 1
    attrs.st_uid = owner.uid
    attrs.st_gid = owner.gid
    attrs.st_rdev = 0
    attrs.st_size = 0 if entry.is_dir else size
    attrs.st_blksize = BLOCK_SIZE
    attrs.st_blocks = -(-attrs.st_size // 512)
    attrs.st_mtime_ns = mtime_ns
    attrs.st_atime_ns = mtime_ns if node.atime_ns is None else node.atime_ns
    attrs.st_ctime_ns = max(mtime_ns, status_ns, node.changed_ns or 0)
    attrs.st_birthtime_ns = entry.ctime_ns
    return attrs
