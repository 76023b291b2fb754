"""The Cloudreve v4 dialect (``/api/v4``): endpoints, request bodies and
their retry reasoning.  Shapes (URIs, JSON -> models) are in
:mod:`v4_shapes`.

Retry reasoning, per call (see :mod:`retry` for the machinery):

* reads (``GET /file``, ``/file/info``, ``/user/capacity``, ``POST
  /file/url``), ``PATCH /file/metadata`` (setting the same values twice is
  the same), token refresh (the old refresh token stays valid, so a lost
  answer costs nothing) and password login (a second session is harmless)
  are idempotent;
* create, rename, move and delete are not, but a second try can tell what
  the first did: when an earlier attempt may have been delivered
  (``state.maybe_delivered``) and the retry meets exactly the state the
  first attempt would have left (create: the object exists with the asked
  type; rename/move: the source is gone and the target exists; delete: the
  path is gone), that is success;
* copy and the 2FA step are retried only when the request never left
  (copying twice makes a second copy; a 2FA session is single use);
* chunk upload: re-sending a chunk is accepted and rewrites the same bytes;
* upload session creation: a lost answer leaves a session holding the path
  (placeholder or lock), so the retry first cancels the session recorded in
  the path's ``sys:upload_session_id``;
* cancel: once gone, gone (404 / 40011 on a retry is success).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import httpx
import trio
from cachetools import LRUCache

from cloudfs.client import envelope
from cloudfs.client.auth import Authenticator, Tokens
from cloudfs.client.dialect import Ref, SignedUrl, UploadSession, UrlRefused, path_of
from cloudfs.client.cloudreve_codes import CloudreveError
from cloudfs.client.http import Http
from cloudfs.client.login import token_login
from cloudfs.client.models import (
    MTIME_KEY,
    UPLOAD_TAG_KEY,
    Capabilities,
    Capacity,
    Entry,
    ServerInfo,
    TrashSummary,
    mtime_value,
)
from cloudfs.client.paths import join, split
from cloudfs.client.retry import AttemptState
from cloudfs.client.sha256state import HashStates
from cloudfs.client.tokenstore import Store
from cloudfs.client.v4_shapes import (
    UPLOAD_SESSION_KEY,
    entry_from,
    parse_time_s,
    session_from,
    to_uri,
    tokens_from,
)
from cloudfs.errors import (
    AlreadyExists,
    AuthenticationError,
    CloudfsError,
    NotAFolder,
    ProtocolError,
    ServerError,
    TwoFactorRequired,
    VersionConflict,
)

log = logging.getLogger(__name__)

PREFIX = "/api/v4"
#: this dialect's name in the registry (:mod:`backends`)
NAME = "v4"
CAPABILITIES = Capabilities(
    content_preconditions=True,  # ``previous``: 40076 when another version is current
    custom_metadata=True,
    trash=True,
    overwrite_in_place=True,
    replace_gives_new_id=False,
    addressing="path",  # cloudreve://my/... URIs
    upload_style="relayed",  # only local/relay policies: the chunks go through Cloudreve
    last_chunk_alone=True,  # before 4.18 the last index completes the session, whatever is missing
    change_feed=True,  # GET /file/events since 4.11 (the feed itself finds out whether the server has it)
)

# envelope codes this module reacts to
NOT_FOUND = 404
OBJECT_EXIST = 40004
SIGN_EXPIRED = 40005
UPLOAD_SESSION_EXPIRED = 40011
PATH_NOT_EXIST = 40016
LOCK_CONFLICT = 40073
INVALID_SIGN = 40071
BATCH_PARTIAL = 40081
ENTITY_NOT_EXIST = 40077
STALE_VERSION = 40076
FILE_TOO_BIG = 40049
PARAM_ERR = 40001
#: ``previous`` for a PUT /file/content that must only create: Cloudreve checks
#: ``previous`` against an existing file only (a new one is simply made), and
#: this is no hashid at all ("~" is outside the alphabet), so an existing file
#: refuses it as an unknown version (40001) and is never written over
CREATE_ONLY = "~"
#: what validateFileName refuses in a name (besides its length, "." and "..")
FORBIDDEN_NAME_CHARS = frozenset('\\/:*?"<>|')

#: URIs per batch call (Cloudreve refuses more than max_batched_file, 3000 by default)
BATCH = 1000
#: the recycle bin, as a folder URI
TRASH_URI = "cloudreve://trash"


def _codes(exc: CloudreveError) -> set[int]:
    """The codes an error stands for (a batch's inner codes, else its own)."""
    if exc.code == BATCH_PARTIAL and exc.aggregated:
        return {e.code for e in exc.aggregated.values()}
    return {exc.code}


class V4Dialect:
    def __init__(self, http: Http, version: str, title: str = "") -> None:
        self.http = http
        #: Cloudreve API calls (envelopes) over the neutral HTTP layer
        self.api = envelope.Api(http)
        http.prefix = PREFIX
        self.info = ServerInfo(dialect=NAME, version=version, title=title, capabilities=CAPABILITIES)
        #: empty files given a content entity before their first upload: (id, version) -> the file after
        self._given: LRUCache[tuple[str, str], Entry] = LRUCache(maxsize=4096)

    def name_refusal(self, name: str) -> str | None:
        if any(c in FORBIDDEN_NAME_CHARS for c in name):
            return 'a name may not contain \\ / : * ? " < > |'
        return None

    # ---- auth -------------------------------------------------------------------------
    async def password_login(self, email: str, password: str, otp: Callable[[], str] | None) -> Tokens:
        """Email + password (+ a 2FA code when the server answers 203)."""
        body = {"email": email, "password": password}

        async def op(_: AttemptState) -> envelope.Envelope:
            return await self.api.call_once("POST", "/session/token", json=body, auth=False, what="login")

        env = await self.http.retrying(op, idempotent=True, what="login")
        if env.code == envelope.CONTINUE_2FA:
            session_id = str(env.data or "")
            if otp is None:
                raise TwoFactorRequired(session_id=session_id)
            code = (await trio.to_thread.run_sync(otp)).strip()

            async def op2(_: AttemptState) -> envelope.Envelope:
                return await self.api.call_once("POST", "/session/token/2fa", auth=False, what="2FA login",
                                                 json={"otp": code, "session_id": session_id})

            env = await self.http.retrying(op2, idempotent=False, what="2FA login")
        if not env.ok:
            error = env.error()
            raise AuthenticationError(f"login as {email} refused: {error}") from None
        data = env.data if isinstance(env.data, dict) else {}
        return tokens_from(data.get("token"))

    async def refresh(self, refresh_token: str) -> Tokens:
        data = await self.api.call("POST", "/session/token/refresh", idempotent=True, auth=False,
                                    what="token refresh", json={"refresh_token": refresh_token})
        return tokens_from(data)

    async def logout(self, refresh_token: str) -> None:
        await self.api.call("DELETE", "/session/token", idempotent=True, auth=False, what="logout",
                             json={"refresh_token": refresh_token})

    # ---- the login this backend owns (see dialect.Backend) ------------------------------
    async def log_in(self, url: str, *, email: str | None, password: str | None,
                     otp: Callable[[], str] | None, store: Store | None, resume: bool) -> Authenticator:
        """Bearer tokens: a stored refresh token first, else the password."""
        return await token_login(self, url, email=email, password=password, otp=otp, store=store, resume=resume)

    async def log_out(self, auth: Authenticator) -> None:
        """Revoke the login's refresh token (access tokens expire on their own)."""
        tokens = getattr(auth, "tokens", None)
        if tokens is not None:
            await self.logout(tokens.refresh_token)

    # ---- metadata ------------------------------------------------------------------------
    async def stat(self, path: str) -> Entry:
        if path == "/":
            # /file/info refuses the root (403); the listing's parent is it
            async with aclosing(self.list_pages(path, page_size=1)) as pages:
                async for parent, _ in pages:
                    return parent
            raise ProtocolError("empty listing")  # pragma: no cover
        data = await self.api.call("GET", "/file/info", idempotent=True, what=f"stat {path}",
                                    params={"uri": to_uri(path)})
        return entry_from(data, path)

    async def list_pages(self, path: str, *, page_size: int | None = None) -> AsyncGenerator[tuple[Entry, list[Entry]], None]:
        """(the folder, one page of children) per page."""
        first = True
        try:
            async with aclosing(self._listing_pages(to_uri(path), what=f"list {path}", page_size=page_size)) as pages:
                async for data in pages:
                    first = False
                    parent = entry_from(data.get("parent"), path)
                    yield parent, [entry_from(item, parent=path) for item in data["files"]]
        except CloudreveError as exc:
            if first and exc.code == PATH_NOT_EXIST and path != "/":
                await self._raise_if_file(path)
            raise

    async def _listing_pages(self, uri: str, *, what: str, page_size: int | None = None) -> AsyncGenerator[dict[str, Any], None]:
        """The listing answers of a folder URI, one per page, following
        ``next_token`` (cursor mode) or page numbers (offset mode)."""
        size = page_size or self.http.settings.page_size
        params: dict[str, Any] = {
            "uri": uri,
            "page_size": size,
            # never leave these to the folder's saved view
            "order_by": "name",
            "order_direction": "asc",
        }
        page = 0
        while True:
            data = await self.api.call("GET", "/file", idempotent=True, what=what, params=params)
            if not isinstance(data, dict) or not isinstance(data.get("files"), list):
                raise ProtocolError(f"{what}: malformed listing")
            yield data
            pagination = data.get("pagination") or {}
            token = pagination.get("next_token") if isinstance(pagination, dict) else None
            if token:
                params["next_page_token"] = token
                continue
            total = pagination.get("total_items") if isinstance(pagination, dict) else None
            if pagination.get("is_cursor") or not isinstance(total, int):
                return
            # offset mode (use_cursor_pagination off)
            served = pagination.get("page_size") or size
            page += 1
            if not data["files"] or page * served >= total:
                return
            params["page"] = page

    async def _raise_if_file(self, path: str) -> None:
        """Listing a file answers 40016 like a missing path; say ENOTDIR."""
        try:
            entry = await self.stat(path)
        except CloudfsError:
            return
        if not entry.is_dir:
            raise NotAFolder(f"{path} is not a folder")

    async def create(self, path: str, *, folder: bool) -> Entry:
        kind = "folder" if folder else "file"
        body = {"uri": to_uri(path), "type": kind, "err_on_conflict": True}

        async def op(state: AttemptState) -> Entry:
            try:
                data = await self._call_once("POST", "/file/create", json=body, what=f"create {kind} {path}")
            except CloudreveError as exc:
                if exc.code == OBJECT_EXIST and state.maybe_delivered:
                    # our first attempt may have created it: the same kind,
                    # and for a file still empty, is what we asked for
                    entry = await self.stat(path)
                    if entry.is_dir == folder and (folder or entry.size == 0):
                        return entry
                raise
            return entry_from(data, path)

        # A file made by /file/create has no content entity; it gets an empty
        # one before its first upload (see _with_content), not here: a create
        # is one request on the way of every open(O_CREAT) (tar, cp, rsync).
        return await self.http.retrying(op, idempotent=True, what=f"create {kind} {path}")

    async def _same_object(self, path: str, entry: Entry) -> Entry | None:
        """What is at ``path`` now, if it is still ``entry``'s object (None:
        nothing there); another object is refused as stale.

        An empty file may have no content entity (one made by /file/create),
        and every such file has the same ``primary_entity`` (hashid 0): as
        ``previous`` it would match any entity-less file that took the path
        meanwhile (a rename over it), so empty bases are checked by id."""
        try:
            current = await self.stat(path)
        except CloudfsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        if current.file_id != entry.file_id or current.is_dir:
            raise CloudreveError(STALE_VERSION, f"{path} is another object than the one the upload replaces")
        return current

    async def _exists(self, path: str) -> bool:
        try:
            await self.stat(path)
        except CloudfsError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    async def _with_content(self, path: str, entry: Entry) -> Entry:
        """``entry`` (the empty file at ``path`` an upload is about to
        replace) with a content entity of its own.

        A file made by /file/create has none, and Cloudreve treats a version
        upload onto an entity-less file as a placeholder: cancelling or
        failing it deletes the whole file (a rename pausing the upload would
        then find nothing to rename).  With a real (empty) entity, a failed
        upload only drops itself.  The answer's FileResponse does not tell
        an entity-less file from one with an empty entity, so every empty
        file gets a (new, empty) version first; ``previous`` keeps it from
        replacing content another client gave the file meanwhile (40076: a
        conflict, as for the upload itself)."""
        known = self._given.get((entry.file_id, entry.version))
        if known is not None:
            return known  # given by an earlier attempt of this upload
        current = await self._same_object(path, entry)
        if current is None:
            return entry  # gone: the version upload creates the file anew
        if current.version != entry.version:
            if current.size > 0:
                raise CloudreveError(STALE_VERSION, f"{path} was given content by another client")
            return current  # an empty version (an earlier attempt's): nothing to lose by uploading over it
        what = f"empty content of {path}"

        async def op(_: AttemptState) -> Entry:
            data = await self._call_once("PUT", "/file/content", what=what, content=b"",
                                         params={"uri": to_uri(path), "previous": entry.version},
                                         headers={"Content-Length": "0"})
            return entry_from(data, path)

        try:
            given = await self.http.retrying(op, idempotent=True, what=what)
        except CloudreveError as exc:
            if exc.code != STALE_VERSION:
                raise
            # a retry after a lost answer finds our own empty version: any
            # empty version there can be uploaded over without losing a byte
            again = await self._same_object(path, entry)
            if again is None or again.size > 0:
                raise
            given = again
        self._given[(entry.file_id, entry.version)] = given
        return given

    async def rename(self, ref: Ref, new_name: str) -> Entry:
        path = path_of(ref)
        target = join(split(path)[0], new_name)
        body = {"uri": to_uri(path), "new_name": new_name}

        async def op(state: AttemptState) -> Entry:
            try:
                data = await self._call_once("POST", "/file/rename", json=body, what=f"rename {path}")
            except CloudreveError as exc:
                if state.maybe_delivered and PATH_NOT_EXIST in _codes(exc):
                    return await self.stat(target)  # done by the first attempt (ENOENT if not)
                raise
            return entry_from(data, target)

        return await self.http.retrying(op, idempotent=True, what=f"rename {path}")

    async def move(self, refs: Sequence[Ref], dst_dir: str, *, copy: bool) -> None:
        paths = [path_of(r) for r in refs]
        for start in range(0, len(paths), BATCH):
            await self._move_batch(paths[start:start + BATCH], dst_dir, copy=copy)

    async def _move_batch(self, paths: Sequence[str], dst_dir: str, *, copy: bool) -> None:
        verb = "copy" if copy else "move"
        body = {"uris": [to_uri(p) for p in paths], "dst": to_uri(dst_dir), "copy": copy}

        async def op(state: AttemptState) -> None:
            try:
                await self._call_once("POST", "/file/move", json=body, what=f"{verb} to {dst_dir}")
            except CloudreveError as exc:
                if not copy and state.maybe_delivered and _codes(exc) == {PATH_NOT_EXIST}:
                    # sources gone: moved by the first attempt if they are all at the destination
                    for p in paths:
                        await self.stat(join(dst_dir, split(p)[1]))
                    return
                raise

        # a repeated copy would make a second copy: only unsent copies are retried
        await self.http.retrying(op, idempotent=not copy, what=f"{verb} to {dst_dir}")

    async def delete(self, refs: Sequence[Ref], *, permanent: bool) -> None:
        paths = [path_of(r) for r in refs]
        for start in range(0, len(paths), BATCH):
            batch = paths[start:start + BATCH]
            body = {"uris": [to_uri(p) for p in batch], "skip_soft_delete": permanent}

            async def op(state: AttemptState, body: dict[str, Any] = body) -> None:
                try:
                    await self._call_once("DELETE", "/file", json=body, what="delete")
                except CloudreveError as exc:
                    if state.maybe_delivered and _codes(exc) == {PATH_NOT_EXIST}:
                        return  # already gone: the first attempt did it
                    raise

            await self.http.retrying(op, idempotent=True, what=f"delete {batch[0]}")

    async def set_metadata(self, ref: Ref, values: Mapping[str, str | None]) -> None:
        path = path_of(ref)
        patches = [{"key": k, "remove": True} if v is None else {"key": k, "value": v} for k, v in values.items()]
        if not patches:
            return
        await self.api.call("PATCH", "/file/metadata", idempotent=True, what=f"set metadata of {path}",
                             json={"uris": [to_uri(path)], "patches": patches})

    async def capacity(self) -> Capacity:
        data = await self.api.call("GET", "/user/capacity", idempotent=True, what="capacity")
        if not isinstance(data, dict) or not isinstance(data.get("total"), int) or not isinstance(data.get("used"), int):
            raise ProtocolError("capacity: malformed answer")
        return Capacity(total=data["total"], used=data["used"])

    # ---- recycle bin --------------------------------------------------------------------
    async def _trash_items(self) -> list[dict[str, Any]]:
        """The recycle bin's items as the server lists them (all pages)."""
        items: list[dict[str, Any]] = []
        async with aclosing(self._listing_pages(TRASH_URI, what="list the recycle bin")) as pages:
            async for data in pages:
                items += [item for item in data["files"] if isinstance(item, dict)]
        return items

    async def trash(self) -> TrashSummary:
        items = await self._trash_items()
        size = sum(item["size"] for item in items if item.get("type") == 0 and isinstance(item.get("size"), int))
        return TrashSummary(items=len(items), size=size)

    async def empty_trash(self) -> None:
        # the bin's items purged by URI, in batches: this works on every 4.x
        # (DELETE /file/trash needs 4.18, and a 4.18 source build reports
        # 4.14 from /site/ping, so the version cannot tell)
        uris = [item["path"] for item in await self._trash_items() if isinstance(item.get("path"), str)]
        for start in range(0, len(uris), BATCH):
            body = {"uris": uris[start:start + BATCH], "skip_soft_delete": True}
            await self.api.call("DELETE", "/file", idempotent=True, what="empty the recycle bin", json=body)

    async def _call_once(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        env = await self.api.call_once(method, path, what=what, **kwargs)
        return env.unwrap()

    # ---- downloads ----------------------------------------------------------------------
    async def sign_url(self, entry: Entry) -> SignedUrl:
        body: dict[str, Any] = {"uris": [to_uri(entry.path)]}
        if entry.version:
            body["entity"] = entry.version  # exactly the version the caller has
        try:
            data = await self.api.call("POST", "/file/url", idempotent=True,
                                        what=f"download URL of {entry.path}", json=body)
        except CloudreveError as exc:
            codes = {exc.code, *(inner.code for inner in exc.aggregated.values())}
            if entry.version and ENTITY_NOT_EXIST in codes:
                # the file is there, that version of it is not (a newer one replaced it)
                raise VersionConflict(f"{entry.path}: version {entry.version} is no longer on the server") from exc
            raise
        try:
            url = data["urls"][0]["url"]
            expires = parse_time_s(data["expires"])
        except (KeyError, IndexError, TypeError) as exc:
            raise ProtocolError(f"download URL of {entry.path}: malformed answer") from exc
        if not isinstance(url, str) or not url:
            raise ProtocolError(f"download URL of {entry.path}: empty URL")
        if url.startswith("/"):
            url = self.http.base_url + url
        return SignedUrl(url=url, expires_at=expires)

    def is_content(self, response: httpx.Response) -> bool:
        """Cloudreve answers a refused signature with HTTP 200 and a JSON
        envelope; genuine content always carries an ETag."""
        return response.status_code in (200, 206) and "etag" in response.headers

    def content_mismatch(self, entry: Entry, response: httpx.Response) -> str | None:
        """The ETag is the entity id, which is the version."""
        tag = response.headers.get("etag", "").removeprefix("W/").strip('"')
        if entry.version and tag and tag != entry.version:
            return f"the server sent version {tag}, not {entry.version}"
        return None

    def content_refused(self, response: httpx.Response, body: bytes) -> Exception | None:
        status = response.status_code
        if self.is_content(response):
            return None
        what = "download"
        if status >= 500 or status == 429:
            return ServerError(f"{what}: HTTP {status}", status=status)
        if status == 404:
            return VersionConflict("download: the content no longer exists on the server")
        if status == 200:
            try:
                env = envelope.parse(body, what)
            except ProtocolError as exc:
                return exc
            if env.code in (SIGN_EXPIRED, INVALID_SIGN, 403):
                return UrlRefused(f"download URL refused ({env.code} {env.msg})".rstrip())
            return env.error()
        return ProtocolError(f"{what}: unexpected HTTP {status}")

    # ---- uploads --------------------------------------------------------------------------
    async def open_upload(self, path: str, size: int, *, mtime_ms: int | None,
                          replace: Entry | None, tag: str | None = None,
                          metadata: Mapping[str, str] | None = None,
                          sha256: str | None = None,
                          hash_states: HashStates | None = None) -> UploadSession:  # hashes: not needed here
        if replace is not None and replace.size == 0 and not replace.is_dir:
            replace = await self._with_content(path, replace)
        body: dict[str, Any] = {"uri": to_uri(path), "size": size}
        values = {**(metadata or {}), **({UPLOAD_TAG_KEY: tag} if tag is not None else {})}
        if values:
            body["metadata"] = values  # applied on completion
        if mtime_ms is not None and mtime_ms > 0:
            body["last_modified"] = mtime_ms
        if replace is not None:
            body["entity_type"] = "version"  # a new version: the old one stays until completion
            if replace.version:
                body["previous"] = replace.version  # 40076 if someone else overwrote it meanwhile
        what = f"upload session for {path}"

        async def op(state: AttemptState) -> UploadSession:
            try:
                data = await self._call_once("PUT", "/file/upload", json=body, what=what)
            except CloudreveError as exc:
                if state.maybe_delivered and exc.code in (OBJECT_EXIST, LOCK_CONFLICT):
                    if await self._cancel_orphan(path):
                        data = await self._call_once("PUT", "/file/upload", json=body, what=what)
                        return session_from(data, path, size)
                if exc.code == PARAM_ERR and "policy" in exc.message.lower() and "policy_id" not in body:
                    # Cloudreve < 4.11 insists on the folder's policy id
                    body["policy_id"] = await self._policy_id(path)
                    data = await self._call_once("PUT", "/file/upload", json=body, what=what)
                    return session_from(data, path, size)
                raise
            return session_from(data, path, size)

        # not idempotent as such (see the module docstring), hence the orphan clean-up
        return await self.http.retrying(op, idempotent=True, what=what)

    async def _cancel_orphan(self, path: str) -> bool:
        """Cancel the session a lost answer left open on ``path``."""
        try:
            entry = await self.stat(path)
        except CloudfsError:
            return False
        session_id = entry.metadata.get(UPLOAD_SESSION_KEY)
        if not session_id:
            return False
        log.info("cancelling the upload session left behind by a lost answer on %s", path)
        await self._cancel(session_id, to_uri(path))
        return True

    async def _policy_id(self, path: str) -> str:
        folder = split(path)[0]
        data = await self.api.call("GET", "/file", idempotent=True, what=f"storage policy of {folder}",
                                    params={"uri": to_uri(folder), "page_size": 1, "order_by": "name",
                                            "order_direction": "asc"})
        policy = data.get("storage_policy") if isinstance(data, dict) else None
        if not isinstance(policy, dict) or not policy.get("id"):
            raise ProtocolError(f"no storage policy for {folder}")
        return str(policy["id"])

    async def send_chunk(self, session: UploadSession, index: int, length: int,
                         body: Callable[[], httpx.AsyncByteStream] | bytes, *, deadline: float) -> None:
        url_path = f"/file/upload/{session.session_id}/{index}"
        what = f"chunk {index} of {session.path}"
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}

        async def op(_: AttemptState) -> None:
            # a fresh body per try; re-sending a chunk is accepted (same offset, same bytes)
            await self._call_once("POST", url_path, what=what, headers=headers, content=body)

        await self.http.retrying(op, idempotent=True, what=what, deadline=deadline)

    async def complete_upload(self, session: UploadSession, replace: Entry | None) -> Entry:
        """The completing chunk already made the new version current."""
        return await self.stat(session.path)

    async def cancel_upload(self, session: UploadSession) -> None:
        await self._cancel(session.session_id, str(session.extra.get("uri") or to_uri(session.path)))

    async def put_whole(self, path: str, content: bytes, *, replace: Entry | None, mtime_ns: int | None,
                        metadata: Mapping[str, str]) -> Entry | None:
        """``PUT /file/content`` with ``previous`` (a new version, 40076 if
        ``replace`` is not current; with none, a new file, refused if
        anything is at ``path``: see CREATE_ONLY), then one metadata patch: this request
        takes no time or metadata, and the server's own modification time
        becomes the upload's (the exact one is kept in ``MTIME_KEY``, as
        after a rename).  A file made by /file/create needs no content
        entity first: no session, so no cancellation that would delete it
        (but an empty base is checked by id first, see :meth:`_same_object`).
        A retry after a lost answer finds the version changed (by us): it
        is raised as stale, and the caller recognises its own content."""
        what = f"upload of {path}"
        if replace is not None and replace.size == 0:
            current = await self._same_object(path, replace)
            if current is None:
                return None  # gone: an upload session creates it anew
            # an earlier session attempt may have given it an empty entity (a
            # new version, see _with_content): nothing is lost over an empty one
            replace = current if current.size == 0 else replace
        previous = replace.version if replace is not None else CREATE_ONLY

        async def op(_: AttemptState) -> Entry:
            data = await self._call_once("PUT", "/file/content", what=what, content=content,
                                         params={"uri": to_uri(path), "previous": previous},
                                         headers={"Content-Length": str(len(content)),
                                                  "Content-Type": "application/octet-stream"})
            return entry_from(data, path)

        try:
            entry = await self.http.retrying(op, idempotent=True, what=what,
                                             deadline=self.http.settings.transfer_deadline(len(content)))
        except CloudreveError as exc:
            if exc.code == FILE_TOO_BIG:
                return None  # over the site's online-edit limit: a session may still take it
            if replace is None and exc.code == PARAM_ERR and await self._exists(path):
                # (a retry after a lost answer finds our own file: the caller knows it by content)
                raise AlreadyExists(f"{path} already exists") from None
            raise
        if replace is not None:
            # the answer carries no metadata, though the file keeps its own across
            # versions (a mode, say): it is still what the replaced entry showed
            entry = dataclasses.replace(entry, metadata={**replace.metadata, **entry.metadata})
        values = dict(metadata)
        if mtime_ns is not None:
            # whatever it is (the epoch too): the server's own time is now the upload's
            values[MTIME_KEY] = mtime_value(mtime_ns, entry.version)
        if values:
            # the version is in place; without these it would show the upload's time
            await self.set_metadata(path, values)
            entry = dataclasses.replace(entry, metadata={**entry.metadata, **values})
        return entry

    async def cancel_session(self, path: str, session_id: str) -> None:
        """Cancel a session known only by its id (e.g. one left by a crash)."""
        await self._cancel(session_id, to_uri(path))

    async def _cancel(self, session_id: str, uri: str) -> None:
        async def op(state: AttemptState) -> None:
            try:
                await self._call_once("DELETE", "/file/upload", what="cancel upload",
                                      json={"id": session_id, "uri": uri})
            except CloudreveError as exc:
                if state.maybe_delivered and exc.code in (NOT_FOUND, UPLOAD_SESSION_EXPIRED):
                    return  # cancelled by the first attempt
                raise

        await self.http.retrying(op, idempotent=True, what="cancel upload")

