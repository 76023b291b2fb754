"""Downloads of the v3 dialect: ``PUT /file/download/<id>`` and the signed
``GET /file/download/<key>`` (local driver ``Source``, ``DownloadService`` @3.8.3).

``PUT`` stores a snapshot of the file record under ``download_<key>`` (16
random letters/digits) for ``download_timeout`` seconds and answers the
*relative* URL ``/api/v3/file/download/<key>?sign=<b64url HMAC>:<expiry>``
(``auth.SignURI`` over the path; the query is ``url.Values`` encoded).

``GET`` checks the signature (``middleware.SignRequired``: missing expiry
403, unparsable 40071 "invalid sign", past 40005, wrong MAC 40071 — JSON
envelopes with HTTP 200), looks the key up (gone -> code 404 "Download
session not exist") and serves the snapshot's blob the way Go 1.18's
``http.ServeContent`` does: ``Last-Modified`` from the snapshot's
``updated_at``, no ETag, so ``If-Match`` fails unless ``*``, ``If-None-Match``
only matches ``*``; ``If-(Un)Modified-Since`` and date-valued ``If-Range`` at
one-second precision; single and multipart ranges; 416 with ``Content-Range:
bytes */size`` when nothing overlaps (also for an empty file).  Headers
added by Cloudreve: ``Content-Disposition: attachment; filename="<PathEscape
(name)>"`` and ``Cache-Control: public, max-age=86400``.  Only GET is routed
(HEAD is gin's 404).  A URL whose file was deleted or overwritten since
answers 50004 "Failed to read file data" (deviation for overwrites: Cloudreve
3 leaves the old blob behind and keeps serving it).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import string
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from ..common import signing
from ..common.blobs import BlobResponse, RangeError, content_type, etag_list, http_error, parse_range
from ..common.db import User
from ..common.gourl import go_path_escape
from . import errors as E

if TYPE_CHECKING:
    from .runtime import V3Runtime

PREFIX = "/api/v3/file/download/"
KEY_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase
STATIC_CACHE = "public, max-age=86400"  # middleware.StaticResourceCache (public_resource_maxage)
_GO_TIME_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S %Z", "%a %b %d %H:%M:%S %Y")


def create_url(rt: V3Runtime, user: User, fid: int) -> str:
    row = rt.tree.file_of(user.id, fid)
    if row is None:
        raise E.object_not_exist()
    key = "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    ttl = int(rt.state.config.url_ttl)
    rt.kv.set("download_" + key, {"file_id": row.id, "name": row.name, "entity": row.primary_entity,
                                  "updated_at": row.updated_at}, ttl)
    path = PREFIX + key
    sign = signing.sign(rt.state.secret, path, int(time.time()) + ttl)
    return f"{path}?sign={quote(sign, safe='')}"


def check_sign(rt: V3Runtime, request: Request) -> None:
    """``HMACAuth.Check`` of the decoded path against ``sign`` (first value)."""
    values = request.query_params.getlist("sign")
    sign = values[0] if values else ""
    last = sign.split(":")[-1]
    if last == "":
        raise E.V3Error(E.NO_PERMISSION, "expire timestamp is missing")
    try:
        digits = last[1:] if last[0] in "+-" else last
        if not digits.isascii() or not digits.isdigit():
            raise ValueError(last)
        expires = int(last)
        if not -(2 ** 63) <= expires < 2 ** 63:
            raise ValueError(last)
    except ValueError:
        raise E.V3Error(E.INVALID_SIGN, "invalid sign",
                        f'strconv.ParseInt: parsing "{last}": invalid syntax') from None
    if expires != 0 and expires < int(time.time()):
        raise E.V3Error(E.SIGN_EXPIRED, "signature expired")
    if signing.sign(rt.state.secret, request.scope["path"], expires) != sign:
        raise E.V3Error(E.INVALID_SIGN, "invalid sign")


def _parse_http_time(text: str) -> int | None:
    """``http.ParseTime``: Unix seconds, or None."""
    for fmt in _GO_TIME_FORMATS:
        try:
            parsed = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(parsed.replace(tzinfo=dt.UTC).timestamp())
    return None


def _preconditions(request: Request, modtime: int | None) -> tuple[int | None, str]:
    """``checkPreconditions`` without an ETag: (status to answer now, effective Range)."""
    im = request.headers.get("if-match", "")
    cond: bool | None = None
    if im:
        cond = "*" in (etag_list(im) or [])
    else:
        ius = request.headers.get("if-unmodified-since", "")
        when = _parse_http_time(ius) if ius and modtime is not None else None
        if when is not None and modtime is not None:
            cond = modtime <= when
    if cond is False:
        return 412, ""
    inm = request.headers.get("if-none-match", "")
    if inm:
        if "*" in (etag_list(inm) or []):
            return 304, ""
    else:
        ims = request.headers.get("if-modified-since", "")
        when = _parse_http_time(ims) if ims and modtime is not None else None
        if when is not None and modtime is not None and modtime <= when:
            return 304, ""
    rng = request.headers.get("range", "")
    ir = request.headers.get("if-range", "")
    if rng and ir:
        tags = etag_list(ir) or []
        when = None if tags else _parse_http_time(ir)
        if tags or modtime is None or when != modtime:
            rng = ""
    return None, rng


def _go_type(name: str, path: str | None) -> str:
    ctype = content_type(name, path)
    # Go's mime package adds the charset to every text/* type it reads from the tables
    if ctype.startswith("text/") and "charset" not in ctype:
        ctype += "; charset=utf-8"
    return ctype


async def serve(rt: V3Runtime, request: Request, key: str) -> Response:
    headers = {"Cache-Control": STATIC_CACHE}
    snap: Any = rt.kv.get("download_" + key)
    if not isinstance(snap, dict):
        return E.error_response(E.V3Error(E.NOT_FOUND, "Download session not exist"),
                                rt.state.config.debug, headers)
    path: str | None = None
    size = 0
    if snap["entity"]:
        entity = rt.state.store.entity(int(snap["entity"]))
        candidate = None if entity is None else str(rt.state.store.blob_path(entity.blob))
        try:
            size = os.stat(candidate).st_size if candidate else -1
        except OSError:
            size = -1
        if size < 0:
            return E.error_response(E.io_failed("open: no such file or directory"),
                                    rt.state.config.debug, headers)
        path = candidate
    name = str(snap["name"])
    headers["Content-Disposition"] = f'attachment; filename="{go_path_escape(name)}"'
    modtime = int(snap["updated_at"]) // 1_000_000 if snap["updated_at"] else None
    if modtime is not None:
        headers["Last-Modified"] = formatdate(modtime, usegmt=True)
    status, rng = _preconditions(request, modtime)
    if status is not None:
        return Response(status_code=status, headers=headers)
    ctype = _go_type(name, path)
    try:
        ranges = parse_range(rng, size)
    except RangeError as exc:
        if exc.no_overlap:
            headers["Content-Range"] = f"bytes */{size}"
        return http_error(str(exc), 416, headers)
    if sum(length for _, length in ranges) > size:
        ranges = []  # probably an attack or a dumb client: ignore the Range header
    code = 200
    parts: list[tuple[bytes, int, int]] = [(b"", 0, size)]
    tail = b""
    send_size = size
    if len(ranges) == 1:
        start, length = ranges[0]
        code = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        parts, send_size = [(b"", start, length)], length
    elif len(ranges) > 1:
        code = 206
        boundary = secrets.token_hex(30)
        parts = []
        for i, (start, length) in enumerate(ranges):
            head = (("\r\n" if i else "") + f"--{boundary}\r\nContent-Range: bytes {start}-"
                    f"{start + length - 1}/{size}\r\nContent-Type: {ctype}\r\n\r\n")
            parts.append((head.encode(), start, length))
        tail = f"\r\n--{boundary}--\r\n".encode()
        send_size = sum(len(p) + n for p, _, n in parts) + len(tail)
        ctype = f"multipart/byteranges; boundary={boundary}"
    headers.update({"Content-Type": ctype, "Accept-Ranges": "bytes", "Content-Length": str(send_size)})
    if path is None or send_size == 0:
        return Response(status_code=code, headers=headers)
    return BlobResponse(path, parts, tail, 0, code, headers)
