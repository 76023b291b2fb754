"""Plain data the client hands to the layers above: no HTTP, no dialect details.

Every remote object is addressed by its absolute remote path (``"/"`` is the
drive's root, ``"/docs/a.txt"`` a file), decoded, as ``str``.  ``file_id`` is
the server's stable object id (kept across rename and move, new on copy).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["v4", "v3"]

# cloudfs's own attributes, kept in Cloudreve's public metadata (WebDAV "dead
# property" namespace, which Cloudreve stores verbatim and does not let bump
# the object's updated time)
MODE_KEY = "dav:cloudfs:mode"
#: "<mtime in ns>:<content version it belongs to>"
MTIME_KEY = "dav:cloudfs:mtime"
#: a random token per upload, set when the upload completes: an uploader
#: whose answers were all lost recognises its own version by it (metadata
#: belongs to the file, not the version, so size and mtime are checked too)
UPLOAD_TAG_KEY = "dav:cloudfs:upload"
#: marks a file that is a symbolic link; its content is the link's target
LINK_KEY = "dav:cloudfs:symlink"


#: Names (comma-separated) the metadata keys of an entry that only this
#: process knows, where the server keeps no metadata (Cloudreve 3): the
#: filesystem keeps them for the inode's lifetime across fresh server entries
MEMORY_ONLY_KEY = "cloudfs:memory-only"


def mtime_value(mtime_ns: int, version: str) -> str:
    return f"{mtime_ns}:{version}"


def stored_mtime_ns(entry: Entry) -> int | None:
    """The exact mtime cloudfs recorded, if it belongs to the current content."""
    raw = entry.metadata.get(MTIME_KEY) if entry.metadata else None
    if not raw:
        return None
    value, _, version = raw.partition(":")
    if version != entry.version:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or folder as the server describes it."""

    file_id: str
    path: str
    is_dir: bool
    size: int
    mtime_ns: int
    ctime_ns: int
    #: Changes whenever the content changes (v4: the primary entity id).
    #: Empty for a file that has no content yet and for folders.
    version: str = ""
    #: Public metadata (v4 only; ``dav:*`` keys hold cloudfs's own attributes).
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: An upload session is open on this object (a new file still uploading).
    uploading: bool = False

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if self.path != "/" else ""


@dataclass(frozen=True, slots=True)
class Capacity:
    total: int
    used: int

    @property
    def free(self) -> int:
        return max(self.total - self.used, 0)


@dataclass(frozen=True, slots=True)
class TrashSummary:
    """What the recycle bin holds: deleted items still count against the quota."""

    items: int
    #: the files' sizes (a deleted folder's content is not listed, so this is a floor)
    size: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    dialect: Dialect
    version: str
    title: str = ""
    #: objects keep public metadata (mode, exact mtime), set directly or with an upload
    keeps_metadata: bool = True
    #: a small file's new content goes up in one request (no session, no swap)
    whole_uploads: bool = True
