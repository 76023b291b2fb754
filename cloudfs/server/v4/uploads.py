"""Upload sessions, chunk uploads and one-shot content writes (local storage policy).

Follows ``service/explorer/upload.go`` + ``pkg/filemanager/fs/dbfs/upload.go``
at Cloudreve 4.18:

* ``PUT /file/upload`` checks the target (an existing file needs
  ``entity_type: "version"``, else 40004; ``previous`` must be the current
  entity, else 40076), takes an exclusive lock on the path for the session's
  lifetime, validates name/size/quota, charges the declared size to the quota
  at once, creates a placeholder (new file, ``sys:upload_session_id``) or a
  pending version entity, and pre-sizes an empty blob;
* ``POST /file/upload/{id}/{index}`` needs the exact chunk length (40013),
  a valid index (40012), a live session of the caller (40011) and a held lock
  ("Lock expired", 40073); the upload completes once every index 0..n-1 was
  received, in any order (a 0-byte file is one empty chunk 0);
* completion makes the new entity current, applies ``last_modified`` as
  ``updated_at``, removes the session marker and prunes the previous version;
* ``DELETE /file/upload`` cancels (placeholder or pending version removed,
  quota refunded) and also works after the session expired.

Request bodies are streamed into the blob with positional writes in worker
threads, a few MiB at a time, so memory stays flat for any file size.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..common import ids
from ..common.blobs import write_body
from ..common.store import FILE, new_blob_name
from . import errors as E
from . import eventemit, metadata, views
from .fileops import create_chain, hard_delete_rows, parse_uri
from .locks import LockRequest, LockSession
from .navigator import (
    LOCK,
    UPLOAD,
    Node,
    WalkError,
    check_fs,
    get_target,
    lock_ns,
    render,
    walk,
)
from .upload_sessions import UploadSession
from .uris import CloudreveURI, validate_name

if TYPE_CHECKING:
    from .state import Ctx

log = logging.getLogger("cloudfs.server")
LIVE_PHOTO = 2  # types.EntityTypeLivePhoto


def content_length(request: Request) -> int:
    """``request.SniffContentLength``: Content-Length, else X-Expected-Entity-Length, else 0."""
    for header in ("content-length", "x-expected-entity-length"):
        raw = request.headers.get(header)
        if raw is not None:
            raw = raw.strip()
            if not raw.lstrip("+-").isdigit():
                raise ValueError(raw)
            return int(raw)
    return 0


# --- PUT /file/upload --------------------------------------------------------
def create(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    state, cfg = ctx.state, ctx.state.config
    uri = parse_uri(args["uri"])
    if args["policy_id"] and state.codec.decode(args["policy_id"], ids.POLICY) is None:
        raise E.AppError(E.PARAM_ERR, "unknown policy id")
    if args["metadata"] is not None:
        metadata.validate(metadata.from_map(args["metadata"]), state.codec)
    last_modified = args["last_modified"] * 1000 if args["last_modified"] > 0 else None
    sid = str(uuid.uuid4())
    expires = time.time() + cfg.upload_session_ttl
    try:
        node, session_lock, existed = prepare(ctx, uri, args["size"], args["entity_type"] or None,
                                              args["previous"], sid, last_modified, cfg.upload_session_ttl)
    except (E.AppError, E.Wrapped, E.PlainError) as exc:
        raise E.wrap("faield to prepare uplaod", exc) from None
    entity = state.store.entity(_pending_entity(ctx, node, sid))
    assert entity is not None
    session = UploadSession(
        id=sid, uid=node.row.owner_id, file_id=node.row.id, entity_id=entity.id, uri=uri.string(),
        lock_path=uri.path(), size=args["size"], chunk_size=cfg.chunk_size, expires=expires,
        last_modified=last_modified, metadata=args["metadata"], new_file=not existed,
        lock_token=session_lock,
        callback_secret=secrets.token_urlsafe(24)[:32], blob=entity.blob, entity_type=entity.type)
    ctx.state.upload_sessions.add(session)
    return {"session_id": sid, "upload_id": "", "chunk_size": cfg.chunk_size, "expires": int(expires),
            "storage_policy": views.storage_policy(state.codec, cfg.max_file_size, cfg.chunk_concurrency),
            "uri": uri.string(), "callback_secret": session.callback_secret}


def _pending_entity(ctx: Ctx, node: Node, sid: str) -> int:
    for e in ctx.state.store.entities_of(node.row.id):
        if e.upload_session_id == sid:
            return e.id
    raise E.AppError(E.DB_ERROR, "Failed to create entity")


def prepare(ctx: Ctx, uri: CloudreveURI, size: int, entity_type: str | None, previous: str,
            sid: str, last_modified: int | None, lock_ttl: float | None) -> tuple[Node, str, bool]:
    """``DBFS.PrepareUpload``: (target node, held lock token, whether it existed)."""
    state, cfg, store = ctx.state, ctx.state.config, ctx.state.store
    check_fs(uri, UPLOAD, LOCK)
    try:
        node = walk(ctx, uri)
        assert node is not None
        exists = True
    except WalkError as exc:
        if exc.ancestor is None:
            raise E.wrap("failed to get ancestor", exc.err) from None
        node, exists = exc.ancestor, False
    if exists and (entity_type is None or node.row.is_folder):
        raise E.file_existed()
    if not exists and entity_type not in (None, "version"):
        raise E.path_not_exist()
    assert ctx.user is not None
    session = LockSession()
    request = LockRequest(lock_ns(ctx, "my"), uri.path(), FILE)
    state.locks.acquire(session, "upload", [request], lock_ttl)
    try:
        problem = validate_name(uri.name())
        if problem:
            raise E.illegal_name(problem)
        if cfg.max_file_size and size > cfg.max_file_size:
            raise E.too_large()
        if state.db.storage_used(ctx.user.id) + size > state.capacity_total():
            raise E.insufficient_capacity()
        blob = new_blob_name()
        stale: list[str] = []
        with state.db.tx():
            if exists:
                if previous:
                    eid = state.codec.decode(previous, ids.ENTITY)
                    if eid is None:
                        raise E.wrap("failed to create new entity",
                                     E.AppError(E.PARAM_ERR, "Unknown version ID"))
                    if node.row.primary_entity != eid:
                        raise E.wrap("failed to create new entity", E.stale_version())
                stale = store.remove_stale_pending(node.row)
                store.create_entity(node.row, size, blob, sid, ctx.user.id, last_modified,
                                    LIVE_PHOTO if entity_type == "live_photo" else 0)
            else:
                try:
                    node = create_chain(ctx, node, uri.elements, FILE, None)
                except (E.AppError, E.Wrapped) as exc:
                    raise E.wrap("failed to create upload placeholder", exc) from None
                store.create_entity(node.row, size, blob, sid, ctx.user.id, last_modified)
            store.upsert_metadata(node.row.id, {"sys:upload_session_id": sid})
        store.unlink_blobs(stale)
        path = store.blob_path(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.truncate(size)  # sparse "pre-allocation": chunks may arrive in any order
        token = state.locks.exclude(session, request.key)
    finally:
        state.locks.release(session)
    return node, token, exists


# --- POST /file/upload/{id}/{index} --------------------------------------------
async def upload_chunk(ctx: Ctx, sid: str, index: int, request: Request) -> None:
    session = ctx.state.upload_sessions.get(sid)
    if session is None or ctx.user is None or session.uid != ctx.user.id:
        raise E.AppError(E.UPLOAD_SESSION_EXPIRED, "")
    _confirm(ctx, session)
    start = index * session.chunk_size
    if session.chunk_size == 0 and index > 0:
        raise E.AppError(E.INVALID_CHUNK_INDEX, "Chunk index cannot be greater than 0")
    if start > 0 and start >= session.size:
        raise E.AppError(E.INVALID_CHUNK_INDEX, "Chunk offset cannot be greater than file size")
    last = session.chunk_size == 0 or (index + 1) * session.chunk_size >= session.size
    expected = session.size - start if last else session.chunk_size
    try:
        length = content_length(request)
    except ValueError as exc:
        raise E.AppError(E.INVALID_CONTENT_LENGTH, f"Invalid Content-Length (expected: {expected})",
                         str(exc)) from None
    if length != expected:
        raise E.AppError(E.INVALID_CONTENT_LENGTH, f"Invalid Content-Length (expected: {expected})")
    path = str(ctx.state.store.blob_path(session.blob))
    try:
        written = await write_body(request, path, start, expected)
    except OSError as exc:
        raise E.AppError(E.IO_FAILED, "Failed to upload file", str(exc)) from None
    if written != expected:
        raise E.AppError(E.IO_FAILED, "Uploaded data does not match purposed size",
                         f"uploaded data({written}) does not match purposed size({session.size})")
    current = ctx.state.upload_sessions.sessions.get(sid)
    if current is None:
        return  # completed or cancelled meanwhile: nothing more to do
    already = len(current.received) >= current.chunk_count()
    if index not in current.received:
        current.received.append(index)
        ctx.state.upload_sessions.save(current)
    if not already and len(current.received) >= current.chunk_count():
        try:
            complete(ctx, current)
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            raise E.wrap("failed to complete upload", exc) from None


def _confirm(ctx: Ctx, session: UploadSession) -> Node:
    uri = CloudreveURI.parse(session.uri)
    node = get_target(ctx, uri, prefix="failed to get placeholder file")
    assert node is not None
    if session.lock_token and not ctx.state.locks.confirm(session.lock_token, f"{session.uid}/my",
                                                          session.lock_path):
        raise E.lock_expired("memlock: confirmation failed")
    return node


def complete(ctx: Ctx, session: UploadSession) -> Node:
    state, store = ctx.state, ctx.state.store
    node = _confirm(ctx, session)
    entity = store.entity(session.entity_id)
    if entity is None or all(e.id != entity.id for e in store.entities_of(node.row.id)):
        raise E.AppError(E.DB_ERROR, "Failed to update placeholder file")
    with state.db.tx():
        store.upgrade_placeholder(node.row, entity, session.last_modified)
        store.remove_metadata(node.row.id, "sys:upload_session_id", "thumb:disabled")
        if session.metadata:
            metadata.check_lengths(session.metadata)
            store.upsert_metadata(node.row.id, session.metadata)
        refreshed = store.get(node.row.id)
        assert refreshed is not None
        stale = store.cap_versions(refreshed, 1, session.entity_type)
    state.locks.drop(session.lock_token)
    ctx.state.upload_sessions.forget(session)
    store.unlink_blobs(stale)
    final = store.get(node.row.id)
    assert final is not None
    eventemit.modified(ctx, final)
    return Node(final, node.fs, node.prefix, node.elements, node.caps)


# --- DELETE /file/upload ------------------------------------------------------
def cancel(ctx: Ctx, uri: CloudreveURI, sid: str) -> None:
    state, store = ctx.state, ctx.state.store
    session = ctx.state.upload_sessions.get(sid)
    node = get_target(ctx, uri, prefix="failed to get placeholder file")
    if node is None or node.is_root:
        raise E.not_supported("cannot operate root file")
    assert ctx.user is not None
    if session is not None and (session.uid != ctx.user.id or session.file_id != node.row.id):
        raise E.AppError(E.NOT_FOUND, "Upload session not found")
    lock_session = LockSession()
    if session is not None and session.lock_token and state.locks.confirm(
            session.lock_token, f"{session.uid}/my", session.lock_path):
        lock_session.tokens[f"{session.uid}/my/{session.lock_path}"] = session.lock_token
    own = LockSession()
    request = LockRequest(lock_ns(ctx, node.fs), node.lock_path, node.row.type, zero_depth=True)
    if request.key not in lock_session.tokens:
        state.locks.acquire(own, "upload", [request])
    try:
        entities = store.entities_of(node.row.id)
        pending = next((e for e in entities if e.upload_session_id == sid), None)
        with state.db.tx():
            store.remove_metadata(node.row.id, "sys:upload_session_id", "thumb:disabled")
        if pending is None:
            return
        if session is not None:
            state.locks.drop(session.lock_token)
            ctx.state.upload_sessions.forget(session)
        if len(entities) == 1:
            hard_delete_rows(ctx, [node.row])
        else:
            with state.db.tx():
                stale = store.unlink_entity(node.row, pending)
            store.unlink_blobs(stale)
    finally:
        state.locks.release(own)


# --- PUT /file/content ---------------------------------------------------------
async def put_content(ctx: Ctx, uri: CloudreveURI, previous: str, length: int,
                      request: Request) -> dict[str, Any]:
    sid = str(uuid.uuid4())
    try:
        node, token, existed = prepare(ctx, uri, length, "version", previous, sid, None, None)
    except (E.AppError, E.Wrapped, E.PlainError) as exc:
        raise E.wrap("failed to update file", E.wrap("faield to prepare uplaod", exc)) from None
    entity_id = _pending_entity(ctx, node, sid)
    entity = ctx.state.store.entity(entity_id)
    assert entity is not None
    session = UploadSession(
        id=sid, uid=node.row.owner_id, file_id=node.row.id, entity_id=entity_id, uri=uri.string(),
        lock_path=uri.path(), size=length, chunk_size=0, expires=time.time() + 3600, last_modified=None,
        metadata=None, new_file=not existed, lock_token=token, callback_secret="", blob=entity.blob)
    try:
        written = await write_body(request, str(ctx.state.store.blob_path(entity.blob)), 0, length)
        if written != length:
            raise E.AppError(E.IO_FAILED, "Failed to upload file",
                             f"uploaded data({written}) does not match purposed size({length})")
        done = complete(ctx, session)
    except BaseException:
        _failed(ctx, session)  # synchronous: runs even when we are being cancelled
        raise
    return render(ctx, done, None)


def _failed(ctx: Ctx, session: UploadSession) -> None:
    """OnUploadFailed: unlock, then drop the placeholder or the pending version."""
    store = ctx.state.store
    ctx.state.locks.drop(session.lock_token)
    row = store.get(session.file_id)
    if row is None:
        return
    try:
        if session.new_file:
            before = [eventemit.locate(ctx, row)] if eventemit.active(ctx) else []
            hard_delete_rows(ctx, [row])
            eventemit.deleted(ctx, before)
        else:
            pending = store.entity(session.entity_id)
            if pending is not None:
                with ctx.state.db.tx():
                    stale = store.unlink_entity(row, pending)
                    store.remove_metadata(row.id, "sys:upload_session_id")
                store.unlink_blobs(stale)
                eventemit.modified(ctx, row)  # VersionControl(delete) -> deleteEntity
    except Exception:  # best effort, as in Cloudreve (it only logs)
        log.exception("cleanup after failed upload")
