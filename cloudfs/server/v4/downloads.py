"""Download URLs and the signed content endpoint (``service/explorer/file.go``,
``pkg/filemanager/manager/entitysource``).

``POST /file/url`` signs ``/api/v4/file/content/<entity>/<speed>/<name>``
(``sign=<b64url HMAC>:<unix expiry>``) and answers
``{"urls": [{"url"}], "expires"}``; like Cloudreve it caches a URL for
``ttl - 600 s`` (so two calls may return the same URL), unless ``no_cache``.

The content endpoint behaves like Go's ``http.ServeContent`` as patched by
Cloudreve: strong ``ETag: "<entity id>"``, no ``Last-Modified``, single and
multi-range requests (206, ``multipart/byteranges``), 416 with
``Content-Range: bytes */size`` when nothing overlaps, ``If-Match`` (412),
``If-None-Match`` (304) and ``If-Range``.  Signature failures are JSON
envelopes with HTTP 200 (40005 expired, 40071 bad, 403 missing).

Version pruning (our choice, matching Cloudreve's reference counting): an
upload completion unlinks the previous entity; when no other file shares it
(copies share entities) its row and blob are deleted at once, so its old URL
answers 40077 "Entity not exist"; while a copy still references it, the old
URL keeps serving it.  A download already streaming keeps its open file
descriptor and finishes with the old bytes.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from ..common import ids, signing
from ..common.blobs import BlobResponse, RangeError, content_type, etag_list, http_error, parse_range
from ..common.goformat import go_time
from ..common.gourl import go_path_escape
from . import errors as E
from .navigator import DOWNLOAD, get_target
from .state import Ctx
from .uris import CloudreveURI

CONTENT_PREFIX = "/api/v4/file/content/"


# --- POST /file/url ---------------------------------------------------------------
def entity_urls(ctx: Ctx, uris: list[CloudreveURI], args: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    if args["archive"]:
        raise E.AppError(E.GROUP_NOT_ALLOWED, "")
    now = time.time()
    expire = int(now + state.config.url_ttl)
    urls: list[dict[str, str]] = []
    earliest: float | None = None
    ae = E.AggregateError()
    for uri in uris:
        try:
            node = get_target(ctx, uri, DOWNLOAD)
            if node is None or node.row.is_folder:
                raise E.entity_not_exist()
            entity_id = node.row.primary_entity
            if args["entity"]:
                # fs.FindDesiredEntity: any linked entity; "entity 0" of a file without versions
                wanted = state.codec.decode(args["entity"], ids.ENTITY)
                entities = state.store.entities_of(node.row.id)
                if wanted is None or (all(e.id != wanted for e in entities)
                                      and not (wanted == 0 and not entities)):
                    raise E.entity_not_exist()
                entity_id = wanted
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            ae.add(uri.string(), exc)
            urls.append({"url": ""})
            continue
        url, expires = _signed_url(ctx, entity_id, node.row.name, args["download"], expire, args["no_cache"])
        urls.append({"url": url})
        earliest = expires if earliest is None else min(earliest, expires)
    err = ae.aggregate()
    if err is not None and not args["skip_error"]:
        raise E.wrap("failed to get entity url", err)
    return {"urls": urls, "expires": None if earliest is None else go_time(earliest * 1_000_000)}


def _signed_url(ctx: Ctx, entity_id: int, name: str, download: bool, expire: int,
                no_cache: bool) -> tuple[str, float]:
    state = ctx.state
    key = (entity_id, 0, name, download, ctx.base_url)
    cached = state.url_cache.get(key)
    now = time.time()
    if cached is not None and not no_cache and now < cached[2]:
        return cached[0], cached[1]
    eid = state.codec.entity(entity_id)
    path = f"{CONTENT_PREFIX}{eid}/0/{name}"
    query = ("download=true&" if download else "") + "sign=" + quote(
        signing.sign(state.secret, path, expire), safe="")
    url = f"{ctx.base_url}{CONTENT_PREFIX}{eid}/0/{go_path_escape(name)}?{query}"
    valid_for = (expire - now) - state.config.url_cache_margin
    if valid_for > 0:
        if len(state.url_cache) > 10_000:  # keep the cache bounded: drop stale entries
            for stale in [k for k, v in state.url_cache.items() if v[2] <= now]:
                del state.url_cache[stale]
        state.url_cache[key] = (url, float(expire), now + valid_for)
    return url, float(expire)


# --- GET/HEAD /file/content/{id}/{speed}/{name} ---------------------------------------
def cors_headers(request: Request) -> dict[str, str]:
    if not request.headers.get("origin"):
        return {}
    return {"Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": "Content-Range,Accept-Ranges,Content-Length,"
                                             "Content-Disposition,ETag"}


def preflight(request: Request) -> Response:
    headers = cors_headers(request)
    if headers:
        headers.update({"Access-Control-Allow-Methods": "GET,HEAD,OPTIONS",
                        "Access-Control-Allow-Headers": "Range,If-Range,Authorization,Content-Type",
                        "Access-Control-Max-Age": "43200"})
        return Response(status_code=204, headers=headers)
    return Response(status_code=200)


def check_signature(ctx: Ctx, request: Request) -> None:
    values = request.query_params.getlist("sign")
    # url.Values.Get takes the first value; the signed body is the decoded path
    _check_sign(ctx.state.secret, request.scope["path"], values[0] if values else "")


def _check_sign(secret: bytes, body: str, signature: str, now: float | None = None) -> None:
    """``auth.CheckURI``: raise the AppError Cloudreve would answer with; return when valid.

    Missing expiry -> 403 "expire timestamp is missing", unparsable expiry ->
    40071 "sign expired", past expiry -> 40005 "signature expired", bad MAC ->
    40071 "invalid sign"."""
    parts = signature.split(":")
    if parts[-1] == "":
        raise E.AppError(E.NO_PERMISSION, "expire timestamp is missing")
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", parts[-1]):
        raise E.AppError(E.INVALID_SIGN, "sign expired")
    expires = int(parts[-1], 10)
    now = time.time() if now is None else now
    if expires != 0 and expires < int(now):
        raise E.AppError(E.SIGN_EXPIRED, "signature expired")
    if not hmac.compare_digest(signing.sign(secret, body, expires).encode(),
                               signature.encode("utf-8", "replace")):
        raise E.AppError(E.INVALID_SIGN, "invalid sign")


def _preconditions(request: Request, etag: str) -> tuple[int | None, str]:
    """checkPreconditions: (status to answer now or None, effective Range header)."""
    im = request.headers.get("if-match")
    if im:
        tags = etag_list(im) or []
        if not any(t == "*" or (not t.startswith("W/") and t == etag) for t in tags):
            return 412, ""
    inm = request.headers.get("if-none-match")
    if inm:
        for t in etag_list(inm) or []:
            if t == "*" or t.removeprefix("W/") == etag:
                return 304, ""
    rng = request.headers.get("range", "")
    ir = request.headers.get("if-range")
    if rng and ir:
        tags = etag_list(ir) or []
        if not (tags and not tags[0].startswith("W/") and tags[0] == etag):
            rng = ""
    return None, rng


async def serve_content(ctx: Ctx, request: Request, entity_hash: str, speed: int, name: str) -> Response:
    state = ctx.state
    base_headers = cors_headers(request)
    eid = state.codec.decode(entity_hash, ids.ENTITY)
    if eid is None:
        raise E.AppError(E.PARAM_ERR, "Failed to parse object ID")
    path: str | None = None
    size = 0
    if eid != 0:
        entity = state.store.entity(eid)
        if entity is None or entity.ref_count <= 0:
            raise E.wrap("failed to get entity source", E.entity_not_exist())
        size = entity.size
        path = str(state.store.blob_path(entity.blob))
        if not os.path.exists(path):
            gone = dict(base_headers, **{"Cache-Control": "public, max-age=86400"})
            if request.method == "GET":
                gone["Content-Security-Policy"] = "sandbox"
            return http_error("Entity data does not exist.", 404, gone)
    etag = f'"{entity_hash}"'
    headers = dict(base_headers)
    headers["Cache-Control"] = "public, max-age=86400"
    if request.method == "GET":
        headers["Content-Security-Policy"] = "sandbox"
    headers["Etag"] = etag
    if request.query_params.get("download"):
        headers["Content-Disposition"] = _disposition(name)
    status, rng = _preconditions(request, etag)
    if status is not None:
        return Response(status_code=status, headers=headers)
    ctype = content_type(name, path) if path else "text/plain; charset=utf-8"
    try:
        ranges = parse_range(rng, size)
    except RangeError as exc:
        if exc.no_overlap and size == 0:
            ranges = []
        else:
            if exc.no_overlap:
                headers["Content-Range"] = f"bytes */{size}"
            return http_error(str(exc), 416, headers)
    if sum(length for _, length in ranges) > size:
        ranges = []
    code = 200
    parts: list[tuple[bytes, int, int]] = [(b"", 0, size)]
    tail = b""
    if len(ranges) == 1:
        start, length = ranges[0]
        code = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        parts = [(b"", start, length)]
        send_size = length
    elif len(ranges) > 1:
        code = 206
        boundary = secrets.token_hex(30)
        parts = []
        for i, (start, length) in enumerate(ranges):
            head = ("\r\n" if i else "") + f"--{boundary}\r\nContent-Range: bytes {start}-{start + length - 1}/{size}" \
                f"\r\nContent-Type: {ctype}\r\n\r\n"
            parts.append((head.encode(), start, length))
        tail = f"\r\n--{boundary}--\r\n".encode()
        send_size = sum(len(p) + n for p, _, n in parts) + len(tail)
        ctype = f"multipart/byteranges; boundary={boundary}"
    else:
        send_size = size
    headers["Content-Type"] = ctype
    headers["Accept-Ranges"] = "bytes"
    headers["Content-Length"] = str(send_size)
    if request.method == "HEAD" or path is None or send_size == 0:
        return Response(status_code=code, headers=headers)
    return BlobResponse(path, parts, tail, speed, code, headers)


def _disposition(name: str) -> str:
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F else "_" for c in name)
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
