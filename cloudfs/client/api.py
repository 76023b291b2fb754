"""CloudreveClient: the one interface the filesystem layer uses to talk to a server.

THIS FILE IS THE CONTRACT between the client and the mount.  The public
signatures below are fixed (the implementation may add private helpers and
sibling modules: dialects, auth, retry, transfers).  Paths are absolute remote
paths (``"/"`` = root), decoded ``str``.  Every method raises only
:class:`cloudfs.errors.CloudfsError` subclasses, and finishes (or fails) within
``ClientSettings.deadline_s`` unless documented otherwise (bulk transfers are
bounded per chunk / per range instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudfs.client.models import Capacity, Entry, ServerInfo

#: progress callback: called with the number of bytes newly transferred
ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ClientSettings:
    #: one HTTP request (connect, each read, each write) may take at most this long
    request_timeout_s: float = 30.0
    #: a whole call, retries included, gives up after this long
    deadline_s: float = 30.0
    #: attempts for a retryable request (first try included)
    max_attempts: int = 5
    #: base and cap of the exponential backoff (full jitter)
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    #: parallel ranges when one read spans several download parts
    read_parallelism: int = 4
    #: upper bound on parallel chunks of one upload (the server may allow fewer)
    upload_parallelism: int = 4
    #: HTTP connection pool size
    max_connections: int = 32
    user_agent: str = "cloudfs"


class CloudreveClient:
    """Signature reference; the implementation replaces the bodies."""

    # ---- lifecycle / auth ------------------------------------------------
    info: ServerInfo  # filled in by connect()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        email: str | None = None,
        password: str | None = None,
        otp: Callable[[], str] | None = None,
        token_store: "object | None" = None,
        settings: ClientSettings = ClientSettings(),
    ) -> "CloudreveClient":
        """Detect the server (``NotCloudreveError`` names what was found), then
        log in: a stored refresh token first, else email + password (asking
        ``otp()`` when the server wants a 2FA code).  Raises
        ``AuthenticationError`` if neither works.  Use as ``async with``."""
        raise NotImplementedError

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> "CloudreveClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- metadata ------------------------------------------------------------
    async def stat(self, path: str) -> Entry:
        """One object; works for the root too.  Missing -> ENOENT error."""
        raise NotImplementedError

    def list_dir(self, path: str) -> AsyncIterator[list[Entry]]:
        """Children of a folder, page by page (all pages, in a stable order)."""
        raise NotImplementedError

    async def list_all(self, path: str) -> tuple[Entry, list[Entry]]:
        """The folder itself and all its children (walks every page)."""
        raise NotImplementedError

    async def mkdir(self, path: str) -> Entry:
        """Create a folder; EEXIST if anything already has that path."""
        raise NotImplementedError

    async def create_file(self, path: str) -> Entry:
        """Create an empty file; EEXIST if anything already has that path."""
        raise NotImplementedError

    async def rename(self, path: str, new_name: str) -> Entry:
        """Rename in place (never overwrites: EEXIST)."""
        raise NotImplementedError

    async def move(self, paths: Sequence[str], dst_dir: str) -> None:
        """Move objects into a folder, keeping names (never overwrites)."""
        raise NotImplementedError

    async def copy(self, paths: Sequence[str], dst_dir: str) -> None:
        raise NotImplementedError

    async def delete(self, paths: Sequence[str], *, permanent: bool = False) -> None:
        """Delete (recursively for folders); to the trash unless permanent."""
        raise NotImplementedError

    async def set_metadata(self, path: str, values: Mapping[str, str | None]) -> None:
        """Set (or remove, with None) public metadata keys such as ``dav:cloudfs:mtime``.
        EOPNOTSUPP on servers without metadata (v3)."""
        raise NotImplementedError

    async def capacity(self) -> Capacity:
        raise NotImplementedError

    # ---- data ------------------------------------------------------------------
    async def read(self, entry: Entry, off: int, length: int) -> bytes:
        """Bytes [off, off+length) of the content version ``entry.version``
        (short only at end of file).  Signed URLs are cached and renewed
        transparently; large spans are fetched as several parallel ranges."""
        raise NotImplementedError

    def stream(self, entry: Entry, off: int, length: int) -> AsyncIterator[bytes]:
        """Like read() but yields the bytes as they arrive (one HTTP range)."""
        raise NotImplementedError

    async def upload(
        self,
        path: str,
        source: Path,
        *,
        mtime_ns: int | None = None,
        replace: Entry | None = None,
        progress: ProgressFn | None = None,
    ) -> Entry:
        """Upload the whole local file ``source`` to ``path`` and return the new Entry.

        ``replace`` is the entry being overwritten (its version is sent as the
        expected previous version where the server supports it): the upload
        adds a new version, so a failure leaves the old content intact.  With
        ``replace=None`` the path must not exist (EEXIST).  Chunks are retried;
        on cancellation or failure the upload session is cancelled.
        ``mtime_ns`` becomes the file's modification time."""
        raise NotImplementedError
