"""The KooDrive dialect: every operation a mount needs, over the ID-addressed
``/koodrive/ose/v1`` API (see docs/koodrive-backend.md).

* Paths become ids through :class:`IdCache` (listing each folder on the way).
* Listings follow ``nextCursor`` until it is empty: short or empty pages come
  before the end, so a page's size says nothing.
* Move, copy and delete are jobs, polled until done (:mod:`.jobs`).
* Uploads: ``files/create`` with the whole file's SHA-256 and length, the
  parts PUT to their pre-signed URLs (a refused URL is renewed through
  ``files/multipart/uploadUrl``), then ``files/complete``.  Parts go one
  after another in the server's plan, or several at once in our own plan
  when it pays (see :func:`parallel_plan`): the server hashes the file as a
  stream, so each parallel part after the first carries ``hashCtx``, the
  SHA-256 state after the bytes before it (:mod:`cloudfs.client.sha256state`).
  There is no cancel call: an upload never completed stays an invisible
  task on the server, and holds nothing the client knows of.
  There is no overwrite in place: a new version is uploaded beside the file
  under a temporary name, the old file goes to the recycle bin (or for
  good where deletes are permanent: ``delete_to_trash``), and the new one
  is renamed into place, so its id changes (the capability record says so)
  and the swap is not atomic (:mod:`cloudfs.client.replace`, the steps here).
* Downloads: pre-signed object URLs from ``files/download``, ranged when the
  object store answers 206 (the download engine falls back to whole-file
  otherwise).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import re
import secrets
import time
from contextlib import aclosing
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence, Set
from typing import Any

import httpx

from cloudfs.client.auth import Authenticator
from cloudfs.client.dialect import Ref, RestartUpload, SignedUrl, UploadSession, UrlRefused
from cloudfs.client.http import Http, safe_url
from cloudfs.client.koodrive import jobs, login, space
from cloudfs.client.koodrive.codes import DUPLICATE_NAME, UPLOAD_TASK_MISSING, KooDriveError
from cloudfs.client.koodrive.ids import IdCache
from cloudfs.client.koodrive.shapes import entry_of, iso_ms, is_folder, parent_id
from cloudfs.client.koodrive.wire import Wire, data_of
from cloudfs.client.models import (
    Capabilities,
    Capacity,
    Entry,
    ServerInfo,
    TrashSummary,
    UsageReport,
)
from cloudfs.client.overlay import MetadataOverlay
from cloudfs.client.paths import join, split
from cloudfs.client.replace import BesideReplace
from cloudfs.client.retry import AttemptState
from cloudfs.client.sha256state import HashStates
from cloudfs.client.tokenstore import Store
from cloudfs.errors import (
    AlreadyExists,
    CloudfsError,
    NotAFolder,
    NotFound,
    ProtocolError,
    ServerError,
    VersionConflict,
)

log = logging.getLogger(__name__)

NAME = "koodrive"
CAPABILITIES = Capabilities(
    content_preconditions=False,  # no version precondition: the client checks the id before the swap
    # ``properties`` exists on items but no documented call sets it: kept in this process only (overlay.py)
    custom_metadata=False,
    trash=True,  # deletes go to the recycle bin (actionType 201) unless permanent
    overwrite_in_place=False,  # uploadType 2 (multi-version) is "not supported yet"
    replace_gives_new_id=True,  # upload beside, then swap: the new file keeps its new id
    addressing="id",
    upload_style="presigned",
    last_chunk_alone=False,  # ``files/complete`` completes, not the last part
    change_feed=False,
    whole_file_hash=True,  # ``files/create`` takes the SHA-256 of the whole file
    whole_uploads=False,  # every upload is create, parts, complete (put_whole has none)
    # a new file is made by its first upload: one cut short leaves an
    # invisible task that holds no name (the emulator's ``pending_holds_name``
    # off: an unknown); one the server made whole at ``files/create``
    # (``rapidUpload``) is finished, never cut short (UploadSession.complete_at_open)
    creates_by_upload=True,
)
#: what fileName may not hold, and its longest length
FORBIDDEN_NAME_CHARS = frozenset('<>|:"*?/\\')
MAX_NAME_CHARS = 250
#: listing page size (the reference's sibling endpoints cap at 100)
PAGE_SIZE = 100
#: sortInfo: by name, ascending (a stable order across pages)
SORT = {"sortType": 1, "sortDirection": 1}
#: download URLs' lifetime is unknown: renew after this long (a 403 renews sooner)
URL_LIFETIME_S = 600.0
FILE_TYPE = "0"
#: part size limits of a multipart upload, and the most parts (the reference's)
MIN_PART, MAX_PARTS = 5 << 20, 10_000
#: a parallel plan's parts are at least this large (and a multiple of the hash states' step)
PARALLEL_PART = 8 << 20
#: parts of one upload in flight at once (the client's upload_parallelism caps it)
PARALLEL_PARTS = 4


def parallel_plan(size: int, states: HashStates | None, parallelism: int) -> list[dict[str, Any]] | None:
    """``multiParts`` for an upload in parallel parts, or None where it does
    not pay or cannot be done: one part (a small file), one part at a time
    allowed, or no hash states (no libcrypto).  Parts are multiples of the
    states' step (so of 64 bytes, and a state is known at each start), at
    least :data:`PARALLEL_PART`, and no more than 10,000."""
    if states is None or not states.states or parallelism < 2 or states.size != size:
        return None
    step = states.step
    least = max(PARALLEL_PART, MIN_PART, -(-size // MAX_PARTS))
    part = -(-least // step) * step
    if size <= part:
        return None
    plan: list[dict[str, Any]] = []
    for number, offset in enumerate(range(0, size, part), 1):
        item: dict[str, Any] = {"partNumber": number, "partSize": min(part, size - offset), "partOffset": offset}
        if offset:
            ctx = states.state_at(offset)
            if ctx is None:
                return None
            item["hashCtx"] = ctx
        plan.append(item)
    return plan


def temp_name(name: str) -> str:
    """The name a new version is uploaded under, beside the file it replaces."""
    return f".{name[:200]}.cloudfs-{secrets.token_hex(4)}"


TEMP_NAME = re.compile(r"\..+\.cloudfs-[0-9a-f]{8}\Z", re.DOTALL)


class KooDriveDialect:
    def __init__(self, http: Http, version: str = "v1", title: str = "KooDrive") -> None:
        self.http = http
        self.wire = Wire(http)
        self.info = ServerInfo(dialect=NAME, version=version, title=title, capabilities=CAPABILITIES)
        self.container = ""
        self.user_id = ""
        self.ids = IdCache("root")
        #: the metadata this process set or uploaded (the tag: the write-back knows
        #: its own unconfirmed upload by it), shown on every entry: KooDrive keeps none
        self.overlay = MetadataOverlay()
        #: replacing a file: upload beside it, then swap (no overwrite in place)
        self._beside = BesideReplace(self)
        #: uploads completed beside the file they replace, by their path there, until swapped
        self._beside_uploads: dict[str, Entry] = {}

    def name_refusal(self, name: str) -> str | None:
        # the reference's rules for fileName (createFile, createDirectory)
        if len(name) > MAX_NAME_CHARS:
            return f"a name may have at most {MAX_NAME_CHARS} characters"
        if any(c in FORBIDDEN_NAME_CHARS or ord(c) < 32 for c in name) or not name.strip():
            return 'a name may not contain < > | : " * ? / \\ or control characters, nor be blank'
        return None

    # ---- login ----------------------------------------------------------------------------
    async def log_in(self, url: str, *, email: str | None, password: str | None,
                     otp: Callable[[], str] | None, store: Store | None, resume: bool) -> Authenticator:
        auth = await login.log_in(self.wire, url, account=email, password=password, store=store, resume=resume)
        self.http.auth = auth
        self.user_id = auth.user_id
        found = await space.get_space(self.wire, self.user_id)
        self.container = str(found.get("containerId") or "")
        root = found.get("bizRootFileId")
        self.ids = IdCache(str(root) if root else "root")
        return auth

    async def log_out(self, auth: Authenticator) -> None:
        await auth.revoke()

    # ---- ids --------------------------------------------------------------------------------
    async def _id(self, path: str) -> str:
        known = self.ids.get(path)
        if known is not None:
            return known
        return (await self._child(path)).file_id

    def _known(self, ref: Ref) -> str:
        """``ref``'s path; an Entry the caller holds names the object's id,
        so the operation needs no listing to find it (a stale one is refused
        by the server, and where the operation retries, looked up again)."""
        if isinstance(ref, Entry):
            self.ids.put(ref.path, ref.file_id)
            return ref.path
        return ref

    async def _child(self, path: str) -> Entry:
        """``path`` found in its parent's listing (which caches every sibling)."""
        folder, name = split(path)
        async with aclosing(self._pages(folder)) as pages:
            async for _, page in pages:
                for entry in page:
                    if entry.name == name:
                        return entry
        raise NotFound(f"{path}: no such file or folder", errno=errno.ENOENT)

    async def _with_fresh_ids(self, path: str, op: Callable[[], Any]) -> Any:
        """Run ``op``; if the server no longer knows a cached id, resolve again once."""
        try:
            return await op()
        except NotFound:
            if self.ids.get(path) is None or path == "/":
                raise
            self.ids.forget(path)
            folder, _ = split(path)
            if folder != "/":
                self.ids.forget(folder)
            return await op()

    # ---- metadata --------------------------------------------------------------------------
    def _entry(self, item: dict[str, Any], path: str) -> Entry:
        """The entry ``item`` describes, with the metadata this process keeps for it."""
        return self.overlay.apply(entry_of(item, path))

    async def _detail(self, file_id: str, path: str) -> dict[str, Any]:
        body = await self.wire.call("POST", f"/files/{file_id}/detail", idempotent=True, what=f"stat {path}",
                                    json_body={"containerId": self.container})
        nested = body.get("data")
        item: dict[str, Any] = nested if isinstance(nested, dict) and "id" not in body else body
        if item.get("recycled") is True:
            raise NotFound(f"{path}: in the recycle bin", errno=errno.ENOENT)
        return item

    async def stat(self, path: str) -> Entry:
        if path == "/":
            try:
                return self._entry(await self._detail(self.ids.root_id, path), "/")
            except (NotFound, ProtocolError):
                return self.overlay.apply(Entry(file_id=self.ids.root_id, path="/", is_dir=True, size=0,
                                                mtime_ns=0, ctime_ns=0))
        known = self.ids.get(path)
        if known is not None:
            try:
                item = await self._detail(known, path)
                folder, name = split(path)
                if item.get("fileName") == name and parent_id(item) in (self.ids.get(folder), None):
                    return self._entry(item, path)
            except NotFound:
                pass
            self.ids.forget(path)  # moved or gone: look again
        return await self._child(path)

    async def _pages(self, path: str) -> AsyncGenerator[tuple[str, list[Entry]], None]:
        folder_id = await self._id(path)
        cursor = ""
        while True:
            body = await self.wire.call("POST", "/files/0", idempotent=True, what=f"list {path}", json_body={
                "containerId": self.container, "parentFileId": folder_id,
                "pageInfo": {"pageSize": PAGE_SIZE, "pageCursor": cursor}, "sortInfo": SORT})
            page = [self._entry(item, join(path, str(item.get("fileName"))))
                    for item in body.get("files") or []]
            for entry in page:
                self.ids.put(entry.path, entry.file_id)
            yield folder_id, page
            cursor = str(body.get("nextCursor") or "")
            if not cursor:
                return

    async def list_pages(self, path: str) -> AsyncGenerator[tuple[Entry, list[Entry]], None]:
        folder = await self.stat(path)
        if not folder.is_dir:
            raise NotAFolder(f"{path} is not a folder", errno=errno.ENOTDIR)
        yielded = False
        async with aclosing(self._pages(path)) as pages:
            async for _, page in pages:
                if page or not yielded:
                    yielded = True
                    yield folder, page

    async def create(self, path: str, *, folder: bool) -> Entry:
        parent, name = split(path)
        if not folder:
            return await self._upload_empty(path)
        parent_ref = await self._folder_made(parent)  # missing parents made, as Cloudreve does

        async def op(state: AttemptState) -> dict[str, Any]:
            try:
                return await self.wire.call_once("POST", "/directory", what=f"mkdir {path}", json_body={
                    "fileName": name, "fileType": "10", "containerId": self.container, "renameMode": 3,
                    "parentFolder": [] if parent == "/" else [parent_ref]})
            except KooDriveError as exc:
                if exc.code == DUPLICATE_NAME and state.maybe_delivered:
                    existing = await self.stat(path)  # our first try made it?
                    if existing.is_dir:
                        return {"id": existing.file_id, "fileName": name, "fileType": "10"}
                raise

        item = await self.http.retrying(op, idempotent=True, what=f"mkdir {path}")
        created = entry_of(data_of(item), path)
        self.ids.put(path, created.file_id)
        return created

    async def _folder_made(self, folder: str) -> str:
        """``folder``'s id, making it and missing parents first (an upload to
        a new path makes its folders, as Cloudreve's does)."""
        try:
            return await self._id(folder)
        except NotFound:
            if folder == "/":
                raise
        await self._folder_made(split(folder)[0])
        try:
            return (await self.create(folder, folder=True)).file_id
        except AlreadyExists:  # made meanwhile
            return await self._id(folder)

    async def rename(self, ref: Ref, new_name: str) -> Entry:
        path = self._known(ref)
        folder, _ = split(path)
        target = join(folder, new_name)

        what = f"rename {path} to {new_name}"

        async def attempt(file_id: str, state: AttemptState) -> None:
            try:
                await self.wire.call_once("POST", f"/files/rename/{file_id}", what=what, json_body={
                    "containerId": self.container, "name": new_name, "renameMode": 3})
            except KooDriveError:
                # sent again after a lost answer: done if the first one did it
                if state.maybe_delivered and (await self._detail(file_id, target)).get("fileName") == new_name:
                    return
                raise

        async def once() -> None:
            file_id = await self._id(path)
            await self.http.retrying(lambda state: attempt(file_id, state), idempotent=True, what=what)

        await self._with_fresh_ids(path, once)
        file_id = await self._id(path)
        self.ids.forget(path)
        self.ids.put(target, file_id)
        if isinstance(ref, Entry) and ref.file_id == file_id and not ref.is_dir:
            # a file's id names one content for good, and a rename changes
            # neither it nor the time (docs/koodrive-emulator.md): the entry
            # held, at its new name
            return self.overlay.apply(dataclasses.replace(ref, path=target))
        return self._entry(await self._detail(file_id, target), target)

    async def _id_path(self, path: str) -> str:
        """``/root/<id>/.../<id>``: the id path the job API wants (``filePath``
        ends with the item's id, ``newFilePath`` with the folder's)."""
        parts = [self.ids.root_id]
        walked = "/"
        for name in [p for p in path.split("/") if p]:
            walked = join(walked, name)
            parts.append(await self._id(walked))
        return "/" + "/".join(parts)

    async def move(self, refs: Sequence[Ref], dst_dir: str, *, copy: bool) -> None:
        paths = [self._known(r) for r in refs]
        files = [{"fileId": await self._id(p), "filePath": await self._id_path(p)} for p in paths]
        info = {"fileInfo": files, "newFilePath": await self._id_path(dst_dir), "srcContainerId": self.container}
        verb = "copy" if copy else "move"
        await jobs.run_job(self.wire, jobs.COPY if copy else jobs.MOVE, verb, info, container=self.container,
                           what=f"{verb} {len(paths)} item(s) to {dst_dir}", items=len(paths))
        if not copy:
            for p, f in zip(paths, files):
                self.ids.forget(p)
                self.ids.put(join(dst_dir, split(p)[1]), f["fileId"])

    async def delete(self, refs: Sequence[Ref], *, permanent: bool) -> None:
        paths = [self._known(r) for r in refs]
        files = [{"fileId": await self._id(p), "filePath": await self._id_path(p)} for p in paths]
        await self._delete_ids(files, permanent=permanent, what=f"delete {len(paths)} item(s)")
        self.overlay.forget(f["fileId"] for f in files)
        for p in paths:
            self.ids.forget(p)

    async def _delete_ids(self, files: list[dict[str, str]], *, permanent: bool, what: str) -> None:
        await jobs.run_job(self.wire, jobs.DELETE, "purge" if permanent else "recycle",
                           {"fileInfo": files, "srcContainerId": self.container}, container=self.container,
                           what=what, items=len(files))

    async def set_metadata(self, ref: Ref, values: Mapping[str, str | None]) -> None:
        """Kept in this process (no call sets metadata): by the id of the
        Entry held, else of what is at the path now."""
        if values:
            self.overlay.set(ref.file_id if isinstance(ref, Entry) else await self._id(ref), values)

    async def capacity(self) -> Capacity:
        return await space.capacity(self.wire, self.user_id)

    async def tenant_usage(self, *, users: Sequence[str], by_quota: bool) -> UsageReport:
        """``cloudfs quota``: the seeds' usage reports (default user: this login's)."""
        return await space.report(self.wire, list(users) or [self.user_id], by_quota=by_quota)

    async def trash(self) -> TrashSummary | None:
        items = size = 0
        cursor = ""
        while True:
            body = await self.wire.call("POST", "/files/1", idempotent=True, what="list the recycle bin", json_body={
                "containerId": self.container, "parentFileId": "root",
                "pageInfo": {"pageSize": PAGE_SIZE, "pageCursor": cursor}})
            for item in body.get("files") or []:
                items += 1
                size += 0 if is_folder(item) else int(item.get("size") or 0)
            cursor = str(body.get("nextCursor") or "")
            if not cursor:
                return TrashSummary(items=items, size=size)

    async def empty_trash(self) -> None:
        await jobs.run_job(self.wire, jobs.EMPTY_BIN, "empty", {"srcContainerId": self.container},
                           container=self.container, what="empty the recycle bin")

    # ---- downloads ----------------------------------------------------------------------------
    async def sign_url(self, entry: Entry) -> SignedUrl:
        body = await self.wire.call("POST", "/files/download", idempotent=True, what=f"download URL of {entry.path}",
                                    json_body={"containerId": self.container, "fileIds": [entry.file_id]})
        for item in body.get("downloads") or []:
            if item.get("fileId") == entry.file_id:
                if str(item.get("code", 0)) not in ("0", "") or not item.get("url"):
                    raise KooDriveError(int(item.get("code") or 13000407), f"download URL of {entry.path}")
                return SignedUrl(url=str(item["url"]), expires_at=time.time() + URL_LIFETIME_S)
        raise ProtocolError(f"download URL of {entry.path}: not in the answer")

    def is_content(self, response: httpx.Response) -> bool:
        """The object store's content always carries an ETag (S3's GetObject
        does); a 200 without one is some proxy's or portal's page."""
        return response.status_code in (200, 206) and "etag" in response.headers

    def content_refused(self, response: httpx.Response, body: bytes) -> Exception | None:
        status = response.status_code
        if self.is_content(response):
            return None
        if status in (200, 206):  # not the object store's answer: try again
            return ProtocolError(f"download: HTTP {status} without an ETag is not the object's content "
                                 f"({body[:60]!r})")
        if status >= 500 or status == 429:
            return ServerError(f"download: HTTP {status}", status=status)
        if status == 403:  # expired or bad signature: sign again
            return UrlRefused(f"download URL refused (HTTP 403: {body[:200]!r})")
        if status == 404:  # the object is gone: the file was replaced or deleted
            return VersionConflict("download: the content no longer exists on the server")
        return ProtocolError(f"download: unexpected HTTP {status}")

    def content_mismatch(self, entry: Entry, response: httpx.Response) -> str | None:
        total = _total_size(response)
        if total is not None and total != entry.size:
            return f"the server's content has {total} bytes, not {entry.size}"
        return None

    # ---- uploads --------------------------------------------------------------------------------
    async def open_upload(self, path: str, size: int, *, mtime_ms: int | None, replace: Entry | None,
                          tag: str | None = None, metadata: Mapping[str, str] | None = None,
                          sha256: str | None = None, hash_states: HashStates | None = None) -> UploadSession:
        if sha256 is None:
            raise ProtocolError("a KooDrive upload needs the file's SHA-256 up front")
        plan = parallel_plan(size, hash_states, self.http.settings.upload_parallelism)
        folder, name = split(path)
        upload_name = temp_name(name) if replace is not None else name
        parent_ref = await self._folder_made(folder)
        body: dict[str, Any] = {
            "fileName": upload_name, "fileType": FILE_TYPE, "parentFolder": [parent_ref], "sha256": sha256,
            "length": size, "uploadMode": "multipart", "uploadType": 1, "autoRename": 3,
            "containerId": self.container}
        if mtime_ms is not None:
            body["editedTime"] = iso_ms(mtime_ms)
        if plan is not None:
            body["multiParts"] = plan  # without it the server plans sequential parts
        # sent again after a lost answer: the first task stays invisible and unfinished
        # (there is no call to cancel it), and the second is the upload
        answer = data_of_upload(await self.wire.call("POST", "/files/create", idempotent=True,
                                                     what=f"upload {path}", json_body=body))
        # the file id is the upload's from now on: a lost answer later still knows its own by the tag
        self.overlay.uploaded(str(answer["fileId"]), tag=tag, mtime_ms=mtime_ms, metadata=metadata)
        parts = answer.get("multiParts") or []
        urls = {int(p["partNumber"]): str(p["uploadUrl"]) for p in parts if p.get("uploadUrl")}
        chunk = int(parts[0].get("partSize") or 0) if parts else size
        rapid = bool(answer.get("rapidUpload"))
        return UploadSession(
            session_id=str(answer["fileId"]), path=path, size=size, chunk_size=chunk if len(parts) > 1 else 0,
            concurrency=PARALLEL_PARTS if plan is not None else 1, expires_at=time.time() + 3600,
            # a new file is visible at its name from now on; a replace's copy beside it is
            # deleted if the upload is cut short (cancel_upload)
            policy_type="presigned", complete_at_open=rapid and replace is None,
            extra={"urls": urls, "rapid": rapid, "sha256": sha256, "name": upload_name,
                   "folder": folder, "plan": {int(p["partNumber"]): p for p in plan or ()},
                   "mtime_ms": mtime_ms})

    async def send_chunk(self, session: UploadSession, index: int, length: int,
                         body: Callable[[], httpx.AsyncByteStream] | bytes, *, deadline: float) -> None:
        if session.extra.get("rapid"):
            return  # the server knew the content: nothing to send
        number = index + 1
        urls: dict[int, str] = session.extra["urls"]  # type: ignore[assignment]

        async def op(_: AttemptState) -> None:
            url = urls.get(number) or await self._part_url(session, number, length)
            content = body() if callable(body) else body
            response = await self.http.request_once("PUT", url, what=f"upload part {number} of {session.path}",
                                                    content=content, headers={"Content-Length": str(length)})
            status = response.status_code
            if status in (200, 201, 204):
                return
            if status == 403:  # the URL expired: a fresh one, then again
                urls[number] = await self._part_url(session, number, length)
                raise ServerError(f"upload part {number}: URL refused, renewed", status=503)
            if status == 404:
                raise RestartUpload(f"upload of {session.path}: the server lost the upload task")
            if status >= 500 or status == 429:
                raise ServerError(f"upload part {number} to {safe_url(url)}: HTTP {status}", status=status)
            raise ProtocolError(f"upload part {number} of {session.path}: HTTP {status}")

        await self.http.retrying(op, idempotent=True, what=f"upload part {number} of {session.path}",
                                 deadline=deadline)

    async def _part_url(self, session: UploadSession, number: int, length: int) -> str:
        body = await self.wire.call("POST", "/files/multipart/uploadUrl", idempotent=True,
                                    what=f"part URL for {session.path}", json_body={
                                        "fileId": session.session_id,
                                        "multiParts": [self._planned(session, number, length)]})
        for part in data_of_upload(body).get("multiParts") or []:
            if int(part.get("partNumber", 0)) == number and part.get("uploadUrl"):
                return str(part["uploadUrl"])
        raise ProtocolError(f"part URL for {session.path}: not in the answer")

    @staticmethod
    def _planned(session: UploadSession, number: int, length: int) -> dict[str, Any]:
        """Part ``number`` as ``files/create`` was told it (a parallel plan's
        carries its offset and ``hashCtx``), for a fresh URL."""
        plan: dict[int, dict[str, Any]] = session.extra["plan"]  # type: ignore[assignment]
        return plan.get(number) or {"partNumber": number, "partSize": length}

    async def complete_upload(self, session: UploadSession, replace: Entry | None) -> Entry:
        file_id = session.session_id
        folder = str(session.extra["folder"])
        uploaded_path = join(folder, str(session.extra["name"]))
        if replace is None:
            await self._complete(session)
            # the file is there, whole: its entry is known without asking
            self.ids.put(session.path, file_id)
            return self.overlay.apply(_uploaded_entry(session))
        try:
            await self._complete(session)
            self.ids.put(uploaded_path, file_id)
            self._beside_uploads[uploaded_path] = dataclasses.replace(_uploaded_entry(session), path=uploaded_path)
            # the caller's ``replace`` may carry a path from before a rename: the
            # upload's path is where the file is now
            placed = await self._beside.swap(uploaded_path, replace, session.path)
        except VersionConflict:
            raise  # the upload beside is deleted already
        except BaseException:
            # the new version may be complete beside the file, every answer about it
            # lost (also before the swap knew of it): the next swap into place deletes it
            self._beside.strand(session.path, file_id)
            raise
        finally:
            self._beside_uploads.pop(uploaded_path, None)
        self.overlay.replaced(replace.file_id, placed.file_id)
        return self.overlay.apply(placed)

    async def _complete(self, session: UploadSession) -> None:
        """``files/complete``, sent again after a lost answer: if the first one
        completed the task, the server no longer knows it (13000401) and the
        file is there, whole."""
        if session.extra.get("rapid"):
            return
        what = f"complete {session.path}"

        async def op(state: AttemptState) -> None:
            try:
                await self.wire.call_once("POST", "/files/complete", what=what, json_body={
                    "fileId": session.session_id, "sha256": session.extra["sha256"]})
            except KooDriveError as exc:
                if state.maybe_delivered and exc.code == UPLOAD_TASK_MISSING and await self._completed(session):
                    return
                raise

        await self.http.retrying(op, idempotent=True, what=what)

    async def _completed(self, session: UploadSession) -> bool:
        """Whether the upload's file exists, complete (an unfinished one is
        invisible: 13000309): its id is this upload's alone."""
        try:
            item = await self._detail(session.session_id, session.path)
        except NotFound:
            return False
        return int(item.get("size") or 0) == session.size

    # ---- the steps of a replace beside the file (replace.SwapSteps) -------------------------------
    async def swap_sides(self, uploaded: str, target: str) -> tuple[Entry | None, Entry | None]:
        """The upload (known since ``files/create`` and ``files/complete``:
        no request) and the file now at ``target``."""
        mine = self._beside_uploads.get(uploaded)
        try:
            current = await self.stat(target)
        except NotFound:
            current = None
        return mine, current

    async def drop_upload(self, uploaded: Entry, *, what: str) -> None:
        await self._delete_ids([{"fileId": uploaded.file_id, "filePath": await self._id_path(uploaded.path)}],
                               permanent=True, what=what)
        self.ids.forget(uploaded.path)

    async def retire(self, current: Entry, target: str) -> None:
        """The old file goes where deletes go (``delete_to_trash``): to the
        recycle bin (201), or for good (202: a rewrite must not fill the
        quota with old versions where deletes are permanent)."""
        await self._delete_ids([{"fileId": current.file_id, "filePath": await self._id_path(target)}],
                               permanent=not self.http.settings.delete_to_trash, what=f"replace {target}")
        self.ids.forget(target)

    async def rename_into_place(self, uploaded: Entry, name: str) -> Entry:
        return await self.rename(uploaded, name)

    async def drop_if_beside(self, file_ids: Set[str], target: str) -> int:
        """By the ids alone (no listing), one at a time: each one's detail names it and its folder."""
        dropped = 0
        for file_id in file_ids:
            try:
                dropped += await self._drop_if_beside(file_id, target)
            except NotFound:
                continue  # gone
        return dropped

    async def _drop_if_beside(self, file_id: str, target: str) -> bool:
        folder = split(target)[0]
        item = await self._detail(file_id, target)
        if not TEMP_NAME.match(str(item.get("fileName") or "")) or parent_id(item) != await self._id(folder):
            return False
        await self._delete_ids([{"fileId": file_id, "filePath": f"{await self._id_path(folder)}/{file_id}"}],
                               permanent=True, what=f"drop a version of {target} left beside it")
        return True

    def conflict(self, target: str) -> CloudfsError:
        return VersionConflict(f"{target} changed on the server meanwhile")

    async def _upload_empty(self, path: str) -> Entry:
        session = await self.open_upload(path, 0, mtime_ms=None, replace=None,
                                         sha256=hashlib.sha256(b"").hexdigest())
        await self.send_chunk(session, 0, 0, b"", deadline=self.http.settings.deadline_s)
        return await self.complete_upload(session, None)

    async def cancel_upload(self, session: UploadSession) -> None:
        """There is no cancel call: an uncompleted task stays invisible.  A
        rapid upload's file is whole from ``files/create`` on, though: a
        replace's copy at its temporary name is deleted (a new file's has the
        file's own name: it is the file, and stays)."""
        if session.extra.get("rapid") and session.extra.get("name") != split(session.path)[1]:
            await self._beside.drop({session.session_id}, session.path)

    async def cancel_session(self, path: str, session_id: str) -> None:
        """The upload task of a run that died: unfinished, it stays invisible
        (there is no call to cancel it); completed but never swapped into
        place, it is a whole copy at a temporary name beside the file (the
        content is still staged, and its upload starts again): deleted."""
        await self._beside.drop({session_id}, path)

    async def put_whole(self, path: str, content: bytes, *, replace: Entry | None, mtime_ns: int | None,
                        metadata: Mapping[str, str]) -> Entry | None:
        return None  # no single-request new version


def _uploaded_entry(session: UploadSession) -> Entry:
    """The file an upload completed, as ``files/create`` and what we sent
    describe it: its id (its version too), size, the time it asked for
    (else now) and now as its creation time (the server's own differ by the
    moments of the upload, and may be whole seconds)."""
    now_ns = time.time_ns()
    mtime_ms = session.extra.get("mtime_ms")
    mtime_ns = mtime_ms * 1_000_000 if isinstance(mtime_ms, int) else now_ns
    return Entry(file_id=session.session_id, path=session.path, is_dir=False, size=session.size,
                 mtime_ns=mtime_ns, ctime_ns=now_ns, version=session.session_id)


def data_of_upload(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) and "fileId" in data or isinstance(data, dict) and "multiParts" in data \
        else body


def _total_size(response: httpx.Response) -> int | None:
    content_range = response.headers.get("content-range", "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    if response.status_code == 200:
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None
    return None
