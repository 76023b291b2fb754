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

import mimetypes
import os
import secrets
import time
from typing import Any
from urllib.parse import quote

import trio
from starlette.requests import Request
from starlette.responses import Response

from ..common import ids, signing
from ..common.state import Ctx
from . import errors as E
from . import views
from .navigator import DOWNLOAD, get_target
from .uris import CloudreveURI, go_path_escape

READ_SIZE = 4 << 20
CONTENT_PREFIX = "/api/v4/file/content/"
_BINARY = set(range(0x09)) | {0x0B} | set(range(0x0E, 0x1B)) | set(range(0x1C, 0x20))


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
    return {"urls": urls, "expires": None if earliest is None else views.go_time(earliest * 1_000_000)}


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
    signing.check(ctx.state.secret, request.scope["path"], values[0] if values else "")


def http_error(text: str, status: int, headers: dict[str, str]) -> Response:
    headers = dict(headers)
    headers["X-Content-Type-Options"] = "nosniff"
    return Response(text + "\n", status_code=status, headers=headers, media_type="text/plain")


def _etag_list(header: str) -> list[str] | None:
    """Entity tags of an If-Match/If-None-Match header; None if malformed early."""
    tags: list[str] = []
    rest = header
    while True:
        rest = rest.strip(" \t")
        if not rest:
            return tags
        if rest[0] == ",":
            rest = rest[1:]
            continue
        if rest[0] == "*":
            tags.append("*")
            return tags
        start = 2 if rest.startswith("W/") else 0
        if len(rest) - start < 2 or rest[start] != '"':
            return tags
        end = rest.find('"', start + 1)
        if end < 0:
            return tags
        tags.append(rest[:end + 1])
        rest = rest[end + 1:]


def _preconditions(request: Request, etag: str) -> tuple[int | None, str]:
    """checkPreconditions: (status to answer now or None, effective Range header)."""
    im = request.headers.get("if-match")
    if im:
        tags = _etag_list(im) or []
        if not any(t == "*" or (not t.startswith("W/") and t == etag) for t in tags):
            return 412, ""
    inm = request.headers.get("if-none-match")
    if inm:
        for t in _etag_list(inm) or []:
            if t == "*" or t.removeprefix("W/") == etag:
                return 304, ""
    rng = request.headers.get("range", "")
    ir = request.headers.get("if-range")
    if rng and ir:
        tags = _etag_list(ir) or []
        if not (tags and not tags[0].startswith("W/") and tags[0] == etag):
            rng = ""
    return None, rng


class RangeError(Exception):
    def __init__(self, msg: str, no_overlap: bool = False) -> None:
        super().__init__(msg)
        self.no_overlap = no_overlap


def parse_range(header: str, size: int) -> list[tuple[int, int]]:
    """Go's parseRange: list of (start, length)."""
    if not header:
        return []
    if not header.startswith("bytes="):
        raise RangeError("invalid range")
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for part in header[6:].split(","):
        part = part.strip(" \t")
        if not part:
            continue
        if "-" not in part:
            raise RangeError("invalid range")
        start_s, end_s = (p.strip(" \t") for p in part.split("-", 1))
        if start_s == "":
            if end_s == "" or end_s[0] == "-" or not end_s.isdigit():
                raise RangeError("invalid range")
            n = min(int(end_s), size)
            ranges.append((size - n, n))
            continue
        if not start_s.isdigit():
            raise RangeError("invalid range")
        start = int(start_s)
        if start >= size:
            no_overlap = True
            continue
        if end_s == "":
            ranges.append((start, size - start))
            continue
        if not end_s.isdigit() or start > int(end_s):
            raise RangeError("invalid range")
        end = min(int(end_s), size - 1)
        ranges.append((start, end - start + 1))
    if no_overlap and not ranges:
        raise RangeError("invalid range: failed to overlap", True)
    return ranges


def content_type(name: str, path: str | None) -> str:
    if name.lower().endswith(".txt"):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(name, strict=True)
    if guessed:
        return guessed
    head = b""
    if path is not None:
        with open(path, "rb") as fh:
            head = fh.read(512)
    for magic, kind in ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"GIF8", "image/gif"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip")):
        if head.startswith(magic):
            return kind
    if any(b in _BINARY for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


class BlobResponse(Response):
    """Streams byte ranges of a blob: a reader task prefetches the next piece
    (worker thread) while the current one is being sent, and a client
    disconnect cancels both.  Memory use is a few pieces, whatever the size."""

    def __init__(self, path: str, parts: list[tuple[bytes, int, int]], tail: bytes, speed: int,
                 status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.path, self.parts, self.tail, self.speed = path, parts, tail, speed

    async def _produce(self, out: trio.MemorySendChannel[bytes]) -> None:
        fd = await trio.to_thread.run_sync(os.open, self.path, os.O_RDONLY)
        try:
            async with out:
                for prefix, start, length in self.parts:
                    if prefix:
                        await out.send(prefix)
                    pos, end = start, start + length
                    while pos < end:
                        data = await trio.to_thread.run_sync(os.pread, fd, min(READ_SIZE, end - pos), pos)
                        if not data:
                            return  # the file shrank under us: the response ends short
                        pos += len(data)
                        await out.send(data)
                if self.tail:
                    await out.send(self.tail)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(os.close, fd)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        complete = False
        async with trio.open_nursery() as nursery:
            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            out, incoming = trio.open_memory_channel[bytes](1)
            nursery.start_soon(self._produce, out)
            started, sent = time.monotonic(), 0
            async with incoming:
                async for data in incoming:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    sent += len(data)
                    if self.speed > 0:  # the signed URL's speed limit, bytes/s
                        ahead = sent / self.speed - (time.monotonic() - started)
                        if ahead > 0:
                            await trio.sleep(ahead)
            complete = True
            nursery.cancel_scope.cancel()
        if complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


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
