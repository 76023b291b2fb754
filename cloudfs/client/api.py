"""Client: the one interface the filesystem layer uses to talk to a server.

THIS FILE IS THE CONTRACT between the client and the mount.  The public
signatures below are fixed (the implementation lives in sibling modules:
:mod:`http` (pool, retries, auth), :mod:`detect`, :mod:`login`, the dialect
:mod:`v4`, :mod:`download`, :mod:`upload`).  Paths are absolute remote
paths (``"/"`` = root), decoded ``str``.  Every method raises only
:class:`cloudfs.errors.CloudfsError` subclasses, and finishes (or fails) within
``ClientSettings.deadline_s`` unless documented otherwise (bulk transfers are
bounded per chunk / per range instead).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from cloudfs.client import paths
from cloudfs.client.backends import detect
from cloudfs.client.dialect import Dialect, Ref, path_of
from cloudfs.client.download import Downloader
from cloudfs.client.http import Http
from cloudfs.client.models import (
    Capabilities,
    Capacity,
    Entry,
    ServerInfo,
    TrashSummary,
    UsageReport,
    UserUsage,
)
from cloudfs.client.settings import ClientSettings
from cloudfs.client.sha256state import HashStates
from cloudfs.client.tokenstore import Store
from cloudfs.client.upload import Uploader
from cloudfs.errors import CloudfsError, NotSupported, ProtocolError, SessionExpired

if TYPE_CHECKING:
    from cloudfs.client.changefeed import ChangeFeed

__all__ = ["Client", "ClientSettings", "CloudreveClient", "ProgressFn"]

log = logging.getLogger(__name__)

#: progress callback: called with the number of bytes newly transferred
ProgressFn = Callable[[int], None]

P = ParamSpec("P")
R = TypeVar("R")


def _only_cloudfs_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Keep the contract's promise: a malformed answer that slipped past the
    parsers (KeyError, TypeError...) becomes a ProtocolError, not a crash."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, UnicodeError) as exc:
            log.error("unexpected %s in %s (malformed server answer or client bug)", type(exc).__name__,
                      fn.__name__, exc_info=True)
            raise ProtocolError(f"{fn.__name__}: unexpected answer from the server ({type(exc).__name__})") from exc

    return wrapper


class Client:
    """A logged-in connection to one server (any registered backend).  Create with
    :meth:`connect`; use as ``async with``."""

    # ---- lifecycle / auth ------------------------------------------------
    info: ServerInfo  # filled in by connect()

    def __init__(self, http: Http, dialect: Dialect, settings: ClientSettings) -> None:
        self._http = http
        self._dialect = dialect
        self.settings = settings
        self.info = dialect.info
        self._downloads = Downloader(http, dialect)
        self._uploads = Uploader(dialect, settings, self.stat)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        email: str | None = None,
        password: str | None = None,
        otp: Callable[[], str] | None = None,
        token_store: Store | None = None,
        settings: ClientSettings = ClientSettings(),
        resume: bool = True,
        backend: str | None = None,
    ) -> "Client":
        """Detect the server (``UnsupportedServer`` names what was found), then
        log in: a stored refresh token first, else email + password (asking
        ``otp()`` when the server wants a 2FA code).  Raises
        ``AuthenticationError`` if neither works.  Use as ``async with``.

        ``token_store`` is a :class:`cloudfs.client.auth.TokenStore` (or
        anything with its ``load``/``save``); None keeps nothing on disk.
        ``resume=False`` logs in with the password even when a login is
        stored (a password given means that password: a wrong one fails);
        the new login then replaces the stored one.  ``backend`` (a name in
        :mod:`cloudfs.client.backends`) skips detection by the others."""
        url = url.strip().rstrip("/")
        http = Http(url, settings)
        try:
            dialect = await detect(http, backend)
            # each backend owns its login (tokens, a cookie session, a signature...)
            http.auth = await dialect.log_in(url, email=email, password=password, otp=otp, store=token_store,
                                             resume=resume)
        except BaseException:
            await http.aclose()
            raise
        log.info("connected to %s (%s %s)", url, dialect.info.dialect, dialect.info.version)
        return cls(http, dialect, settings)

    async def aclose(self) -> None:
        self._downloads.close()
        await self._http.aclose()

    @_only_cloudfs_errors
    async def logout(self) -> None:
        """Revoke this login on the server (the backend knows how: a refresh
        token, a cookie session...), so a stolen copy is useless."""
        if self._http.auth is not None:
            await self._dialect.log_out(self._http.auth)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def client_id(self) -> str:
        """The ``X-Cr-Client-Id`` this client sends (a UUID per instance)."""
        return self._http.client_id

    def use_client_id(self, client_id: str) -> None:
        """Send this ``X-Cr-Client-Id`` from now on: one kept per account, so a remount's
        change feed resumes where the last one stopped and never hears its own changes."""
        self._http.use_client_id(client_id)

    def change_feed(self, **callbacks: Any) -> ChangeFeed | None:
        """A :class:`~cloudfs.client.changefeed.ChangeFeed` of the whole drive (Cloudreve 4;
        it finds out itself whether the server has one); None for backends without one."""
        if not self.capabilities.change_feed:
            return None
        from cloudfs.client.changefeed import ChangeFeed

        return ChangeFeed(self._http, **callbacks)

    @property
    def capabilities(self) -> Capabilities:
        """What the backend can do (versions, metadata, trash, new ids on replace...)."""
        return self._dialect.info.capabilities

    @property
    def keeps_metadata(self) -> bool:
        """Whether objects keep public metadata (mode, exact mtime): set by
        :meth:`set_metadata` or carried by an upload (``metadata``)."""
        return self._dialect.info.keeps_metadata

    @property
    def whole_uploads(self) -> bool:
        """Whether a small file's new content goes up in one request (then
        many small uploads at once are round trips, cheap for the server)."""
        return self._dialect.info.capabilities.whole_uploads

    def check_new_name(self, path: str) -> None:
        """Raise the error the server would give for a new object at
        ``path`` because of its name (EINVAL, ENAMETOOLONG), without asking
        it: a file created locally meets the server only when it uploads."""
        name = paths.split(paths.normalize(path))[1]
        reason = self._dialect.name_refusal(name)
        if reason is not None:
            raise CloudfsError(f"{name!r}: {reason}", errno=errno.EINVAL)

    @property
    def url(self) -> str:
        return self._http.base_url

    # ---- metadata ------------------------------------------------------------
    @_only_cloudfs_errors
    async def stat(self, path: str) -> Entry:
        """One object; works for the root too.  Missing -> ENOENT error."""
        return await self._dialect.stat(paths.normalize(path))

    async def list_dir(self, path: str) -> AsyncGenerator[list[Entry], None]:
        """Children of a folder, page by page (all pages, in a stable order)."""
        async with aclosing(self.list_pages(path)) as pages:
            async for _, children in pages:
                yield children

    async def list_pages(self, path: str) -> AsyncGenerator[tuple[Entry, list[Entry]], None]:
        """(the folder itself, one page of its children) per page, in a stable order."""
        folder = paths.normalize(path)
        try:
            async with aclosing(self._dialect.list_pages(folder)) as pages:
                async for page in pages:
                    yield page
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"list {folder}: unexpected answer from the server ({type(exc).__name__})") from exc

    @_only_cloudfs_errors
    async def list_all(self, path: str) -> tuple[Entry, list[Entry]]:
        """The folder itself and all its children (walks every page)."""
        parent: Entry | None = None
        children: list[Entry] = []
        async with aclosing(self.list_pages(path)) as pages:
            async for page_parent, page in pages:
                parent = parent or page_parent
                children.extend(page)
        if parent is None:  # pragma: no cover - list_pages always yields once
            raise ProtocolError(f"list {path}: no answer")
        return parent, children

    @_only_cloudfs_errors
    async def mkdir(self, path: str) -> Entry:
        """Create a folder; EEXIST if anything already has that path."""
        return await self._dialect.create(self._not_root(path), folder=True)

    @_only_cloudfs_errors
    async def create_file(self, path: str) -> Entry:
        """Create an empty file; EEXIST if anything already has that path."""
        return await self._dialect.create(self._not_root(path), folder=False)

    @_only_cloudfs_errors
    async def rename(self, target: Entry | str, new_name: str) -> Entry:
        """Rename in place (never overwrites: EEXIST).  ``target``: the
        Entry the caller holds (an id-addressed backend then needs no
        lookup) or a path."""
        paths.check_name(new_name)
        source = _ref(target)
        if path_of(source) == "/":
            raise CloudfsError("the root cannot be renamed", errno=errno.EBUSY)
        return await self._dialect.rename(source, new_name)

    @_only_cloudfs_errors
    async def relocate(self, entry: Entry, folder: str, name: str, *, spare_name: str) -> Entry:
        """Put ``entry`` at ``folder/name`` (which must be free) and return
        it there: a rename, a move, or both.  Both is not atomic: a rename to
        ``spare_name`` goes first, then the move, then the rename to
        ``name``; a failed step puts the object back where it was (best
        effort).  Never through ``name`` in the source folder: a new file of
        that name may be on its way up there (a file made by its first
        upload holds no name on the server until then), and its upload,
        meeting this object in passing, would take it for someone else's
        file and go up as a conflict copy."""
        src_folder, src_name = paths.split(entry.path)
        if src_folder == folder:
            if src_name == name:
                return entry
            return await self.rename(entry, name)
        staged_name = name if src_name == name else spare_name
        if staged_name != src_name:
            paths.check_name(name)  # (a name refused here is refused before anything moved)
            entry = await self.rename(entry, staged_name)
        try:
            await self.move([entry], folder)
        except BaseException:
            if staged_name != src_name:
                await self._put_back(entry, src_folder, src_name)
            raise
        moved = dataclasses.replace(entry, path=paths.join(folder, staged_name))
        if staged_name == name:
            return moved
        try:
            return await self.rename(moved, name)
        except BaseException:
            await self._move_back(moved, src_folder, src_name)
            raise

    async def _put_back(self, entry: Entry, folder: str, name: str) -> None:
        """Best effort to undo the rename of a relocation whose move failed."""
        try:
            await self.rename(entry, name)
        except CloudfsError as exc:
            log.error("could not move %s back to %s after a failed rename: %s", entry.path,
                      paths.join(folder, name), exc)

    async def _move_back(self, moved: Entry, folder: str, name: str) -> None:
        """Best effort to undo a relocation whose last rename failed (a name
        the server refuses): the object goes back to its folder and name."""
        try:
            await self.move([moved], folder)
        except CloudfsError as exc:
            log.error("could not move %s back to %s after a failed rename: %s", moved.path, folder, exc)
            return
        back = dataclasses.replace(moved, path=paths.join(folder, paths.split(moved.path)[1]))
        await self._put_back(back, folder, name)

    @_only_cloudfs_errors
    async def move(self, paths_: Sequence[Entry | str], dst_dir: str) -> None:
        """Move objects (Entries held or paths) into a folder, keeping names (never overwrites)."""
        if paths_:
            await self._dialect.move([_ref(p) for p in paths_], paths.normalize(dst_dir), copy=False)

    @_only_cloudfs_errors
    async def copy(self, paths_: Sequence[Entry | str], dst_dir: str) -> None:
        """Copy objects (Entries held or paths) into a folder, keeping names (never overwrites)."""
        if paths_:
            await self._dialect.move([_ref(p) for p in paths_], paths.normalize(dst_dir), copy=True)

    @_only_cloudfs_errors
    async def delete(self, paths_: Sequence[Entry | str], *, permanent: bool = False) -> None:
        """Delete objects (Entries held or paths), recursively for folders;
        to the trash unless permanent."""
        if paths_:
            await self._dialect.delete([_ref(p) for p in paths_], permanent=permanent)

    @_only_cloudfs_errors
    async def set_metadata(self, target: Entry | str, values: Mapping[str, str | None]) -> None:
        """Set (or remove, with None) public metadata keys such as ``dav:cloudfs:mtime``
        of ``target`` (an Entry held or a path).  On servers without metadata
        (``capabilities.custom_metadata`` False) kept by this client, by
        object id, for as long as it runs (:mod:`cloudfs.client.overlay`)."""
        await self._dialect.set_metadata(_ref(target), values)

    @_only_cloudfs_errors
    async def capacity(self) -> Capacity:
        return await self._dialect.capacity()

    @_only_cloudfs_errors
    async def usage(self, *, users: Sequence[str] = (), by_quota: bool = False) -> UsageReport:
        """Quota and use: of ``users`` (default: the logged-in user), the
        tenant's quota tiers (``by_quota``) and its overview, where the
        backend has tenant reports (``tenant_usage``); elsewhere the logged-in
        user's capacity only (``NotSupported`` if more was asked)."""
        report = getattr(self._dialect, "tenant_usage", None)
        if report is not None:
            result: UsageReport = await report(users=list(users), by_quota=by_quota)
            return result
        if users or by_quota:
            raise NotSupported(f"{self.info.dialect} has no tenant reports: only the logged-in user's use",
                               errno=errno.EOPNOTSUPP)
        capacity = await self._dialect.capacity()
        return UsageReport(users=[UserUsage(user_id="", quota=capacity.total, used=capacity.used)])

    @_only_cloudfs_errors
    async def trash(self) -> TrashSummary | None:
        """What the recycle bin holds (it counts against the quota); None
        on servers without one."""
        return await self._dialect.trash()

    @_only_cloudfs_errors
    async def empty_trash(self) -> None:
        """Delete everything in the recycle bin for good (no-op without one)."""
        await self._dialect.empty_trash()

    # ---- data ------------------------------------------------------------------
    @_only_cloudfs_errors
    async def read(self, entry: Entry, off: int, length: int) -> bytes:
        """Bytes [off, off+length) of the content version ``entry.version``
        (short only at end of file).  Signed URLs are cached and renewed
        transparently; large spans are fetched as several parallel ranges."""
        return await self._downloads.read(entry, off, length)

    async def stream(self, entry: Entry, off: int, length: int) -> AsyncGenerator[bytes, None]:
        """Like read() but yields the bytes as they arrive (one HTTP range)."""
        async with aclosing(self._downloads.stream(entry, off, length)) as pieces:
            async for piece in pieces:
                yield piece

    @_only_cloudfs_errors
    async def fill(self, entry: Entry, off: int, length: int, fd: int,
                   progress: Callable[[int], None] | None = None) -> None:
        """Write bytes ``[off, off+length)`` of ``entry``'s content into the
        file ``fd`` at the same offsets (e.g. a sparse cache file), without
        the bytes passing through the event loop: the bulk download path.
        ``progress(upto)`` hears, in trio, how far the file is written."""
        await self._downloads.fill(entry, off, length, fd, progress)

    @_only_cloudfs_errors
    async def upload(
        self,
        path: str,
        source: Path,
        *,
        mtime_ns: int | None = None,
        replace: Entry | None = None,
        progress: ProgressFn | None = None,
        on_session: Callable[[str], Awaitable[None]] | None = None,
        tag: str | None = None,
        metadata: Mapping[str, str] | None = None,
        hashed: HashStates | None = None,
    ) -> Entry:
        """Upload the whole local file ``source`` to ``path`` and return the new Entry.

        ``replace`` is the entry being overwritten (its version is sent as the
        expected previous version where the server supports it): the upload
        adds a new version, so a failure leaves the old content intact.  With
        ``replace=None`` the path must not exist (EEXIST).  Chunks are retried;
        on cancellation or failure the upload session is cancelled.
        ``mtime_ns`` becomes the file's modification time.  ``on_session`` is
        awaited with each upload session's id before its first chunk, so a
        caller can record it and cancel a session a crash left behind
        (:meth:`cancel_upload`).  ``tag`` is stored with the new version
        (``UPLOAD_TAG_KEY``), so the caller can recognise it later even if
        every answer about it was lost.  ``metadata`` (public keys such as
        the mode) is stored with the new version, at no extra request (where
        the server keeps no metadata, both are kept by this client:
        :mod:`cloudfs.client.overlay`).  ``hashed``:
        the content's SHA-256 (and states) if the caller knows it already, for
        a backend that wants it up front (``capabilities.whole_file_hash``);
        ignored unless its size is the file's, and the file is read to hash it
        otherwise."""
        target = self._not_root(path)
        return await self._uploads.upload(target, Path(source), mtime_ns=mtime_ns, replace=replace,
                                          progress=progress, on_session=on_session, tag=tag,
                                          metadata=metadata, hashed=hashed)

    @_only_cloudfs_errors
    async def cancel_upload(self, path: str, session_id: str) -> None:
        """Cancel an upload session by id: releases its lock, placeholder and
        quota reservation.  An unknown or finished session is not an error."""
        try:
            await self._dialect.cancel_session(paths.normalize(path), session_id)
        except CloudfsError as exc:
            if exc.errno != errno.ENOENT and not isinstance(exc, SessionExpired):
                raise

    # ---- helpers ------------------------------------------------------------------
    @staticmethod
    def _not_root(path: str) -> str:
        target = paths.normalize(path)
        if target == "/":
            raise CloudfsError("the root already exists", errno=errno.EEXIST)
        return target

    def _debug_state(self) -> dict[str, Any]:
        """Counters for tests and status output."""
        auth = self._http.auth
        return {
            "urls_signed": self._downloads.urls.signed,
            "download_connections": self._downloads.connections,
            "token_renewals": getattr(auth, "renewals", 0),
        }


def _ref(target: Entry | str) -> Ref:
    """An object as the dialect takes it: an Entry as held (its path came
    from the client, already normal), a path normalised and checked."""
    return target if isinstance(target, Entry) else paths.normalize(target)


#: the facade's first name, from when Cloudreve was the only backend
CloudreveClient = Client
