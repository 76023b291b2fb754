"""SQLite database of the server: schema, transactions, settings, accounts.

One connection, used from the event-loop thread only; every multi-statement
change runs inside :meth:`Database.tx` (``BEGIN IMMEDIATE``), so a request
either applies completely or not at all.  WAL mode lets test helpers open
the same file from another process (bulk seeding) while the server runs.

The file tree tables (``files``, ``entities``, ``file_entities``,
``metadata``) mirror Cloudreve's ent schema closely enough that the same
rules apply: unique ``(parent_id, name)``, soft-deleted items have no parent,
a user's root is the parentless folder named ``""``.  Times are integer
microseconds since the epoch (UTC).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "cloudfs-server.db"
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    nickname TEXT NOT NULL,
    password TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    storage INTEGER NOT NULL DEFAULT 0,
    otp_secret TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id INTEGER NOT NULL,
    parent_id INTEGER,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    primary_entity INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS files_parent_name ON files(parent_id, name);
CREATE INDEX IF NOT EXISTS files_by_id ON files(parent_id, type, id);
CREATE INDEX IF NOT EXISTS files_by_name ON files(parent_id, type, name, id);
CREATE INDEX IF NOT EXISTS files_by_size ON files(parent_id, type, size, id);
CREATE INDEX IF NOT EXISTS files_by_updated ON files(parent_id, type, updated_at, id);
CREATE INDEX IF NOT EXISTS files_by_created ON files(parent_id, type, created_at, id);
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    blob TEXT NOT NULL,
    ref_count INTEGER NOT NULL DEFAULT 1,
    upload_session_id TEXT,
    created_by INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS file_entities (
    file_id INTEGER NOT NULL,
    entity_id INTEGER NOT NULL,
    PRIMARY KEY (file_id, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS file_entities_entity ON file_entities(entity_id);
CREATE TABLE IF NOT EXISTS metadata (
    file_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (file_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upload_sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (root_id TEXT PRIMARY KEY, until REAL NOT NULL);
"""


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class User:
    id: int
    email: str
    nickname: str
    password: str
    status: str
    created_at: int
    storage: int
    otp_secret: str


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Database:
    """Connection owner; settings in ``meta``; accounts; persisted side tables."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.conn = connect(data_dir / DB_NAME)
        self._depth = 0
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)
        with self.tx():
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
                self.set_meta("hashid_salt", secrets.token_urlsafe(24))
                self.set_meta("secret", secrets.token_hex(64))
                self.set_meta("site_id", str(uuid.uuid4()))

    # --- transactions -------------------------------------------------------
    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Nested-safe transaction: only the outermost level commits."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        else:
            self._depth = 0
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # --- settings -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    # --- accounts -----------------------------------------------------------
    def user_by_id(self, uid: int) -> User | None:
        row = self.conn.execute("SELECT * FROM users WHERE id=?", (uid,)).fetchone()
        return None if row is None else User(**dict(row))

    def user_by_email(self, email: str) -> User | None:
        row = self.conn.execute("SELECT * FROM users WHERE email=?", (email,)).fetchone()
        return None if row is None else User(**dict(row))

    def create_user(self, email: str, password_hash: str, otp_secret: str = "") -> User:
        with self.tx():
            now = now_us()
            cur = self.conn.execute(
                "INSERT INTO users(email, nickname, password, created_at, otp_secret) VALUES(?,?,?,?,?)",
                (email, email.split("@", 1)[0], password_hash, now, otp_secret))
            uid = int(cur.lastrowid or 0)
            # the user's root folder: parentless, empty name (inventory.RootFolderName)
            self.conn.execute("INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) "
                              "VALUES(?, NULL, '', 1, ?, ?)", (uid, now, now))
        user = self.user_by_id(uid)
        assert user is not None
        return user

    def update_user_credentials(self, uid: int, password_hash: str | None, otp_secret: str | None) -> None:
        with self.tx():
            if password_hash is not None:
                self.conn.execute("UPDATE users SET password=? WHERE id=?", (password_hash, uid))
            if otp_secret is not None:
                self.conn.execute("UPDATE users SET otp_secret=? WHERE id=?", (otp_secret, uid))

    def add_storage(self, uid: int, delta: int) -> None:
        if delta:
            self.conn.execute("UPDATE users SET storage=storage+? WHERE id=?", (delta, uid))

    def storage_used(self, uid: int) -> int:
        row = self.conn.execute("SELECT storage FROM users WHERE id=?", (uid,)).fetchone()
        return 0 if row is None else int(row[0])

    # --- revoked refresh-token chains ---------------------------------------
    def is_revoked(self, root_id: str) -> bool:
        row = self.conn.execute("SELECT until FROM revoked_tokens WHERE root_id=?", (root_id,)).fetchone()
        return row is not None and row[0] > time.time()

    def revoke(self, root_id: str, until: float) -> None:
        with self.tx():
            self.conn.execute("DELETE FROM revoked_tokens WHERE until < ?", (time.time(),))
            self.conn.execute("INSERT OR REPLACE INTO revoked_tokens(root_id, until) VALUES(?,?)",
                              (root_id, until))

    # --- upload sessions (Cloudreve keeps them in its KV store) -------------
    def save_session(self, sid: str, data: dict[str, Any], expires_at: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO upload_sessions(id, data, expires_at) VALUES(?,?,?)",
                          (sid, json.dumps(data), expires_at))

    def delete_session(self, sid: str) -> None:
        self.conn.execute("DELETE FROM upload_sessions WHERE id=?", (sid,))

    def load_sessions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT data FROM upload_sessions WHERE expires_at > ?",
                                 (time.time(),)).fetchall()
        self.conn.execute("DELETE FROM upload_sessions WHERE expires_at <= ?", (time.time(),))
        return [json.loads(r[0]) for r in rows]
