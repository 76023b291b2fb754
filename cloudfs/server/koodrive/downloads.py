"""``POST /files/download`` and the pre-signed GET URLs it hands out.

Up to 100 ``fileIds`` a call; each gets ``{fileId, fileName, url, code, msg}``
and the batch a ``batchCode`` (1 all ok, 0 partial, 2 all failed).  A folder
is 13000406, a missing or recycled file 13000309.  The ``download_partial``
switch fails every second file with 13000407 (a partial batch).

The URL serves the file's content as it was when signed (the object, not the
name: a later upload under the same name is a new object).  ``Range`` gets a
206 with ``Content-Range`` (one range; several ranges get the whole object,
as S3 does), 416 ``InvalidRange`` when nothing overlaps; with the ``range``
switch off the header is ignored (200, whole object, no Accept-Ranges).
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from ..downloads import BlobResponse, RangeError, parse_range
from ..ids import ENTITY
from . import errors as E
from .context import KooCtx
from .presign import BUCKET, obs_error
from .runtime import KooRuntime

DOWNLOAD_PREFIX = f"/obs/{BUCKET}/"
MAX_IDS = 100


async def download_urls(kc: KooCtx) -> dict[str, Any]:
    body, tree, rt = kc.body, kc.tree, kc.rt
    tree.check_container(body)
    ids = body.get("fileIds")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
        raise E.bad("fileIds must hold 1 to 100 ids")
    downloads = []
    for i, raw in enumerate(ids):
        entry: dict[str, Any] = {"fileId": raw, "fileName": "", "url": "", "code": 0, "msg": "success"}
        try:
            row = tree.row(kc.me, raw, folder=False)
            entry["fileName"] = row.name
            if rt.switches.download_partial and i % 2 == 1:
                raise E.KooError(E.DOWNLOAD_FAILED)
            key = rt.state.codec.encode(row.primary_entity, ENTITY)
            path = f"{DOWNLOAD_PREFIX}{key}"
            disposition = f"attachment;filename*=UTF-8''{quote(row.name, safe='')}"
            query = rt.presigner.sign("GET", path, rt.switches.url_ttl,
                                      {"response-content-disposition": disposition})
            entry["url"] = f"{kc.base_url}{path}?{query}"
        except E.KooError as exc:
            entry.update(code=exc.code, msg=exc.msg)
        downloads.append(entry)
    ok = sum(1 for d in downloads if d["code"] == 0)
    batch = 1 if ok == len(downloads) else (2 if ok == 0 else 0)
    return {"batchCode": batch, "downloads": downloads}


async def serve_object(rt: KooRuntime, request: Request, key: str) -> Response:
    refused = rt.presigner.check(request)
    if refused is not None:
        return refused
    entity_id = rt.state.codec.decode(key, ENTITY)
    entity = rt.state.store.entity(entity_id) if entity_id is not None else None
    headers = {"Content-Type": "binary/octet-stream", "ETag": f'"{key}"'}
    disposition = request.query_params.get("response-content-disposition")
    if disposition:
        headers["Content-Disposition"] = disposition
    if entity_id == 0:  # an empty file that never had content
        headers.update({"Content-Length": "0", "Last-Modified": formatdate(time.time(), usegmt=True)})
        return Response(b"", status_code=200, headers=headers)
    if entity is None:
        return obs_error("NoSuchKey", "The specified key does not exist.", 404)
    size = entity.size
    headers["Last-Modified"] = formatdate(entity.updated_at / 1_000_000, usegmt=True)
    start, length, status = 0, size, 200
    if rt.switches.range:
        headers["Accept-Ranges"] = "bytes"
        try:
            ranges = parse_range(request.headers.get("range", ""), size)
        except RangeError as exc:
            if exc.no_overlap:
                return obs_error("InvalidRange", "The requested range is not satisfiable", 416)
            ranges = []  # a malformed Range is ignored, as S3 does
        if len(ranges) == 1:
            start, length = ranges[0]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers)
    path = str(rt.state.store.blob_path(entity.blob))
    return BlobResponse(path, [(b"", start, length)], b"", 0, status, headers)
