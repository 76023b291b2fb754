"""Plain data the client hands to the layers above: no HTTP, no dialect details.

Every remote object is addressed by its absolute remote path (``"/"`` is the
drive's root, ``"/docs/a.txt"`` a file), decoded, as ``str``.  ``file_id`` is
the server's stable object id (kept across rename and move, new on copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: a backend dialect's registered name (:mod:`cloudfs.client.backends`)
Dialect = str

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


def file_mtime_ns(entry: Entry) -> int:
    """The file's own time: the exact one cloudfs recorded for this content,
    else the server's.  (A recorded 0, the epoch, is a time like any other.)"""
    stored = stored_mtime_ns(entry)
    return entry.mtime_ns if stored is None else stored


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
    #: Public metadata (``dav:*`` keys hold cloudfs's own attributes; on a
    #: backend without custom metadata, what this process keeps: client/overlay.py).
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: An upload session is open on this object (a new file still uploading).
    uploading: bool = False

    @property
    def name(self) -> str:
        # (posixpath.basename, without its generality: asked for every entry
        # of a listing, several times, on the way to the kernel)
        return self.path.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class Capacity:
    total: int
    used: int

    @property
    def free(self) -> int:
        return max(self.total - self.used, 0)


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's quota and use, in bytes (``user_id`` empty: the logged-in user)."""

    user_id: str
    quota: int
    used: int


@dataclass(frozen=True, slots=True)
class TierUsage:
    """A tenant's use, for one quota tier (``quota``) or overall (``quota`` None), in bytes."""

    quota: int | None
    allocated: int
    capacity: int
    used: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    """What ``cloudfs quota`` shows: per user, per quota tier and overall
    (the last two only where the server has tenant reports)."""

    users: list[UserUsage]
    tiers: list[TierUsage] | None = None
    overview: TierUsage | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so the layers above ask this instead of
    knowing which backend they talk to.  Each dialect declares one."""

    #: the server refuses a write based on a content version that is no
    #: longer current (a precondition it checks itself); without it the
    #: client checks before it replaces, which leaves a window
    content_preconditions: bool = True
    #: objects keep custom metadata (mode, exact mtime, link marks) on the
    #: server, durably.  Without it the client keeps what is set, and what
    #: uploads carry, in this process only (client/overlay.py): entries show
    #: it as if the server kept it, until the process ends
    custom_metadata: bool = True
    #: deleted objects go to a trash first (recoverable)
    trash: bool = True
    #: new content replaces the object in place (False: upload beside,
    #: delete, rename into place)
    overwrite_in_place: bool = True
    #: replacing a file's content gives it a new object id (the inode follows)
    replace_gives_new_id: bool = False
    #: how the API addresses objects: "path" or "id"
    addressing: Literal["path", "id"] = "path"
    #: how upload bytes travel: "relayed" (chunks through the API server)
    #: or "presigned" (parts PUT to pre-signed storage URLs)
    upload_style: Literal["relayed", "presigned"] = "relayed"
    #: the completing chunk must go alone, after every other one succeeded
    last_chunk_alone: bool = True
    #: the server offers a feed of changes made by others
    change_feed: bool = False
    #: an upload announces the whole file's SHA-256 before its first byte
    #: (the client hashes the file and passes ``sha256`` to open_upload)
    whole_file_hash: bool = False
    #: a small file's new content goes up in one request (no session, no
    #: swap): the write-back then sends many small files at once
    whole_uploads: bool = True
    #: a new file can be left to its first upload to make: a cancelled
    #: upload of a new file leaves nothing holding its name (False: the
    #: filesystem creates each file on the server at once)
    creates_by_upload: bool = True


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
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def keeps_metadata(self) -> bool:
        """Objects keep public metadata (mode, exact mtime), set directly or with an upload."""
        return self.capabilities.custom_metadata
