"""The v3 dialect's key/value cache and its cookie login sessions.

Cloudreve 3 keeps short-lived state in its cache (``pkg/cache``, in memory
and written to disk on shutdown): login sessions (``cd_session_<id>``),
upload sessions (``callback_<id>``), download sessions (``download_<key>``)
and folder property summaries (``folder_props_<id>``), each with a TTL.
:class:`KV` is that cache, kept in the ``v3_kv`` table of the data dir's
SQLite file so it also survives a crash (Cloudreve would lose it on SIGKILL;
surviving is the kinder choice for tests that restart servers).

:class:`Sessions` is gin-contrib/sessions over that store
(``pkg/sessionstore``): the browser holds the cookie ``cloudreve-session``
whose value is an HMAC-signed session id (gorilla/securecookie's
``timestamp|value|mac`` layout, base64url), the session values live
server-side for 60 days (``MaxAge``), a cookie older than 30 days
(securecookie's default max age) is refused.  ``Set-Cookie`` is sent
only when a handler saves the session (login, 2FA, logout, site config).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from ..common.db import Database

COOKIE_NAME = "cloudreve-session"
SESSION_PREFIX = "cd_session_"
SESSION_MAX_AGE = 60 * 86400  # middleware.Session: MaxAge 60 days
COOKIE_CODEC_MAX_AGE = 86400 * 30  # securecookie's default: older signed values are refused

SCHEMA = ("CREATE TABLE IF NOT EXISTS v3_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
          "expires_at REAL NOT NULL)")


class KV:
    """JSON values with a TTL (seconds); expired keys read as absent and are purged lazily."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.conn
        self.conn.execute(SCHEMA)

    def get(self, key: str) -> Any | None:
        row = self.conn.execute("SELECT value, expires_at FROM v3_kv WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        if row[1] <= time.time():
            self.conn.execute("DELETE FROM v3_kv WHERE key=?", (key,))
            return None
        return json.loads(row[0])

    def set(self, key: str, value: Any, ttl: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO v3_kv(key, value, expires_at) VALUES(?,?,?)",
                          (key, json.dumps(value), time.time() + ttl))

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.conn.execute("DELETE FROM v3_kv WHERE key=?", (key,))

    def delete_prefix(self, prefix: str) -> None:
        self.conn.execute("DELETE FROM v3_kv WHERE substr(key, 1, ?)=?", (len(prefix), prefix))

    def purge(self) -> None:
        self.conn.execute("DELETE FROM v3_kv WHERE expires_at <= ?", (time.time(),))


@dataclass
class Session:
    """One request's view of its login session (``sessions.Default(c)``)."""

    id: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    #: set by save(): the Set-Cookie header value to send with the answer
    set_cookie: str | None = None

    def get(self, key: str) -> Any:
        return self.values.get(key)


class Sessions:
    def __init__(self, kv: KV, secret: bytes) -> None:
        self.kv = kv
        # a key of its own, derived from the data dir's secret (SessionSecret in conf.ini)
        self._key = hmac.new(secret, b"cloudreve-session", hashlib.sha256).digest()

    # --- the signed cookie value ------------------------------------------------
    def _mac(self, stamp: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{COOKIE_NAME}|{stamp}|{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode()

    def encode(self, sid: str) -> str:
        stamp = str(int(time.time()))
        payload = base64.urlsafe_b64encode(sid.encode()).decode()
        return base64.urlsafe_b64encode(f"{stamp}|{payload}|{self._mac(stamp, payload)}".encode()).decode()

    def decode(self, value: str) -> str | None:
        try:
            stamp, payload, mac = base64.urlsafe_b64decode(value.encode()).decode().split("|")
            if not hmac.compare_digest(mac, self._mac(stamp, payload)):
                return None
            if int(stamp) < time.time() - COOKIE_CODEC_MAX_AGE:
                return None
            return base64.urlsafe_b64decode(payload.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    # --- load / save ------------------------------------------------------------
    def load(self, cookie: str | None) -> Session:
        if not cookie:
            return Session()
        sid = self.decode(cookie)
        if sid is None:
            return Session()  # a new session (the bad cookie is replaced on the next save)
        values = self.kv.get(SESSION_PREFIX + sid)
        return Session(sid, dict(values) if isinstance(values, dict) else {})

    def save(self, session: Session) -> None:
        """``session.Save()``: store the values, (re)issue the cookie."""
        if not session.id:
            # kvStore: base32 of 32 random bytes, padding trimmed
            session.id = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.kv.set(SESSION_PREFIX + session.id, session.values, SESSION_MAX_AGE)
        expires = formatdate(time.time() + SESSION_MAX_AGE, usegmt=True)
        session.set_cookie = (f"{COOKIE_NAME}={self.encode(session.id)}; Path=/; Expires={expires}; "
                              f"Max-Age={SESSION_MAX_AGE}; HttpOnly")

    def set(self, session: Session, **values: Any) -> None:
        """``util.SetSession``."""
        session.values.update(values)
        self.save(session)

    def delete(self, session: Session, key: str) -> None:
        """``util.DeleteSession``."""
        session.values.pop(key, None)
        self.save(session)

    def expire_all(self) -> None:
        """Fault injection: every login session ends (the v3 meaning of "expire tokens")."""
        self.kv.delete_prefix(SESSION_PREFIX)
