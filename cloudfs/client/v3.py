"""The Cloudreve 3 dialect (3.8.x, ``/api/v3``): endpoints, request bodies
and their retry reasoning.  Shapes are in :mod:`v3_shapes`.

How v3 differs from v4, and what this module does about it:

* Objects are addressed by hashid (files and folders apart) or by their
  parent's path; there is no stat by path.  A path is resolved by listing
  its parent (``GET /directory<parent>``, the whole folder in one answer).
* ``PUT /directory`` is ``mkdir -p`` and succeeds on an existing folder: the
  parent is listed first so an existing name is EEXIST, like v4.
* There are no content versions: an upload session can only create a new
  file (an existing name is 40004).  Replacing a file therefore uploads to a
  temporary name in the same folder (hidden from listings), and only once
  the last chunk is in deletes the old file and renames the new one into
  place (:mod:`replace`, the steps here): a failed upload leaves the old content
  intact, but the replaced file gets a *new id* (and the rename sets its
  time to now).  Even an empty file is swapped, not deleted first: the name
  must stay taken while the upload runs (a rename meanwhile moves the file).
* Chunks are accepted strictly in order (40012 otherwise), one at a time.
* A rename or move sets a file's time to now (GORM bumps ``updated_at``),
  and the content version is made of id, size and time (there is no other
  sign of an in-place edit by someone else): after a rename or move of its
  own, this client keeps the version from before it for as long as the
  server shows the time that rename or move gave, so the file's cached
  blocks stay valid (:meth:`_carry`).
* Signed download URLs come from ``PUT /file/download/<id>``, relative;
  content answers carry no ETag (Go's ``ServeContent``): the size tells
  whether the content is what was listed.
* No metadata API: what :meth:`set_metadata` sets, and the tag, the mtime
  and the metadata an upload carries (v4: in the file's metadata, see
  ``UPLOAD_TAG_KEY``), are kept in this process instead, by object id
  (:mod:`overlay`), and every entry shows them: an upload whose swap landed
  although its answers were lost is recognised as ours.  No recycle bin:
  every delete is permanent.  Copy takes one object per call.
* Login is a cookie session (see :class:`SessionDialect` and :mod:`login`).

Retry reasoning: listings, ``/user/storage``, URL signing, chunk uploads
(re-sending the current chunk rewrites it) and deletes by id (unknown ids
are skipped) are idempotent; mkdir, create, rename and move are retried
and a retry that meets the state the first attempt would have left counts
as success; copy is retried only when it was never sent.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence, Set
from typing import Any

import httpx
import trio
from cachetools import LRUCache

from cloudfs.client import envelope
from cloudfs.client.auth import Authenticator, CookieAuth, SessionCookie
from cloudfs.client.dialect import Ref, RestartUpload, SignedUrl, UploadSession, UrlRefused, path_of
from cloudfs.client.cloudreve_codes import CloudreveError
from cloudfs.client.coalesce import FreshReads
from cloudfs.client.http import Http
from cloudfs.client.login import session_login
from cloudfs.client.models import Capabilities, Capacity, Entry, ServerInfo
from cloudfs.client.overlay import MetadataOverlay
from cloudfs.client.paths import join, split
from cloudfs.client.replace import BesideReplace
from cloudfs.client.retry import AttemptState
from cloudfs.client.sha256state import HashStates
from cloudfs.client.tasks import run_all
from cloudfs.client.tokenstore import Store
from cloudfs.client.v3_shapes import (
    COOKIE_NAME,
    cookie_from,
    entry_from,
    is_temp_name,
    listing_of,
    listing_order,
    path_suffix,
    root_entry,
    session_from,
    temp_name,
    url_expiry,
)
from cloudfs.errors import (
    AlreadyExists,
    AuthenticationError,
    CloudfsError,
    NotAFolder,
    NotFound,
    ProtocolError,
    ServerError,
    SessionExpired,
    TwoFactorRequired,
    VersionConflict,
)

log = logging.getLogger(__name__)

#: between an upload session's id and its temporary file's name in a journal reference
RESUME_SEP = " "

#: files renamed or moved by us whose content version is carried across the time it gave them
CARRIED_VERSIONS_KEPT = 4096

PREFIX = "/api/v3"
#: this dialect's name in the registry (:mod:`backends`)
NAME = "v3"
CAPABILITIES = Capabilities(
    content_preconditions=False,  # no versions: complete_upload checks the id and size itself
    custom_metadata=False,  # kept in this process only (overlay.py)
    trash=False,  # every delete is permanent
    overwrite_in_place=False,  # upload beside, delete, rename into place
    replace_gives_new_id=True,
    addressing="path",  # by parent path (and hashid), resolved by listing
    upload_style="relayed",
    last_chunk_alone=True,  # chunks strictly in order, one at a time
    change_feed=False,
    whole_uploads=False,  # a replace is a session, a delete and a rename: many at once only crowd the server
)

# envelope codes this module reacts to
NOT_FOUND = 404
OBJECT_EXIST = 40004
SIGN_EXPIRED = 40005
POLICY_CHANGED = 40006
#: the policy id does not decode (40035): a stale cached one is refreshed like a changed one
POLICY_UNKNOWN = 40035
UPLOAD_SESSION_EXPIRED = 40011
CHUNK_OUT_OF_ORDER = 40012
PATH_NOT_EXIST = 40016
UPLOAD_ONGOING = 40054
INVALID_SIGN = 40071
IO_FAILED = 50004
#: v4's "previous version mismatch": a replace found the file changed meanwhile
STALE_VERSION = 40076
#: what ValidateLegalName refuses in a name (besides its length)
RESERVED_NAME_CHARS = frozenset('\\?*<":>/|')


class V3Dialect:
    def __init__(self, http: Http, version: str, title: str = "") -> None:
        self.http = http
        #: Cloudreve API calls (envelopes) over the neutral HTTP layer
        self.api = envelope.Api(http)
        http.prefix = PREFIX
        self.info = ServerInfo(dialect=NAME, version=version, title=title, capabilities=CAPABILITIES)
        #: the metadata this process set or uploaded, shown on every entry (the server keeps none)
        self.overlay = MetadataOverlay()
        #: object id -> (the time and size a rename or move of ours left, the content version from before it)
        self._carried: LRUCache[str, tuple[int, int, str]] = LRUCache(maxsize=CARRIED_VERSIONS_KEPT)
        #: replacing a file: upload beside it, then swap (no versions, no overwrite)
        self._beside = BesideReplace(self)
        #: the storage policy uploads name (listed once; refreshed when refused)
        self._policy: dict[str, Any] | None = None
        #: folder listings asked for at once share a request
        self._listings: FreshReads[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = FreshReads()

    def name_refusal(self, name: str) -> str | None:
        # ValidateLegalName (pkg/filesystem/validator.go)
        if any(c in RESERVED_NAME_CHARS for c in name):
            return 'a name may not contain \\ / : * ? " < > |'
        if name.endswith(" "):
            return "a name may not end with a space"
        return None

    # ---- auth (SessionDialect) ----------------------------------------------------------------
    async def _session_call(self, method: str, path: str, *, what: str, cookie: SessionCookie | None,
                            json: Any = None) -> tuple[envelope.Envelope, SessionCookie | None]:
        """One unauthenticated-layer call carrying ``cookie`` by hand; the
        envelope and the cookie the answer (re-)issued, if any."""
        headers = {"Cookie": cookie.header} if cookie is not None else {}
        response = await self.http.request_once(method, self.http.api_url(path), what=what, headers=headers,
                                                json=json)
        env = envelope.of_response(response, what)
        return env, cookie_from(response.headers.get_list("set-cookie"))

    async def password_login(self, email: str, password: str,
                             otp: Callable[[], str] | None) -> SessionCookie:
        """``POST /user/session``; on 203 a 2FA code through ``POST /user/2fa``
        in the same (cookie) session."""
        body = {"userName": email, "Password": password, "captchaCode": ""}

        async def op(_: AttemptState) -> tuple[envelope.Envelope, SessionCookie | None]:
            return await self._session_call("POST", "/user/session", what="login", cookie=None, json=body)

        # a second login session is harmless
        env, cookie = await self.http.retrying(op, idempotent=True, what="login")
        if env.code == envelope.CONTINUE_2FA:
            if cookie is None:
                raise ProtocolError("login: 2FA asked without a session cookie")
            if otp is None:
                raise TwoFactorRequired()
            code = (await trio.to_thread.run_sync(otp)).strip()
            first = cookie

            async def op2(_: AttemptState) -> tuple[envelope.Envelope, SessionCookie | None]:
                return await self._session_call("POST", "/user/2fa", what="2FA login", cookie=first,
                                                json={"code": code})

            env, again = await self.http.retrying(op2, idempotent=False, what="2FA login")
            cookie = again or first
        if not env.ok:
            raise AuthenticationError(f"login as {email} refused: {env.error()}") from None
        if cookie is None:
            raise ProtocolError(f"login: the server set no {COOKIE_NAME} cookie")
        return cookie

    async def resume(self, cookie: SessionCookie, user: str) -> SessionCookie | None:
        """``GET /site/config`` saves the session, which re-issues the cookie
        with a fresh signature, and names the logged-in user."""

        async def op(_: AttemptState) -> tuple[envelope.Envelope, SessionCookie | None]:
            return await self._session_call("GET", "/site/config", what="session check", cookie=cookie)

        env, fresh = await self.http.retrying(op, idempotent=True, what="session check")
        data = env.unwrap()
        who = data.get("user") if isinstance(data, dict) else None
        if not isinstance(who, dict) or who.get("anonymous") or \
                str(who.get("user_name") or "").lower() != user.strip().lower():
            return None
        if fresh is None:  # not re-issued: keep the one we have
            return cookie
        return fresh

    async def logout(self, cookie: SessionCookie) -> None:
        async def op(_: AttemptState) -> None:
            env, _cookie = await self._session_call("DELETE", "/user/session", what="logout", cookie=cookie)
            env.unwrap()

        await self.http.retrying(op, idempotent=True, what="logout")

    # ---- the login this backend owns (see dialect.Backend) ------------------------------
    async def log_in(self, url: str, *, email: str | None, password: str | None,
                     otp: Callable[[], str] | None, store: Store | None, resume: bool) -> Authenticator:
        """A cookie session: the stored cookie first, else the password."""
        return await session_login(self, url, email=email, password=password, otp=otp, store=store, resume=resume)

    async def log_out(self, auth: Authenticator) -> None:
        """End the cookie session on the server."""
        if isinstance(auth, CookieAuth):
            await auth.revoke()

    # ---- listing and resolving ------------------------------------------------------------------
    async def _listing(self, path: str) -> tuple[str, list[Entry], dict[str, Any]]:
        """(folder id, children including temporary upload names, policy) of a folder."""
        folder_id, objects, policy = await self._listing_objects(path)
        return folder_id, self._entries(objects, path), policy

    async def _listing_objects(self, path: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        """A folder's listing, asked for after the call (one request for the
        callers that ask at about the same time: the uploads landing in one
        folder each need it to learn their new file's id)."""
        what = f"list {path}"

        async def fetch() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
            data = await self.api.call("GET", "/directory" + path_suffix(path), idempotent=True, what=what)
            return listing_of(data, what)

        folder_id, objects, policy = await self._listings.read(path, fetch)
        return folder_id, list(objects), policy  # each caller's own list (shared: the objects, read only)

    def _entries(self, objects: list[dict[str, Any]], folder: str) -> list[Entry]:
        entries = [entry_from(obj, folder) for obj in objects]
        if self._carried:  # (most listings: nothing renamed or moved by us)
            entries = [self._carry(e) for e in entries]
        # (after the carry: a kept mtime names the content version)
        return self.overlay.apply_all(entries)

    def _carry(self, entry: Entry) -> Entry:
        """``entry`` with the content version it had before a rename or move
        of ours, if the server still shows the time and size that left (a
        later edit, or someone else's rename, moves the time again: then the
        server's word stands)."""
        kept = self._carried.get(entry.file_id)
        if kept is None:
            return entry
        mtime_ns, size, version = kept
        if entry.is_dir or entry.mtime_ns != mtime_ns or entry.size != size:
            del self._carried[entry.file_id]
            return entry
        return dataclasses.replace(entry, version=version)

    def _moved(self, before: Entry, after: Entry) -> Entry:
        """``after`` (``before`` renamed or moved by us, as listed since)
        with ``before``'s content version, remembered for later listings."""
        if before.is_dir or after.file_id != before.file_id or after.size != before.size:
            return after
        self._carried[after.file_id] = (after.mtime_ns, after.size, before.version)
        # (the overlay again: a kept mtime names the content version)
        return self.overlay.apply(dataclasses.replace(after, version=before.version))

    async def _child(self, path: str) -> Entry:
        """The object at ``path`` (not the root), found in its parent's listing."""
        parent, name = split(path)
        found = (await self._children_named(parent, {name})).get(name)
        if found is None:
            raise NotFound(f"{path}: no such file or folder")
        return found

    async def _children_named(self, folder: str, names: set[str]) -> dict[str, Entry]:
        """Those of ``names`` that are in ``folder``, from one listing."""
        _, children, _ = await self._listing(folder)
        found: dict[str, Entry] = {}
        for child in children:
            if child.name in names:
                found.setdefault(child.name, child)  # the first of a name (a file and a folder may share it)
        return found

    async def stat(self, path: str) -> Entry:
        if path == "/":
            folder_id, children, _ = await self._listing("/")
            return self.overlay.apply(root_entry(folder_id, children))
        return await self._child(path)

    async def list_pages(self, path: str) -> AsyncGenerator[tuple[Entry, list[Entry]], None]:
        """v3 lists a whole folder in one answer; it is handed on in pages of
        ``page_size``, each made from the answer as it is asked for (a large
        folder's first entries can be shown while the rest are made).  The
        folder's own times are only in its parent's listing: both are asked
        for at once (one round trip, not two, before a large folder's first entry)."""
        listed: tuple[str, list[dict[str, Any]], dict[str, Any]] | None = None
        own: Entry | None = None

        async def list_folder() -> None:
            nonlocal listed
            listed = await self._listing_objects(path)

        async def find_own() -> None:
            nonlocal own
            own = await self._child(path)

        try:
            await run_all([list_folder] if path == "/" else [list_folder, find_own])
        except CloudreveError as exc:
            if exc.code == PATH_NOT_EXIST and path != "/":
                await self._raise_if_file(path)
            raise
        assert listed is not None
        folder_id, objects, _ = listed
        # the order is ours (3.8 lists in database order): folders, then files, by name
        objects.sort(key=listing_order)
        size = self.http.settings.page_size
        pages = [objects[start:start + size] for start in range(0, len(objects), size)] or [[]]
        made: list[list[Entry]] = []
        if own is None:  # the root: its times are those of its newest child
            made = [self._entries(page, path) for page in pages]
            parent = self.overlay.apply(root_entry(folder_id, itertools.chain.from_iterable(made)))
        else:
            parent = own
            if not parent.is_dir:  # pragma: no cover - replaced between the two calls
                raise NotAFolder(f"{path} is not a folder")
        for index, page in enumerate(pages):
            if index:
                # the caller's other tasks run first (a listing shown as it comes: readdir
                # hands out the last page while this one is made)
                await trio.lowlevel.checkpoint()
            children = made[index] if made else self._entries(page, path)
            # a replacing upload's temporary file is an implementation detail
            yield parent, [c for c in children if not is_temp_name(c.name)]

    async def _raise_if_file(self, path: str) -> None:
        try:
            entry = await self._child(path)
        except CloudfsError:
            return
        if not entry.is_dir:
            raise NotAFolder(f"{path} is not a folder")

    # ---- create / rename / move / delete ---------------------------------------------------------
    async def create(self, path: str, *, folder: bool) -> Entry:
        kind = "folder" if folder else "file"
        what = f"create {kind} {path}"
        parent, name = split(path)
        if folder:
            # PUT /directory succeeds on an existing folder: look first.  A
            # missing parent is fine: both calls create it (like v4's create)
            try:
                _, children, _ = await self._listing(parent)
            except CloudreveError as exc:
                if exc.code != PATH_NOT_EXIST:
                    raise
                children = []
            if any(c.name == name for c in children):
                raise AlreadyExists(f"{path} already exists")

        async def op(state: AttemptState) -> None:
            try:
                if folder:
                    await self._call_once("PUT", "/directory", what=what, json={"path": path})
                else:
                    await self._call_once("POST", "/file/create", what=what, json={"path": path})
            except CloudreveError as exc:
                if exc.code == OBJECT_EXIST and state.maybe_delivered:
                    entry = await self._child(path)
                    if entry.is_dir == folder and (folder or entry.size == 0):
                        return  # made by our first attempt
                raise

        await self.http.retrying(op, idempotent=True, what=what)
        if folder:
            return await self._child(path)
        return await self._created_file(path)

    async def _created_file(self, path: str) -> Entry:
        """The file ``POST /file/create`` just made.  That call refuses an
        existing file (40004) but not a folder of the same name (3.8 keeps
        files and folders apart), so the one listing that tells the new
        file's id also tells whether a folder has the name: then the file
        goes again, and the name counts as taken, as everywhere else."""
        parent, name = split(path)
        _, children, _ = await self._listing(parent)
        same = [c for c in children if c.name == name]
        made = next((c for c in same if not c.is_dir), None)
        if made is None:
            raise NotFound(f"{path}: no such file or folder")
        if any(c.is_dir for c in same):
            await self._delete([made], what=f"drop {path} (a folder has its name)")
            raise AlreadyExists(f"{path} already exists")
        return made

    async def rename(self, ref: Ref, new_name: str) -> Entry:
        # addressed by path: whatever is at the path now is renamed, and its
        # content version, listed just now, is the one carried across
        return await self._rename(await self._child(path_of(ref)), new_name)

    async def _rename(self, entry: Entry, new_name: str, *, carry: bool = True) -> Entry:
        """Rename ``entry``, as just listed; ``carry``: its content version
        across the time the rename gives it (for content cached under it)."""
        path = entry.path
        target = join(split(path)[0], new_name)
        body = {"src": _src([entry]), "new_name": new_name}
        what = f"rename {path}"

        async def op(state: AttemptState) -> None:
            try:
                await self._call_once("POST", "/object/rename", what=what, json=body)
            except CloudreveError as exc:
                if state.maybe_delivered and exc.code in (PATH_NOT_EXIST, OBJECT_EXIST):
                    done = await self._child(target)  # ENOENT if the first attempt did not do it
                    if done.file_id == entry.file_id:
                        return
                raise

        await self.http.retrying(op, idempotent=True, what=what)
        done = await self._child(target)
        return self._moved(entry, done) if carry else done

    async def move(self, refs: Sequence[Ref], dst_dir: str, *, copy: bool) -> None:
        by_parent: dict[str, list[Entry]] = {}
        for p in map(path_of, refs):
            by_parent.setdefault(split(p)[0], []).append(await self._child(p))
        for src_dir, entries in by_parent.items():
            if copy:
                for entry in entries:  # one object per copy call in 3.8
                    await self._move_call(src_dir, [entry], dst_dir, copy=True)
            else:
                await self._move_call(src_dir, entries, dst_dir, copy=False)
        if not copy:
            # the move set the files' times to now: carry their versions across it
            files = {e.file_id: e for entries in by_parent.values() for e in entries if not e.is_dir}
            if files:
                try:
                    _, there, _ = await self._listing(dst_dir)
                except CloudfsError as exc:  # the move is done: only the cached blocks are at stake
                    log.debug("moved to %s, but cannot list it to keep the content versions: %s", dst_dir, exc)
                    return
                for after in there:
                    if after.file_id in files:
                        self._moved(files[after.file_id], after)

    async def _move_call(self, src_dir: str, entries: list[Entry], dst_dir: str, *, copy: bool) -> None:
        verb = "copy" if copy else "move"
        body = {"src_dir": src_dir, "src": _src(entries), "dst": dst_dir, "action": verb}
        what = f"{verb} to {dst_dir}"

        async def op(state: AttemptState) -> None:
            try:
                if copy:
                    await self._call_once("POST", "/object/copy", what=what, json=body)
                else:
                    await self._call_once("PATCH", "/object", what=what, json=body)
            except CloudreveError:
                if not copy and state.maybe_delivered:
                    # moved by the first attempt if every object is at the destination
                    _, there, _ = await self._listing(dst_dir)
                    ids = {c.file_id for c in there}
                    if all(e.file_id in ids for e in entries):
                        return
                raise

        # a repeated copy would make a second copy: only unsent copies are retried
        await self.http.retrying(op, idempotent=not copy, what=what)

    async def delete(self, refs: Sequence[Ref], *, permanent: bool) -> None:
        # v3 has no recycle bin: every delete is permanent
        entries = [await self._child(path_of(r)) for r in refs]
        await self._delete(entries, what=f"delete {entries[0].path}")
        self.overlay.forget(e.file_id for e in entries)

    async def _delete(self, entries: Sequence[Entry], *, what: str) -> None:
        # idempotent: ids no longer there are skipped by the server
        await self.api.call("DELETE", "/object", idempotent=True, what=what, json=_src(entries))

    async def trash(self) -> None:
        return None  # no recycle bin: every delete is permanent

    async def empty_trash(self) -> None:
        return None

    async def set_metadata(self, ref: Ref, values: Mapping[str, str | None]) -> None:
        """Kept in this process (the server has no metadata API): by the id
        of the Entry held, else of what is at the path now."""
        if values:
            file_id = ref.file_id if isinstance(ref, Entry) else (await self.stat(ref)).file_id
            self.overlay.set(file_id, values)

    async def capacity(self) -> Capacity:
        data = await self.api.call("GET", "/user/storage", idempotent=True, what="capacity")
        if not isinstance(data, dict) or not isinstance(data.get("total"), int) or \
                not isinstance(data.get("used"), int):
            raise ProtocolError("capacity: malformed answer")
        return Capacity(total=data["total"], used=data["used"])

    async def _call_once(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        env = await self.api.call_once(method, path, what=what, **kwargs)
        return env.unwrap()

    # ---- downloads ------------------------------------------------------------------------
    async def sign_url(self, entry: Entry) -> SignedUrl:
        data = await self.api.call("PUT", f"/file/download/{entry.file_id}", idempotent=True,
                                    what=f"download URL of {entry.path}")
        if not isinstance(data, str) or not data:
            raise ProtocolError(f"download URL of {entry.path}: no URL")
        url = self.http.base_url + data if data.startswith("/") else data
        return SignedUrl(url=url, expires_at=url_expiry(url))

    def is_content(self, response: httpx.Response) -> bool:
        """Content answers (Go's ``ServeContent`` behind Cloudreve) carry
        ``Content-Disposition`` and ``Last-Modified``; refusals are JSON
        envelopes (HTTP 200 too) with neither."""
        headers = response.headers
        return response.status_code in (200, 206) and (
            "content-disposition" in headers or "last-modified" in headers or "content-range" in headers)

    def content_refused(self, response: httpx.Response, body: bytes) -> Exception | None:
        if self.is_content(response):
            return None
        status = response.status_code
        if status >= 500 or status == 429:
            return ServerError(f"download: HTTP {status}", status=status)
        if status == 404:
            return VersionConflict("download: the content no longer exists on the server")
        if status in (200, 403):
            try:
                env = envelope.parse(body, "download")
            except ProtocolError as exc:
                return exc if status == 200 else UrlRefused(f"download URL refused (HTTP {status})")
            if env.code in (SIGN_EXPIRED, INVALID_SIGN, 403, NOT_FOUND):
                # 404: the download session (the URL's key) expired
                return UrlRefused(f"download URL refused ({env.code} {env.msg})".rstrip())
            if env.code == IO_FAILED:
                return VersionConflict("download: the file was deleted or replaced")
            return env.error()
        return ProtocolError(f"download: unexpected HTTP {status}")

    def content_mismatch(self, entry: Entry, response: httpx.Response) -> str | None:
        """URLs are signed by object id, and this client never changes an
        object's content in place (a replace is a new object), so the size
        is the check.  Not ``Last-Modified``: 3.8 moves a file's time on
        every rename, which would refuse perfectly good content."""
        total = _total_size(response)
        if total is not None and total != entry.size:
            return f"the server's content has {total} bytes, not {entry.size}"
        return None

    # ---- uploads ----------------------------------------------------------------------------
    async def open_upload(self, path: str, size: int, *, mtime_ms: int | None,
                          replace: Entry | None, tag: str | None = None,
                          metadata: Mapping[str, str] | None = None,
                          sha256: str | None = None,
                          hash_states: HashStates | None = None) -> UploadSession:  # hashes: not needed here
        # ``tag``, ``metadata``: Cloudreve 3 keeps no metadata; complete_upload
        # puts them in the overlay, by the id the content gets
        folder, name = split(path)
        extra: dict[str, object] = {"target": path, "mtime_ms": mtime_ms, "tag": tag,
                                    "metadata": dict(metadata or {})}
        what = f"upload session for {path}"

        async def open_once(fresh: bool = False) -> UploadSession:
            # a replacement goes to a temporary name first (no versions in v3);
            # a new one per attempt, so a lost answer's placeholder is in nobody's way
            target_name = temp_name() if replace is not None else name
            policy = self._policy
            if fresh or policy is None:
                # in 3.8 the policy is the user's group's, the same in every
                # folder: one listing tells it, until the server says it changed
                _children, policy = await self._upload_folder(folder)
                self._policy = policy
            body = {"path": folder, "size": size, "name": target_name, "policy_id": str(policy.get("id") or ""),
                    "last_modified": mtime_ms if mtime_ms is not None and mtime_ms > 0 else 0,
                    "mime_type": ""}
            data = await self._call_once("PUT", "/file/upload", what=what, json=body)
            session = session_from(data, join(folder, target_name), size, policy, extra)
            if replace is not None:  # a crash's next run deletes what it may leave at the temporary name
                session.resume = f"{session.session_id}{RESUME_SEP}{target_name}"
            return session

        async def op(state: AttemptState) -> UploadSession:
            try:
                return await open_once()
            except CloudreveError as exc:
                if exc.code in (POLICY_CHANGED, POLICY_UNKNOWN):  # the policy changed: list again, once
                    return await open_once(fresh=True)
                if exc.code == UPLOAD_ONGOING and replace is None and state.maybe_delivered:
                    # Our lost answer left a session whose placeholder holds the name;
                    # listings hide placeholders and only the session id (which we never
                    # got) cancels one, except "cancel all of this user's uploads".
                    # Uploads of ours in flight then meet 40011 and restart.
                    log.warning("cancelling all upload sessions: a lost answer left one holding %s", path)
                    await self._call_once("DELETE", "/file/upload", what="cancel all uploads")
                    return await open_once()
                raise

        return await self.http.retrying(op, idempotent=True, what=what)

    async def _upload_folder(self, folder: str) -> tuple[list[Entry], dict[str, Any]]:
        """The children of an upload's folder and the storage policy to name.
        A missing folder is created by the upload (like v4): its nearest
        existing ancestor's listing tells the policy (in 3.8 the user's
        group's, the same in every folder)."""
        here = folder
        while True:
            try:
                _, children, policy = await self._listing(here)
            except CloudreveError as exc:
                if exc.code != PATH_NOT_EXIST or here == "/":
                    raise
                here = split(here)[0]
                continue
            return (children if here == folder else []), policy

    async def send_chunk(self, session: UploadSession, index: int, length: int,
                         body: Callable[[], httpx.AsyncByteStream] | bytes, *, deadline: float) -> None:
        url_path = f"/file/upload/{session.session_id}/{index}"
        what = f"chunk {index} of {session.path}"
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}

        async def op(_: AttemptState) -> None:
            try:
                await self._call_once("POST", url_path, what=what, headers=headers, content=body)
            except CloudreveError as exc:
                if exc.code == CHUNK_OUT_OF_ORDER:
                    # the server holds fewer bytes than the chunks we sent: start over
                    raise RestartUpload(f"{what}: the server lost earlier chunks ({exc})") from exc
                raise

        # re-sending the current chunk is accepted (the server truncates to its start)
        await self.http.retrying(op, idempotent=True, what=what, deadline=deadline)

    async def complete_upload(self, session: UploadSession, replace: Entry | None) -> Entry:
        target = str(session.extra.get("target") or session.path)
        if replace is None or session.path == target:
            placed = await self._child(target)
            self._remember_own(placed, session)
            return self.overlay.apply(placed)
        # from the moment the swap found it the content may land without our
        # hearing of it (a lost answer to the rename): remember it is ours
        placed = await self._beside.swap(session.path, replace, target,
                                         found=lambda uploaded: self._remember_own(uploaded, session))
        self.overlay.replaced(replace.file_id, placed.file_id)
        return self.overlay.apply(placed)

    def _remember_own(self, uploaded: Entry, session: UploadSession) -> None:
        metadata = session.extra.get("metadata")
        self.overlay.uploaded(uploaded.file_id, tag=session.extra.get("tag"), mtime_ms=session.extra.get("mtime_ms"),
                              metadata=metadata if isinstance(metadata, dict) else None)

    # ---- the steps of a replace beside the file (replace.SwapSteps) -------------------------------
    async def swap_sides(self, uploaded: str, target: str) -> tuple[Entry | None, Entry | None]:
        """Both from one listing of the folder."""
        found = await self._children_named(split(target)[0], {split(uploaded)[1], split(target)[1]})
        return found.get(split(uploaded)[1]), found.get(split(target)[1])

    async def drop_upload(self, uploaded: Entry, *, what: str) -> None:
        await self._delete([uploaded], what=what)

    async def retire(self, current: Entry, target: str) -> None:
        await self._delete([current], what=f"replace {target}")  # no recycle bin: for good

    async def rename_into_place(self, uploaded: Entry, name: str) -> Entry:
        # not carried: new content, cached (by the write-back) under the version
        # the server shows, which a later mount sees too
        return await self._rename(uploaded, name, carry=False)

    async def drop_if_beside(self, file_ids: Set[str], target: str) -> int:
        """Found in one listing of the target's folder (by id: the name is not ours to trust)."""
        _, children, _ = await self._listing(split(target)[0])
        left = [c for c in children if c.file_id in file_ids and not c.is_dir and is_temp_name(c.name)]
        if left:
            await self._delete(left, what=f"drop {', '.join(c.path for c in left)}")
        return len(left)

    def conflict(self, target: str) -> CloudfsError:
        """Said like v4's "previous version mismatch", for callers that look at the code."""
        return CloudreveError(STALE_VERSION, f"{target} was changed by someone else during the upload")

    async def cancel_upload(self, session: UploadSession) -> None:
        await self.cancel_session(session.path, session.session_id)

    async def put_whole(self, path: str, content: bytes, *, replace: Entry | None, mtime_ns: int | None,
                        metadata: Mapping[str, str]) -> Entry | None:
        # PUT /file/update/<id> writes over the stored content in place: a
        # failure midway would damage the old version.  Sessions swap instead.
        return None

    async def cancel_session(self, path: str, session_id: str) -> None:
        """``DELETE /file/upload/<id>``: deletes the placeholder (also after
        expiry).  A replacing upload's journal reference names its temporary
        file too: completed but never swapped into place by a run that died,
        it is a whole copy beside the file (hidden from our listings, not
        from others', and counted in the quota); the content is still staged
        and its upload starts again, so it is deleted."""
        session_id, _, left_at = session_id.partition(RESUME_SEP)
        left_at = left_at if is_temp_name(left_at) else ""
        try:
            await self._cancel_session(session_id)
        except CloudfsError as exc:  # completed: the session is gone, its file maybe not
            if not left_at or (exc.errno != errno.ENOENT and not isinstance(exc, SessionExpired)):
                raise
        if left_at:
            try:
                await self.delete([join(split(path)[0], left_at)], permanent=True)
                log.info("deleted a new version of %s that an interrupted upload left beside it", path)
            except NotFound:
                pass

    async def _cancel_session(self, session_id: str) -> None:
        async def op(state: AttemptState) -> None:
            try:
                await self._call_once("DELETE", f"/file/upload/{session_id}", what="cancel upload")
            except CloudreveError as exc:
                if state.maybe_delivered and exc.code in (NOT_FOUND, UPLOAD_SESSION_EXPIRED):
                    return  # cancelled by the first attempt
                raise

        await self.http.retrying(op, idempotent=True, what="cancel upload")


def _src(entries: Sequence[Entry]) -> dict[str, list[str]]:
    """``{"items": [file ids], "dirs": [folder ids]}``."""
    return {"items": [e.file_id for e in entries if not e.is_dir],
            "dirs": [e.file_id for e in entries if e.is_dir]}


def _total_size(response: httpx.Response) -> int | None:
    """The full content size a content answer states (Content-Range's total,
    else a 200's Content-Length)."""
    content_range = response.headers.get("content-range", "")
    _, _, total = content_range.rpartition("/")
    if total.isdigit():
        return int(total)
    length = response.headers.get("content-length", "")
    if response.status_code == 200 and length.isdigit():
        return int(length)
    return None
