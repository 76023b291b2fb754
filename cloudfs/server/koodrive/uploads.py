"""Multipart uploads: ``files/create``, PUT parts to pre-signed URLs,
``files/multipart/uploadUrl`` and ``files/complete``.

The rules the reference gives, enforced at create (13000102 otherwise):
``fileName``, ``fileType`` (the client's own; "10" is a folder) and ``length``
are required, ``sha256`` (whole file, 64 hex) is optional; ``uploadMode``
"put" is one PUT of at most 5 GB, "multipart" (the default) at most 200 GB
(GB read as GiB); in multipart mode parts are numbered 1..N, N <= 10,000, and cover the
file exactly; every part but the last is 5 MiB..5 GiB, the last 0..5 GiB.
A *parallel* plan (any part carrying ``hashCtx``) must also have every part
but the last a multiple of 64 bytes and a ``hashCtx`` on every part but the
first: 8 x 32-bit words of SHA-256 state, read as 64 hex characters, each
word big-endian (assumption ``hashCtx`` format).  At complete each ``hashCtx``
is checked against the state after the bytes before its part (13000402 when
wrong; switch ``verify_hash_ctx``; needs libcrypto, see :mod:`.sha256ctx`).  Without ``multiParts`` the
emulator plans sequential parts of ``default_part_size``.

A known ``sha256`` of the same length (any file the emulator stores) makes
the create answer ``rapidUpload: true``: the file exists at once, sharing the
content.  ``autoRename`` 3 refuses a taken name (13000405), 2 appends a
timestamp, 4 answers the existing file (``exist: true``) when its name and
sha256 match (and refuses the name, 13000405, when only the name does: an assumption).  At complete every part must be there (13000409) and the
content must hash to the sha256 announced at create or complete (13000402; the task is then
dropped, as its content is unusable).  Upload tasks are kept in the data
directory until completed (:mod:`.uploadstore`).

There is no cancel call: an upload never completed stays an invisible task.
Whether such a task holds its name is unknown (switch ``pending_holds_name``,
off by default): off, its row waits under a hidden placeholder name and takes
its name at complete, where the name is checked again (13000405 if a file
took it meanwhile; the task is then dropped).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..common.db import now_us
from ..common.ids import FILE
from ..common.store import FileRow, new_blob_name
from . import errors as E
from .context import KooCtx
from .presign import obs_error
from .sha256ctx import digest_with_states
from .tree import FILE_TYPE, PENDING, SHA256, Tree, check_name, parse_time
from .uploadstore import Part, Task, Uploads

if TYPE_CHECKING:
    from .runtime import KooRuntime

MIB, GIB = 1 << 20, 1 << 30
MIN_PART, MAX_PART, MAX_PARTS = 5 * MIB, 5 * GIB, 10_000
MAX_FILE = 200 * GIB
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
UPLOAD_PREFIX = "/obs/upload/"
WRITE_BATCH = 4 << 20
#: the name an unfinished upload's row waits under (the client never sees it)
PLACEHOLDER = ".kd-upload-"


# --- the part plan -------------------------------------------------------------------------
def _plan(body: dict[str, Any], length: int, default_size: int) -> tuple[list[Part], bool]:
    raw = body.get("multiParts")
    if not raw:
        size = max(default_size, -(-length // MAX_PARTS))
        size += -size % 64
        count = max(1, -(-length // size))
        return [Part(i + 1, min(size, length - i * size), i * size) for i in range(count)], False
    if not isinstance(raw, list) or len(raw) > MAX_PARTS:
        raise E.bad("multiParts is invalid: at most 10000 parts")
    parts: list[Part] = []
    for item in raw:
        if not isinstance(item, dict):
            raise E.bad("multiParts is invalid")
        number, part_size = item.get("partNumber"), item.get("partSize")
        if not isinstance(number, int) or not isinstance(part_size, int) or isinstance(number, bool) \
                or part_size < 0:
            raise E.bad("partNumber/partSize is invalid")
        ctx = item.get("hashCtx") or ""
        if ctx and (not isinstance(ctx, str) or not HEX64.fullmatch(ctx)):
            raise E.bad("hashCtx must be 64 hex characters (8 x 32-bit SHA-256 words)")
        offset_given = item.get("partOffset", -1)
        if not isinstance(offset_given, int) or isinstance(offset_given, bool):
            raise E.bad("partOffset is invalid")
        parts.append(Part(number, part_size, offset_given, ctx.lower()))
    parts.sort(key=lambda p: p.number)
    if [p.number for p in parts] != list(range(1, len(parts) + 1)):
        raise E.bad("partNumber must run from 1 to the number of parts")
    parallel = any(p.hash_ctx for p in parts)
    offset = 0
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.size > MAX_PART or (not last and part.size < MIN_PART):
            raise E.bad(f"part {part.number}: a part is 5 MiB to 5 GiB (the last 0 to 5 GiB)")
        if parallel and not last and part.size % 64:
            raise E.bad(f"part {part.number}: parallel parts must be multiples of 64 bytes")
        if parallel and i > 0 and not part.hash_ctx:
            raise E.bad(f"part {part.number}: parallel parts after the first need hashCtx")
        if part.offset not in (-1, offset):
            raise E.bad(f"part {part.number}: partOffset does not follow the previous parts")
        part.offset = offset
        offset += part.size
    if offset != length:
        raise E.bad("the parts do not add up to length")
    return parts, parallel


def _part_json(kc: KooCtx, task: Task, part: Part) -> dict[str, Any]:
    path = f"{UPLOAD_PREFIX}{task.upload_id}/{part.number}"
    query = kc.rt.presigner.sign("PUT", path, kc.rt.switches.upload_url_ttl, length=part.size)
    return {"partNumber": part.number, "partSize": part.size, "partOffset": part.offset,
            "hashCtx": part.hash_ctx, "uploadUrl": f"{kc.base_url}{path}?{query}",
            "partId": f"{task.upload_id}-{part.number}"}


# --- files/create ----------------------------------------------------------------------------
def _known_content(tree: Tree, sha256: str, length: int) -> FileRow | None:
    row = tree.conn.execute(
        "SELECT f.* FROM metadata m JOIN files f ON f.id=m.file_id WHERE m.name=? AND m.value=? "
        "AND f.size=? AND f.type=0 AND f.primary_entity != 0 LIMIT 1", (SHA256, sha256, length)).fetchone()
    return None if row is None else FileRow(**dict(row))


def _link_content(tree: Tree, new: FileRow, source: FileRow, sha256: str) -> None:
    """Rapid upload: ``new`` shares ``source``'s content entity."""
    conn = tree.conn
    conn.execute("INSERT INTO file_entities(file_id, entity_id) VALUES(?,?)", (new.id, source.primary_entity))
    conn.execute("UPDATE entities SET ref_count=ref_count+1 WHERE id=?", (source.primary_entity,))
    conn.execute("UPDATE files SET size=?, primary_entity=? WHERE id=?", (source.size, source.primary_entity, new.id))
    tree.store.db.add_storage(new.owner_id, source.size)
    tree.store.upsert_metadata(new.id, {SHA256: sha256})


async def create(kc: KooCtx) -> dict[str, Any]:
    body, tree, rt = kc.body, kc.tree, kc.rt
    if "containerId" in body:
        tree.check_container(body)
    name = check_name(body.get("fileName"))
    sha256, length = body.get("sha256"), body.get("length")
    if sha256 is not None and (not isinstance(sha256, str) or not HEX64.fullmatch(sha256)):
        raise E.bad("sha256 must be the whole file's SHA-256 (64 hex)")
    sha256 = sha256.lower() if sha256 else ""
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise E.bad("length is invalid")
    upload_mode = body.get("uploadMode", "multipart")
    if upload_mode not in ("multipart", "put"):
        raise E.bad("uploadMode must be put or multipart")
    if length > (MAX_FILE if upload_mode == "multipart" else MAX_PART):
        raise E.bad("a file is at most 5 GB in put mode, 200 GB in multipart mode")
    if body.get("uploadType", 1) != 1:
        raise E.bad("uploadType 0 and 2 are not supported yet")
    file_type = body.get("fileType")
    if not isinstance(file_type, str) or not file_type or file_type == "10" or len(file_type) > 64:
        raise E.bad("fileType is required (and 10 is a folder: use /directory)")
    mode = tree.rename_mode(body, "autoRename")
    parents = body.get("parentFolder") or ["root"]
    if not isinstance(parents, list) or len(parents) != 1:
        raise E.bad("parentFolder is invalid")
    parent = tree.row(kc.me, parents[0], folder=True)
    if upload_mode == "put":  # one PUT of the whole file
        parts, parallel = [Part(1, length, 0)], False
    else:
        parts, parallel = _plan(body, length, rt.switches.default_part_size)
    answer: dict[str, Any] = {"containerId": rt.container_id, "parentFolder": [tree.fid(parent)]}
    existing = tree.store.child(parent.id, name)
    if mode == 4 and sha256 and existing is not None and not existing.is_folder \
            and tree.meta(existing).get(SHA256) == sha256 and not tree.meta(existing).get(PENDING):
        return {**answer, "fileId": tree.fid(existing), "fileName": existing.name, "rapidUpload": True,
                "exist": True, "uploadId": "", "multiParts": []}
    if tree.used_bytes(kc.me) + length > rt.capacity_bytes():
        raise E.KooError(E.NO_SPACE)
    known = _known_content(tree, sha256, length) if rt.switches.rapid_upload and sha256 else None
    store = tree.store
    with store.db.tx():
        final = tree.free_name(parent, name, False, 2 if mode == 2 else 3)
        upload_id = secrets.token_hex(16)
        # an unfinished task is invisible and (switch) holds no name: its row waits under a placeholder
        held = final if known is not None or rt.switches.pending_holds_name else f"{PLACEHOLDER}{upload_id}"
        row = store.create_file(parent, held, {FILE_TYPE: file_type})
        created, edited = parse_time(body.get("createdTime")), parse_time(body.get("editedTime"))
        if created or edited:
            store.conn.execute("UPDATE files SET created_at=?, updated_at=? WHERE id=?",
                               (created or row.created_at, edited or row.updated_at, row.id))
        if known is not None:
            _link_content(tree, row, known, sha256)
            store.touch(parent.id)
            return {**answer, "fileId": tree.fid(row), "fileName": final, "rapidUpload": True,
                    "exist": False, "uploadId": "", "multiParts": []}
        task = Task(upload_id, row.id, kc.me.id, length, sha256, new_blob_name(), parallel, parts,
                    edited_us=edited, name=final)
        store.upsert_metadata(row.id, {PENDING: task.upload_id})
        blob = store.blob_path(task.blob)
        blob.parent.mkdir(parents=True, exist_ok=True)
        with open(blob, "wb") as fh:
            fh.truncate(length)
        kc.uploads.tasks[task.upload_id] = task
        kc.uploads.save(task)
    return {**answer, "fileId": tree.fid(row), "fileName": final, "rapidUpload": False, "exist": False,
            "uploadId": task.upload_id, "multiParts": [_part_json(kc, task, p) for p in parts]}


def _task_of(kc: KooCtx) -> Task:
    raw = kc.body.get("fileId")
    num = kc.rt.state.codec.decode(raw, FILE) if isinstance(raw, str) else None
    task = kc.uploads.by_file(num) if num is not None else None
    if task is None or task.user_id != kc.me.id:
        raise E.KooError(E.UPLOAD_TASK_MISSING)
    return task


async def upload_urls(kc: KooCtx) -> dict[str, Any]:
    task = _task_of(kc)
    wanted = kc.body.get("multiParts")
    if not isinstance(wanted, list) or not wanted or len(wanted) > MAX_PARTS:
        raise E.bad("multiParts is invalid")
    out = []
    for item in wanted:
        number = item.get("partNumber") if isinstance(item, dict) else None
        if not isinstance(number, int) or not 1 <= number <= len(task.parts):
            raise E.bad("partNumber is invalid")
        part = task.parts[number - 1]
        if item.get("partSize", part.size) != part.size or item.get("partOffset", part.offset) != part.offset:
            raise E.bad(f"part {number}: partSize/partOffset differ from the plan made at create")
        ctx = item.get("hashCtx")
        if ctx:
            if not isinstance(ctx, str) or not HEX64.fullmatch(ctx):
                raise E.bad("hashCtx must be 64 hex characters")
            part.hash_ctx = ctx.lower()
        out.append(_part_json(kc, task, part))
    kc.uploads.save(task)
    return {"multiParts": out}


# --- PUT <uploadUrl> --------------------------------------------------------------------------
async def put_part(rt: KooRuntime, uploads: Uploads, request: Request, upload_id: str, number: str) -> Response:
    task = uploads.tasks.get(upload_id)
    part = task.parts[int(number) - 1] if task is not None and number.isdigit() \
        and 1 <= int(number) <= len(task.parts) else None
    if task is None or part is None:
        return obs_error("NoSuchUpload", "The specified upload does not exist.", 404)
    refused = rt.presigner.check(request, length=part.size)
    if refused is not None:
        return refused
    if request.headers.get("content-length") != str(part.size):
        return obs_error("SignatureDoesNotMatch", "Content-Length is signed: it must be the part size.", 403)
    path = rt.state.store.blob_path(task.blob)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        fd = await trio.to_thread.run_sync(os.open, path, os.O_WRONLY)
    except FileNotFoundError:  # completed or dropped meanwhile
        return obs_error("NoSuchUpload", "The specified upload does not exist.", 404)
    written = 0
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            digest.update(chunk)
            buffer += chunk
            if len(buffer) >= WRITE_BATCH:
                data, buffer = bytes(buffer), bytearray()
                await trio.to_thread.run_sync(os.pwrite, fd, data, part.offset + written)
                written += len(data)
        if buffer:
            await trio.to_thread.run_sync(os.pwrite, fd, bytes(buffer), part.offset + written)
            written += len(buffer)
    except ClientDisconnect:
        return Response(status_code=400)
    finally:
        os.close(fd)
    if written != part.size:
        return obs_error("IncompleteBody", "The request body is shorter than Content-Length.", 400)
    if part.number not in task.received and task.upload_id in uploads.tasks:
        task.received.append(part.number)
        uploads.save(task)
    return Response(status_code=200, headers={"ETag": f'"{digest.hexdigest()}"'})


# --- files/complete ---------------------------------------------------------------------------
async def complete(kc: KooCtx) -> dict[str, Any]:
    task = _task_of(kc)
    tree = kc.tree
    store = tree.store
    claimed = kc.body.get("sha256")
    if claimed is not None and (not isinstance(claimed, str) or not HEX64.fullmatch(claimed)):
        raise E.bad("sha256 is invalid")
    if sorted(task.received) != list(range(1, len(task.parts) + 1)):
        raise E.KooError(E.UPLOAD_FAILED, "Not every part has been uploaded.")
    path = str(store.blob_path(task.blob))
    check_ctx = task.parallel and kc.rt.switches.verify_hash_ctx
    offsets = [p.offset for p in task.parts if p.hash_ctx] if check_ctx else []
    actual, states = await trio.to_thread.run_sync(digest_with_states, path, offsets)
    wrong_ctx = [p.number for p in task.parts if p.hash_ctx and states.get(p.offset, p.hash_ctx) != p.hash_ctx]
    if task.upload_id not in kc.uploads.tasks:
        raise E.KooError(E.UPLOAD_TASK_MISSING)  # completed or dropped meanwhile
    row = store.get(task.file_row)
    if row is None:  # its folder was deleted for good meanwhile: the task went with it
        with store.db.tx():
            kc.uploads.drop(task)
        store.unlink_blobs([task.blob])
        raise E.KooError(E.UPLOAD_TASK_MISSING)
    if (task.sha256 and actual != task.sha256) or (claimed is not None and claimed.lower() != actual) \
            or wrong_ctx:
        with store.db.tx():
            kc.uploads.drop(task)
            store.delete_files([row])
        store.unlink_blobs([task.blob])
        raise E.KooError(E.INTEGRITY_FAILED, f"hashCtx of part {wrong_ctx[0]} is wrong." if wrong_ctx else None)
    if task.name and row.name != task.name and row.parent_id is not None \
            and store.child(row.parent_id, task.name) is not None:
        # the name was taken while the upload ran (autoRename 3 checks it again): the task goes
        with store.db.tx():
            kc.uploads.drop(task)
            store.delete_files([row])
        store.unlink_blobs([task.blob])
        raise E.KooError(E.DUPLICATE_NAME)
    with store.db.tx():
        kc.uploads.drop(task)
        if task.name and row.name != task.name:
            row = store.rename(row, task.name)
        entity = store.create_entity(row, task.length, task.blob, None, kc.me.id)
        store.upgrade_placeholder(row, entity, task.edited_us or now_us())
        store.remove_metadata(row.id, PENDING)
        store.upsert_metadata(row.id, {SHA256: actual})
        if row.parent_id is not None:
            store.touch(row.parent_id)
    return {"fileId": tree.fid(row)}
