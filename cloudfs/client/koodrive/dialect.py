"""The KooDrive dialect: every operation a mount needs, over the ID-addressed
``/koodrive/ose/v1`` API (see docs/koodrive-backend.md).

* Paths become ids through :class:`IdCache` (listing each folder on the way).
* Listings follow ``nextCursor`` until it is empty: short or empty pages come
  before the end, so a page's size says nothing.
* Move, copy and delete are jobs, polled until done (:mod:`.jobs`).
* Uploads: ``files/create`` with the whole file's SHA-256 and length, the
  parts PUT one after another to their pre-signed URLs (a refused URL is
  renewed through ``files/multipart/uploadUrl``), then ``files/complete``.
  There is no overwrite in place: a new version is uploaded beside the file
  under a temporary name, the old file goes to the recycle bin, and the new
  one is renamed into place, so its id changes (the capability record says
  so) and the swap is not atomic.
* Downloads: pre-signed object URLs from ``files/download``, ranged when the
  object store answers 206 (the download engine falls back to whole-file
  otherwise).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import secrets
import time
from contextlib import aclosing
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

import httpx

from cloudfs.client.auth import Authenticator
from cloudfs.client.dialect import RestartUpload, SignedUrl, UploadSession, UrlRefused
from cloudfs.client.http import Http, safe_url
from cloudfs.client.koodrive import jobs, login, space
from cloudfs.client.koodrive.codes import DUPLICATE_NAME, KooDriveError
from cloudfs.client.koodrive.ids import IdCache
from cloudfs.client.koodrive.shapes import entry_of, iso_ms, is_folder, parent_id
from cloudfs.client.koodrive.wire import Wire, data_of
from cloudfs.client.login import Store
from cloudfs.client.models import Capabilities, Capacity, Entry, ServerInfo, TrashSummary, UsageReport
from cloudfs.client.paths import join, split
from cloudfs.client.retry import AttemptState
from cloudfs.errors import (
    AlreadyExists,
    CloudfsError,
    NotAFolder,
    NotFound,
    NotSupported,
    ProtocolError,
    ServerError,
    VersionConflict,
)

log = logging.getLogger(__name__)

NAME = "koodrive"
CAPABILITIES = Capabilities(
    content_preconditions=False,  # no version precondition: the client checks the id before the swap
    custom_metadata=False,  # ``properties`` exists on items but no documented call sets it
    trash=True,  # deletes go to the recycle bin (actionType 201) unless permanent
    overwrite_in_place=False,  # uploadType 2 (multi-version) is "not supported yet"
    replace_gives_new_id=True,  # upload beside, then swap: the new file keeps its new id
    addressing="id",
    upload_style="presigned",
    last_chunk_alone=False,  # ``files/complete`` completes, not the last part
    change_feed=False,
    whole_file_hash=True,  # ``files/create`` takes the SHA-256 of the whole file
    whole_uploads=False,  # every upload is create, parts, complete (put_whole has none)
    # an upload cannot be cancelled (no call): a first upload cut short by a
    # rename or a write may still take the name (4 threads churning new files
    # made a conflict copy of the mount's own file every second)
    creates_by_upload=False,
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


def temp_name(name: str) -> str:
    """The name a new version is uploaded under, beside the file it replaces."""
    return f".{name[:200]}.cloudfs-{secrets.token_hex(4)}"


class KooDriveDialect:
    def __init__(self, http: Http, version: str = "v1", title: str = "KooDrive") -> None:
        self.http = http
        self.wire = Wire(http)
        self.info = ServerInfo(dialect=NAME, version=version, title=title, capabilities=CAPABILITIES)
        self.container = ""
        self.user_id = ""
        self.ids = IdCache("root")

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
                return entry_of(await self._detail(self.ids.root_id, path), "/")
            except (NotFound, ProtocolError):
                return Entry(file_id=self.ids.root_id, path="/", is_dir=True, size=0, mtime_ns=0, ctime_ns=0)
        known = self.ids.get(path)
        if known is not None:
            try:
                item = await self._detail(known, path)
                folder, name = split(path)
                if item.get("fileName") == name and parent_id(item) in (self.ids.get(folder), None):
                    return entry_of(item, path)
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
            page = [entry_of(item, join(path, str(item.get("fileName")))) for item in body.get("files") or []]
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

    async def rename(self, path: str, new_name: str) -> Entry:
        folder, _ = split(path)
        target = join(folder, new_name)

        async def once() -> None:
            file_id = await self._id(path)
            await self.wire.call("POST", f"/files/rename/{file_id}", idempotent=False,
                                 what=f"rename {path} to {new_name}",
                                 json_body={"containerId": self.container, "name": new_name, "renameMode": 3})

        await self._with_fresh_ids(path, once)
        file_id = await self._id(path)
        self.ids.forget(path)
        self.ids.put(target, file_id)
        return entry_of(await self._detail(file_id, target), target)

    async def _id_path(self, path: str) -> str:
        """``/root/<id>/.../<id>``: the id path the job API wants (``filePath``
        ends with the item's id, ``newFilePath`` with the folder's)."""
        parts = [self.ids.root_id]
        walked = "/"
        for name in [p for p in path.split("/") if p]:
            walked = join(walked, name)
            parts.append(await self._id(walked))
        return "/" + "/".join(parts)

    async def move(self, paths: Sequence[str], dst_dir: str, *, copy: bool) -> None:
        files = [{"fileId": await self._id(p), "filePath": await self._id_path(p)} for p in paths]
        info = {"fileInfo": files, "newFilePath": await self._id_path(dst_dir), "srcContainerId": self.container}
        verb = "copy" if copy else "move"
        await jobs.run_job(self.wire, jobs.COPY if copy else jobs.MOVE, verb, info, container=self.container,
                           what=f"{verb} {len(paths)} item(s) to {dst_dir}", items=len(paths))
        if not copy:
            for p, f in zip(paths, files):
                self.ids.forget(p)
                self.ids.put(join(dst_dir, split(p)[1]), f["fileId"])

    async def delete(self, paths: Sequence[str], *, permanent: bool) -> None:
        files = [{"fileId": await self._id(p), "filePath": await self._id_path(p)} for p in paths]
        await self._delete_ids(files, permanent=permanent, what=f"delete {len(paths)} item(s)")
        for p in paths:
            self.ids.forget(p)

    async def _delete_ids(self, files: list[dict[str, str]], *, permanent: bool, what: str) -> None:
        await jobs.run_job(self.wire, jobs.DELETE, "purge" if permanent else "recycle",
                           {"fileInfo": files, "srcContainerId": self.container}, container=self.container,
                           what=what, items=len(files))

    async def set_metadata(self, path: str, values: Mapping[str, str | None]) -> None:
        raise NotSupported("KooDrive keeps no custom metadata", errno=errno.EOPNOTSUPP)

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
        return response.status_code in (200, 206)

    def content_refused(self, response: httpx.Response, body: bytes) -> Exception | None:
        status = response.status_code
        if status in (200, 206):
            return None
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
                          sha256: str | None = None) -> UploadSession:
        if sha256 is None:
            raise ProtocolError("a KooDrive upload needs the file's SHA-256 up front")
        folder, name = split(path)
        upload_name = temp_name(name) if replace is not None else name
        parent_ref = await self._folder_made(folder)
        body: dict[str, Any] = {
            "fileName": upload_name, "fileType": FILE_TYPE, "parentFolder": [parent_ref], "sha256": sha256,
            "length": size, "uploadMode": "multipart", "uploadType": 1, "autoRename": 3,
            "containerId": self.container}
        if mtime_ms is not None:
            body["editedTime"] = iso_ms(mtime_ms)
        # not retried once delivered: a lost answer leaves an invisible upload task, harmless
        answer = data_of_upload(await self.wire.call("POST", "/files/create", idempotent=False,
                                                     what=f"upload {path}", json_body=body))
        parts = answer.get("multiParts") or []
        urls = {int(p["partNumber"]): str(p["uploadUrl"]) for p in parts if p.get("uploadUrl")}
        chunk = int(parts[0].get("partSize") or 0) if parts else size
        return UploadSession(
            session_id=str(answer["fileId"]), path=path, size=size, chunk_size=chunk if len(parts) > 1 else 0,
            concurrency=1, expires_at=time.time() + 3600, policy_type="presigned",
            extra={"urls": urls, "sizes": {int(p["partNumber"]): int(p.get("partSize") or 0) for p in parts},
                   "rapid": bool(answer.get("rapidUpload")), "sha256": sha256, "name": upload_name,
                   "folder": folder})

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
                                        "multiParts": [{"partNumber": number, "partSize": length}]})
        for part in data_of_upload(body).get("multiParts") or []:
            if int(part.get("partNumber", 0)) == number and part.get("uploadUrl"):
                return str(part["uploadUrl"])
        raise ProtocolError(f"part URL for {session.path}: not in the answer")

    async def complete_upload(self, session: UploadSession, replace: Entry | None) -> Entry:
        file_id = session.session_id
        folder = str(session.extra["folder"])
        if not session.extra.get("rapid"):
            await self.wire.call("POST", "/files/complete", idempotent=True, what=f"complete {session.path}",
                                 json_body={"fileId": file_id, "sha256": session.extra["sha256"]})
        uploaded_path = join(folder, str(session.extra["name"]))
        self.ids.put(uploaded_path, file_id)
        if replace is None:
            return entry_of(await self._detail(file_id, session.path), session.path)
        return await self._swap(uploaded_path, file_id, replace, session.path)

    async def _swap(self, uploaded_path: str, file_id: str, replace: Entry, target: str) -> Entry:
        """The new version (``uploaded_path``) takes the place of ``replace``,
        which must still be the file at ``target`` (the upload's path: the
        caller's ``replace`` may carry a path from before a rename): the old
        file goes to the recycle bin, the new one is renamed to its name."""
        try:
            current = await self.stat(target)
        except NotFound:
            current = None
        if current is not None and current.file_id != replace.file_id:
            await self._delete_ids([{"fileId": file_id, "filePath": await self._id_path(uploaded_path)}],
                                   permanent=True, what=f"drop the upload beside {target}")
            self.ids.forget(uploaded_path)
            raise VersionConflict(f"{target} changed on the server meanwhile")
        if current is not None:
            await self._delete_ids([{"fileId": current.file_id, "filePath": await self._id_path(target)}],
                                   permanent=False, what=f"replace {target}")
            self.ids.forget(target)
        return await self.rename(uploaded_path, split(target)[1])

    async def _upload_empty(self, path: str) -> Entry:
        session = await self.open_upload(path, 0, mtime_ms=None, replace=None,
                                         sha256=hashlib.sha256(b"").hexdigest())
        await self.send_chunk(session, 0, 0, b"", deadline=self.http.settings.deadline_s)
        return await self.complete_upload(session, None)

    async def cancel_upload(self, session: UploadSession) -> None:
        return None  # no cancel call: an uncompleted task stays invisible

    async def cancel_session(self, path: str, session_id: str) -> None:
        return None

    async def put_whole(self, path: str, content: bytes, *, replace: Entry | None, mtime_ns: int | None,
                        metadata: Mapping[str, str]) -> Entry | None:
        return None  # no single-request new version


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
