"""Uploads of the v3 dialect (``service/explorer/upload.go``, ``pkg/filesystem/{upload,
hooks}.go``, the local driver's ``Put``/``Token`` @3.8.3).

* ``PUT /file/upload`` checks the policy id (undecodable -> 40035, not the
  default policy -> 40006), size limit, name and free capacity, creates the
  missing parent folders and a *placeholder* file of size 0 (a second upload
  of the same name -> 40054, an existing file -> 40004) and stores the
  session under ``callback_<id>`` for ``upload_session_timeout`` seconds.
  Nothing is reserved: the quota is checked, not charged.
* ``POST /file/upload/<id>/<index>`` appends one chunk.  Chunks must arrive
  in order: the placeholder's size is the number of bytes stored, an index
  whose offset lies beyond it is 40012; re-sending the current or an earlier
  chunk truncates the blob to that chunk's start first.  Content-Length must
  be exactly the chunk's length (40013).  Each stored chunk sets the
  placeholder's size (and the user's usage) to the chunk's end; a dropped
  body truncates back.  The chunk whose end reaches the size completes the
  file (``date`` = ``last_modified`` when given) and ends the session.
* ``DELETE /file/upload/<id>`` deletes the placeholder (works after the
  session expired), ``DELETE /file/upload`` all of the user's placeholders.
  A cron job (every 1 h 30 min) deletes placeholders whose session expired.
* ``PUT /file/update/<file id>`` replaces a file's content from the raw
  body.  As in Cloudreve 3 a body that breaks off leaves the file *empty*
  (``AfterUploadCanceled``: clean content, size 0).  Deviation: the new
  content always goes to a new blob (Cloudreve 3 overwrites a blob shared
  with copies in place, changing the copies too).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request

from ..common import ids
from ..common.blobs import write_body
from ..common.db import User, now_us
from ..common.store import FileRow, new_blob_name
from . import errors as E
from .fs import add_file_row, delete
from .tree import UPLOAD_SESSION_KEY, legal_name

if TYPE_CHECKING:
    from .runtime import V3Runtime

log = logging.getLogger("cloudfs.server")
SESSION_PREFIX = "callback_"
COLLECT_PERIOD = 5400.0  # cron_recycle_upload_session: "@every 1h30m"
_UINT = re.compile(r"[0-9]+")


def _remaining(rt: V3Runtime, user: User) -> int:
    """``User.GetRemainingCapacity``."""
    total = rt.state.capacity_total()
    used = rt.state.db.storage_used(user.id)
    return max(total - used, 0)


def _validate_file(rt: V3Runtime, size: int, name: str) -> None:
    """``HookValidateFile``: size limit, then the name (no extension list on this policy)."""
    max_size = rt.state.config.max_file_size
    if max_size and size > max_size:
        raise E.file_too_large()
    if not legal_name(name):
        raise E.illegal_name()


def parse_content_length(request: Request) -> int | None:
    """``strconv.ParseUint(header)``: None when absent or malformed."""
    raw = request.headers.get("content-length", "")
    if not _UINT.fullmatch(raw) or int(raw) >= 2 ** 64:
        return None
    return int(raw)


def _ensure_blob(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


# --- session creation -------------------------------------------------------------------
def create_session(rt: V3Runtime, user: User, args: dict[str, Any]) -> dict[str, Any]:
    state = rt.state
    policy = state.codec.decode(args["policy_id"], ids.POLICY)
    if policy is None:
        raise E.V3Error(E.POLICY_NOT_EXIST, "", "mismatched ID type.")
    if policy != 1:
        raise E.V3Error(E.POLICY_NOT_ALLOWED, E.POLICY_CHANGED_MSG)
    size, name = int(args["size"]), args["name"]
    _validate_file(rt, size, name)
    if _remaining(rt, user) < size:
        raise E.insufficient_capacity()
    sid = str(uuid.uuid4())
    _folder, row = add_file_row(rt, user, args["path"], name, sid)
    blob = new_blob_name()
    with state.db.tx():
        entity = state.store.create_entity(row, 0, blob, sid, user.id)
    ttl = state.config.upload_session_ttl
    last_modified = int(args["last_modified"]) if args["last_modified"] > 0 else None
    rt.kv.set(SESSION_PREFIX + sid, {
        "uid": user.id, "virtual_path": args["path"], "name": name, "size": size,
        "chunk_size": state.config.chunk_size, "last_modified": last_modified,
        "file_id": row.id, "entity_id": entity.id, "blob": blob}, ttl)
    return {"sessionID": sid, "chunkSize": state.config.chunk_size, "expires": int(time.time() + ttl)}


# --- chunks -------------------------------------------------------------------------------------
async def upload_chunk(rt: V3Runtime, user: User, sid: str, index: int, request: Request) -> None:
    session = rt.kv.get(SESSION_PREFIX + sid)
    if not isinstance(session, dict) or session.get("uid") != user.id:
        raise E.V3Error(E.UPLOAD_SESSION_EXPIRED, "")
    row = rt.tree.placeholder(user.id, sid)
    if row is None:
        raise E.V3Error(E.UPLOAD_SESSION_EXPIRED, "", "record not found")
    chunk_size, size = int(session["chunk_size"]), int(session["size"])
    start = index * chunk_size
    if chunk_size == 0 and index > 0:
        raise E.V3Error(E.INVALID_CHUNK_INDEX, "Chunk index cannot be greater than 0")
    if row.size < start:
        raise E.V3Error(E.INVALID_CHUNK_INDEX, "Chunk must be uploaded in order")
    last = chunk_size == 0 or (index + 1) * chunk_size >= size
    expected = chunk_size if not last else (size - start) % 2 ** 64  # uint64 arithmetic
    length = parse_content_length(request)
    if length is None or length != expected:
        raise E.V3Error(E.INVALID_CONTENT_LENGTH, f"Invalid Content-Length (expected: {expected})",
                        None if length is not None else "strconv.ParseUint: parsing \"\": invalid syntax")
    if _remaining(rt, user) < length:  # HookValidateCapacity, per chunk
        raise E.insufficient_capacity()
    async with rt.session_lock(sid):
        await _store_chunk(rt, row, sid, session, start, length, last, request)


async def _store_chunk(rt: V3Runtime, row: FileRow, sid: str, session: dict[str, Any], start: int,
                       length: int, last: bool, request: Request) -> None:
    store = rt.state.store
    path = str(store.blob_path(session["blob"]))
    await trio.to_thread.run_sync(_ensure_blob, path)
    have = (await trio.to_thread.run_sync(os.stat, path)).st_size
    if have < start:
        raise E.V3Error(E.UPLOAD_FAILED, "size of unfinished uploaded chunks is not as expected")
    if have > start:  # overwriting an earlier chunk: the local driver truncates first
        await trio.to_thread.run_sync(os.truncate, path, start)
    written = await write_body(request, path, start, length)
    if written != length:
        # AfterUploadCanceled / AfterValidateFailed: truncate back to the chunk's start
        await trio.to_thread.run_sync(os.truncate, path, start)
        raise E.V3Error(E.UPLOAD_FAILED, "unexpected EOF")
    current = store.get(row.id)
    entity = store.entity(int(session["entity_id"]))
    if current is None or entity is None:
        raise E.V3Error(E.UPLOAD_FAILED, "record not found")  # cancelled meanwhile
    end = start + length
    with rt.state.db.tx():  # HookChunkUploaded: File.UpdateSize(chunk end)
        rt.state.db.conn.execute("UPDATE files SET size=?, updated_at=? WHERE id=?", (end, now_us(), row.id))
        rt.state.db.conn.execute("UPDATE entities SET size=? WHERE id=?", (end, entity.id))
        rt.state.db.add_storage(row.owner_id, end - entity.size)
        if last:  # HookPopPlaceholderToFile + HookDeleteUploadSession
            modified = session.get("last_modified")
            store.remove_metadata(row.id, UPLOAD_SESSION_KEY)
            rt.state.db.conn.execute("UPDATE entities SET upload_session_id=NULL WHERE id=?", (entity.id,))
            rt.state.db.conn.execute(
                "UPDATE files SET primary_entity=?, updated_at=? WHERE id=?",
                (entity.id, int(modified) * 1000 if modified else now_us(), row.id))
            rt.kv.delete(SESSION_PREFIX + sid)


# --- cancellation and the collector --------------------------------------------------
def cancel(rt: V3Runtime, user: User, sid: str) -> None:
    row = rt.tree.placeholder(user.id, sid)
    if row is None:
        raise E.V3Error(E.UPLOAD_SESSION_EXPIRED, "", "record not found")
    try:
        delete(rt, user, [], [row.id])
    except E.V3Error as exc:
        raise E.V3Error(E.INTERNAL_SETTING, "Failed to delete upload session", exc.raw) from None


def cancel_all(rt: V3Runtime, user: User) -> None:
    rows = [row.id for row, _sid in rt.tree.placeholders(user.id)]
    if not rows:
        return
    try:
        delete(rt, user, [], rows)
    except E.V3Error as exc:
        raise E.V3Error(E.INTERNAL_SETTING, "Failed to cleanup upload session", exc.raw) from None


def collect_sessions(rt: V3Runtime) -> int:
    """``uploadSessionCollect``: delete placeholders whose session expired; returns how many."""
    rt.kv.purge()
    by_user: dict[int, list[int]] = {}
    for row, sid in rt.tree.placeholders(None):
        if rt.kv.get(SESSION_PREFIX + sid) is None:
            by_user.setdefault(row.owner_id, []).append(row.id)
    done = 0
    for uid, fids in by_user.items():
        user = rt.state.db.user_by_id(uid)
        if user is None:
            continue
        delete(rt, user, [], fids)
        done += len(fids)
    return done


async def collect_sessions_forever(rt: V3Runtime, period: float = COLLECT_PERIOD) -> None:
    """The cron job; its first run is one period after start, like robfig/cron's ``@every``."""
    while True:
        await trio.sleep(period)
        try:
            collect_sessions(rt)
        except Exception:  # a failed sweep must not take the server down
            log.exception("upload session collection failed")


# --- PUT /file/update/<id> ----------------------------------------------------------------
async def put_content(rt: V3Runtime, user: User, fid: int, request: Request) -> None:
    state, store = rt.state, rt.state.store
    length = parse_content_length(request)
    if length is None:
        raise E.param_err("Invalid content-length value", "strconv.ParseUint: invalid syntax")
    row = rt.tree.file_of(user.id, fid)
    if row is None:
        raise E.V3Error(E.FILE_NOT_FOUND, "")
    _validate_file(rt, length, row.name)
    if length > row.size and _remaining(rt, user) < length:  # HookValidateCapacityDiff
        raise E.insufficient_capacity()
    blob = new_blob_name()
    path = str(store.blob_path(blob))
    await trio.to_thread.run_sync(_ensure_blob, path)
    written = await write_body(request, path, 0, length)
    broken = written != length
    if broken:
        await trio.to_thread.run_sync(os.truncate, path, 0)
    current = store.get(row.id)
    if current is None:  # deleted while the body was streaming
        store.unlink_blobs([blob])
        raise E.V3Error(E.UPLOAD_FAILED, "record not found")
    with state.db.tx():
        entity = store.create_entity(current, 0 if broken else length, blob, None, user.id)
        store.upgrade_placeholder(current, entity, None)
        refreshed = store.get(current.id)
        assert refreshed is not None
        stale = store.cap_versions(refreshed, 1)
    store.unlink_blobs(stale)
    if broken:
        raise E.V3Error(E.UPLOAD_FAILED, "unexpected EOF")
