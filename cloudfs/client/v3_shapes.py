"""Cloudreve 3 (3.8.3) data shapes: listing objects -> :class:`Entry`,
``Set-Cookie`` -> :class:`SessionCookie`, upload session answers ->
:class:`UploadSession`, signed URL expiry, the temporary names of replacing
uploads.  Pure functions, no I/O.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from cloudfs.client.auth import SessionCookie
from cloudfs.client.dialect import UploadSession
from cloudfs.client.models import Entry
from cloudfs.client.paths import join
from cloudfs.client.times import parse_time_ns
from cloudfs.errors import ProtocolError

COOKIE_NAME = "cloudreve-session"
#: Cloudreve 3 keeps a session 60 days, but gorilla/securecookie refuses a
#: cookie value signed more than 30 days ago: the cookie's real lifetime
COOKIE_MAX_AGE_S = 30 * 86400.0
#: a signed URL whose expiry cannot be read is trusted this long
#: (``download_timeout`` defaults to 600 s)
DEFAULT_URL_TTL_S = 300.0

#: The name a replacing upload goes to before it is swapped into place
#: (v3 has no versions: see :mod:`v3`).  Fixed length whatever the target's
#: name (which may already be 255 bytes).  Listings hide these names.
_TEMP = re.compile(r"^\.cloudfs-[0-9a-f]{16}\.part$")


def temp_name() -> str:
    return f".cloudfs-{secrets.token_hex(8)}.part"


def is_temp_name(name: str) -> bool:
    return bool(_TEMP.match(name))


def path_suffix(path: str) -> str:
    """``/a b/c`` -> ``/a%20b/c``, each segment percent-encoded (the path
    is appended to a route, e.g. ``/directory``; gin decodes it)."""
    return "/" + "/".join(quote(p, safe="") for p in path.split("/") if p)


def version_of(file_id: str, size: int, date_ns: int) -> str:
    """v3 has no content versions: the object id, size and update time stand
    in (any content change through Cloudreve changes the time or the id)."""
    return f"{file_id}:{size}:{date_ns}"


def entry_from(obj: object, parent: str) -> Entry:
    """An :class:`Entry` from one ``objects`` item of ``GET /directory``."""
    if not isinstance(obj, dict):
        raise ProtocolError("listing object expected")
    name, file_id, kind = obj.get("name"), obj.get("id"), obj.get("type")
    if not isinstance(name, str) or not name or not isinstance(file_id, str) or kind not in ("dir", "file"):
        raise ProtocolError("listing object: id, name or type missing or malformed")
    size = obj.get("size") or 0
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError("listing object: bad size")
    is_dir = kind == "dir"
    mtime = parse_time_ns(obj.get("date"))
    ctime = parse_time_ns(obj["create_date"]) if obj.get("create_date") else mtime
    return Entry(
        file_id=file_id,
        path=join(parent, name),
        is_dir=is_dir,
        size=0 if is_dir else size,
        mtime_ns=mtime,
        ctime_ns=ctime,
        version="" if is_dir else version_of(file_id, size, mtime),
    )


def root_entry(folder_id: str, children: Iterable[Entry]) -> Entry:
    """The root folder: a listing gives only its id, and v3 has no cheap way
    to ask more (``/object/property`` sums the whole drive), so its times are
    those of its newest child."""
    newest = max((c.mtime_ns for c in children), default=0)
    return Entry(file_id=folder_id, path="/", is_dir=True, size=0, mtime_ns=newest, ctime_ns=newest)


def listing_of(data: object, what: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(folder id, objects, storage policy summary) of a ``GET /directory`` answer."""
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list | None):
        raise ProtocolError(f"{what}: malformed listing")
    parent = data.get("parent")
    if not isinstance(parent, str):
        raise ProtocolError(f"{what}: listing without the folder's id")
    policy = data.get("policy")
    return parent, list(data.get("objects") or []), policy if isinstance(policy, dict) else {}


def listing_order(obj: object) -> tuple[bool, str]:
    """Where a ``GET /directory`` item goes in a listing: folders, then files,
    by name (a malformed item anywhere: its ``entry_from`` says so)."""
    if not isinstance(obj, dict):
        return True, ""
    name = obj.get("name")
    return obj.get("type") != "dir", name if isinstance(name, str) else ""


def cookie_from(set_cookies: Iterable[str], now: float | None = None) -> SessionCookie | None:
    """The ``cloudreve-session`` cookie of a response's ``Set-Cookie`` headers
    (the last one wins), with its expiry on our clock; None if absent or
    being deleted."""
    now = time.time() if now is None else now
    found: SessionCookie | None = None
    for header in set_cookies:
        first, _, rest = header.partition(";")
        name, eq, value = first.strip().partition("=")
        if not eq or name != COOKIE_NAME:
            continue
        value = value.strip().strip('"')
        max_age = _max_age(rest)
        if not value or (max_age is not None and max_age <= 0):
            found = None
            continue
        life = COOKIE_MAX_AGE_S if max_age is None else min(float(max_age), COOKIE_MAX_AGE_S)
        found = SessionCookie(COOKIE_NAME, value, issued_at=now, expires_at=now + life)
    return found


def _max_age(attributes: str) -> int | None:
    for part in attributes.split(";"):
        key, _, val = part.strip().partition("=")
        if key.lower() == "max-age":
            try:
                return int(val)
            except ValueError:
                return None
    return None


def url_expiry(url: str, now: float | None = None) -> float:
    """A signed URL's expiry: ``sign=<mac>:<unix expiry>`` (``auth.SignURI``),
    moved onto our clock is impossible (no server time), so it is trusted
    as is but never beyond a default lifetime from now."""
    now = time.time() if now is None else now
    sign = parse_qs(urlsplit(url).query).get("sign", [""])[0]
    _, _, stamp = sign.rpartition(":")
    try:
        expires = float(stamp)
    except ValueError:
        return now + DEFAULT_URL_TTL_S
    if expires <= 0:  # 0: never expires
        return now + DEFAULT_URL_TTL_S
    return min(expires, now + 3600.0)


def session_from(obj: object, path: str, size: int, policy: Mapping[str, Any],
                 extra: dict[str, object]) -> UploadSession:
    """``PUT /file/upload``'s answer (camelCase ``serializer.UploadCredential``)."""
    if not isinstance(obj, dict):
        raise ProtocolError("upload session object expected")
    sid = obj.get("sessionID")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("upload session: no sessionID")
    chunk_size = obj.get("chunkSize") or 0
    if not isinstance(chunk_size, int) or chunk_size < 0:
        raise ProtocolError("upload session: bad chunk size")
    expires = obj.get("expires")
    expires_at = float(expires) if isinstance(expires, int | float) and expires > 0 else time.time() + 3600
    return UploadSession(
        session_id=sid,
        path=path,
        size=size,
        chunk_size=chunk_size,
        concurrency=1,  # 3.8 takes chunks strictly in order, one at a time
        expires_at=expires_at,
        policy_type=str(policy.get("type") or "local"),
        relay=False,
        extra=extra,
    )
