"""Cloudreve v4 data shapes: ``cloudreve://my/...`` URIs, FileResponse ->
:class:`Entry`, Token -> :class:`Tokens`, upload session -> UploadSession,
times (:mod:`times`).  Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from cloudfs.client.auth import Tokens
from cloudfs.client.dialect import UploadSession
from cloudfs.client.models import Entry
from cloudfs.client.paths import join
from cloudfs.client.times import parse_time_ns, parse_time_s
from cloudfs.errors import ProtocolError

ROOT_URI = "cloudreve://my/"
#: what JS encodeURIComponent leaves alone besides [A-Za-z0-9_.~-]
_URI_SAFE = "!*'()"
#: metadata key present while an upload session is open on the object
UPLOAD_SESSION_KEY = "sys:upload_session_id"
FILE, FOLDER = 0, 1


def to_uri(path: str) -> str:
    """``/docs/a b.txt`` -> ``cloudreve://my/docs/a%20b.txt`` (each segment
    percent-encoded like encodeURIComponent: ``%``, ``#``, ``?``, spaces and
    non-ASCII must not reach Go's URL parser raw)."""
    segments = [quote(p, safe=_URI_SAFE) for p in path.split("/") if p]
    return ROOT_URI + "/".join(segments)


def from_uri(uri: str) -> str:
    """The decoded absolute path of a ``cloudreve://[user@]my/...`` URI."""
    match = re.match(r"^cloudreve://(?:[^@/]*@)?[^/?#]*(/[^?#]*)?", uri)
    if not match:
        raise ProtocolError(f"not a Cloudreve URI: {uri[:80]!r}")
    raw = match.group(1) or "/"
    parts = [unquote(p) for p in raw.split("/") if p]
    return "/" + "/".join(parts)


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError(f"{what}: field {key!r} missing or malformed")
    return value


def entry_from(obj: object, path: str | None = None, *, parent: str | None = None) -> Entry:
    """An :class:`Entry` from a FileResponse.  The path comes from the caller
    when it knows it (the request's path, or ``parent`` + name for listing
    items), else from the response's ``path`` URI."""
    if not isinstance(obj, dict):
        raise ProtocolError("file object expected")
    what = "file object"
    kind = _require(obj, "type", int, what)
    name = _require(obj, "name", str, what)
    if path is None:
        if parent is not None:
            path = join(parent, name)
        elif isinstance(obj.get("path"), str):
            path = from_uri(obj["path"])
        else:
            raise ProtocolError(f"{what}: no path")
    metadata_raw = obj.get("metadata") or {}
    if not isinstance(metadata_raw, dict):
        raise ProtocolError(f"{what}: metadata is not an object")
    metadata = {str(k): "" if v is None else str(v) for k, v in metadata_raw.items()}
    size = obj.get("size") or 0
    if not isinstance(size, int) or size < 0:
        raise ProtocolError(f"{what}: bad size")
    return Entry(
        file_id=str(_require(obj, "id", str, what)),
        path=path,
        is_dir=kind == FOLDER,
        size=0 if kind == FOLDER else size,
        mtime_ns=parse_time_ns(obj.get("updated_at")),
        ctime_ns=parse_time_ns(obj.get("created_at")),
        version="" if kind == FOLDER else str(obj.get("primary_entity") or ""),
        metadata=metadata,
        uploading=UPLOAD_SESSION_KEY in metadata,
    )


def _jwt_lifetime(token: str) -> float | None:
    """exp - nbf/iat of a JWT, both on the server's clock: the token's
    lifetime without trusting that our clock agrees with the server's."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        start = claims.get("nbf", claims.get("iat"))
        return float(claims["exp"]) - float(start) if start is not None else None
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def tokens_from(obj: object, received_at: float | None = None) -> Tokens:
    """A v4 ``Token`` object -> :class:`Tokens` with local-clock expiries."""
    if not isinstance(obj, dict):
        raise ProtocolError("token object expected")
    now = time.time() if received_at is None else received_at
    access = _require(obj, "access_token", str, "token")
    refresh = _require(obj, "refresh_token", str, "token")
    access_expires = parse_time_s(obj.get("access_expires"))
    refresh_expires = parse_time_s(obj.get("refresh_expires"))
    lifetime = _jwt_lifetime(access)
    if lifetime is not None and lifetime > 0:
        # move both expiries onto our clock
        skew = now + lifetime - access_expires
        access_expires += skew
        refresh_expires += skew
    return Tokens(access, refresh, access_expires, refresh_expires, issued_at=now)


def session_from(obj: object, path: str, size: int) -> UploadSession:
    if not isinstance(obj, dict):
        raise ProtocolError("upload session object expected")
    what = "upload session"
    policy = obj.get("storage_policy") or {}
    if not isinstance(policy, dict):
        raise ProtocolError(f"{what}: bad storage policy")
    chunk_size = obj.get("chunk_size") or 0
    if not isinstance(chunk_size, int) or chunk_size < 0:
        raise ProtocolError(f"{what}: bad chunk size")
    expires = obj.get("expires")
    expires_at = float(expires) if isinstance(expires, int | float) and expires > 0 else time.time() + 3600
    concurrency = policy.get("chunk_concurrency") or 0
    return UploadSession(
        session_id=str(_require(obj, "session_id", str, what)),
        path=path,
        size=size,
        chunk_size=chunk_size,
        concurrency=concurrency if isinstance(concurrency, int) else 0,
        expires_at=expires_at,
        policy_type=str(policy.get("type") or "local"),
        relay=bool(policy.get("relay")),
        extra={"uri": obj.get("uri") or to_uri(path), "upload_urls": obj.get("upload_urls") or []},
    )
