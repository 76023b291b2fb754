"""KooDrive authentication: headers, Bearer tokens, the carrier login and the
enterprise HMAC-SHA256 app signature.

Every file/space API needs ``X-User-Id`` and ``X-Date`` (``yyyyMMdd'T'HHmmss'Z'``
UTC, at most 15 minutes old and never in the future) plus ``Authorization``:

* ``Bearer <accessToken>`` (``Bearer+<token>`` accepted too: the reference
  writes the format as ``Bearer+{access_token}``).  Tokens come from
  ``POST /auth/login`` (CAR) and ``POST /auth/refreshToken``; they live
  ``token_ttl`` seconds, sliding on use when ``token_sliding`` is on.
* ``HMAC-SHA256 AppId=<id>,SignedHeaders=host;x-date;x-user-id,Signature=<hex>``
  (ENT): the canonical request of the reference's appendix, signed with the
  AppSecret.  :func:`signature` computes it (tests use it to sign).

``X-Traceid`` is optional but, when present, exactly 58 characters of
``[A-Za-z0-9_]``.  Tokens are kept in the data directory (table
``kd_tokens``) so a restarted emulator keeps its sessions, as a real service would.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from . import errors as E

X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
X_DATE_WINDOW = 15 * 60
TRACE_ID = re.compile(r"[A-Za-z0-9_]{58}")
_HMAC_FIELDS = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,]*)")

SCHEMA = """
CREATE TABLE IF NOT EXISTS kd_tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    issued REAL NOT NULL,
    expires REAL NOT NULL
)"""


def format_x_date(when: float) -> str:
    return time.strftime(X_DATE_FORMAT, time.gmtime(when))


def parse_x_date(text: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, X_DATE_FORMAT)))
    except (ValueError, OverflowError):
        raise E.auth_failed("X-Date must be yyyyMMdd'T'HHmmss'Z'") from None


def check_x_date(text: str | None, now: float | None = None) -> None:
    if not text:
        raise E.auth_failed("X-Date is missing")
    when = parse_x_date(text)
    now = time.time() if now is None else now
    if when > now:
        raise E.auth_failed("X-Date is in the future")
    if now - when > X_DATE_WINDOW:
        raise E.auth_failed("X-Date is more than 15 minutes old")


def check_trace_id(value: str | None) -> None:
    if value is not None and not TRACE_ID.fullmatch(value):
        raise E.bad("X-Traceid must be 58 characters of [A-Za-z0-9_]")


# --- HMAC-SHA256 app signature --------------------------------------------------------
def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_request(method: str, path: str, query: str, headers: dict[str, str],
                      signed: list[str], payload_hash: str) -> str:
    """The appendix's CanonicalRequest.  ``path`` is the decoded path, ``query`` the
    raw query string, ``headers`` lower-case names."""
    uri = "/".join(_enc(seg) for seg in path.split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted((_enc(k), _enc(v)) for k, v in parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return "\n".join([method.upper(), uri, canonical_query, canonical_headers, ";".join(signed), payload_hash])


def payload_digest(body: bytes, mode: str) -> str:
    return hashlib.sha256(body).hexdigest() if mode == "sha256" else "UNSIGNED-PAYLOAD"


def signature(secret: str, method: str, path: str, query: str, headers: dict[str, str],
              signed: list[str], body: bytes, mode: str = "sha256") -> str:
    request = canonical_request(method, path, query, headers, signed, payload_digest(body, mode))
    to_sign = "HMAC-SHA256\n" + hashlib.sha256(request.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def authorization_header(app_id: str, secret: str, method: str, path: str, query: str,
                         headers: dict[str, str], body: bytes = b"", mode: str = "sha256") -> str:
    """``Authorization`` for an app-signed request (``headers``: host, x-date, x-user-id)."""
    signed = sorted(headers)
    sig = signature(secret, method, path, query, headers, signed, body, mode)
    return f"HMAC-SHA256 AppId={app_id},SignedHeaders={';'.join(signed)},Signature={sig}"


@dataclass
class HmacCredential:
    app_id: str
    signed_headers: list[str]
    signature: str


def parse_hmac(value: str) -> HmacCredential:
    fields = {k.lower(): v.strip() for k, v in _HMAC_FIELDS.findall(value[len("HMAC-SHA256"):])}
    if not fields.get("appid") or not fields.get("signedheaders") or not fields.get("signature"):
        raise E.auth_failed("malformed HMAC-SHA256 authorization")
    signed = [h.strip().lower() for h in fields["signedheaders"].split(";") if h.strip()]
    for needed in ("host", "x-date", "x-user-id"):
        if needed not in signed:
            raise E.auth_failed(f"SignedHeaders must include {needed}")
    return HmacCredential(fields["appid"], signed, fields["signature"].lower())


def bearer_token(header: str) -> str | None:
    for scheme in ("Bearer ", "Bearer+"):
        if header.startswith(scheme):
            return header[len(scheme):].strip() or None
    return None


# --- tokens ------------------------------------------------------------------------------
@dataclass
class Session:
    access_token: str
    refresh_token: str
    expires_in: int
    issued_at_ms: int


class Tokens:
    """Access and refresh tokens in SQLite (random strings, "AT"/"RT" prefixed)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute(SCHEMA)

    def issue(self, uid: int, ttl: float, refresh_ttl: float, refresh: str | None = None) -> Session:
        now = time.time()
        access = "AT" + secrets.token_hex(32)
        self.conn.execute("INSERT INTO kd_tokens VALUES(?,?,?,?,?)", (access, "access", uid, now, now + ttl))
        if refresh is None:
            refresh = "RT" + secrets.token_hex(32)
            self.conn.execute("INSERT INTO kd_tokens VALUES(?,?,?,?,?)",
                              (refresh, "refresh", uid, now, now + refresh_ttl))
        self.conn.execute("DELETE FROM kd_tokens WHERE expires < ?", (now - 86400,))
        return Session(access, refresh, int(ttl), int(now * 1000))

    def user_of(self, token: str, kind: str, slide: float | None = None) -> int | None:
        """The user of a live token (pushing its expiry to now + ``slide``), else None."""
        row = self.conn.execute("SELECT user_id, expires FROM kd_tokens WHERE token=? AND kind=?",
                                (token, kind)).fetchone()
        now = time.time()
        if row is None or row[1] <= now:
            return None
        if slide is not None and now + slide > row[1] + 0.25:  # not a write for every call
            self.conn.execute("UPDATE kd_tokens SET expires=? WHERE token=?", (now + slide, token))
        return int(row[0])

    def revoke(self, token: str) -> None:
        self.conn.execute("DELETE FROM kd_tokens WHERE token=?", (token,))

    def expire_all(self) -> None:
        """Fault injection: every access token issued so far is expired."""
        self.conn.execute("UPDATE kd_tokens SET expires=0 WHERE kind='access'")
