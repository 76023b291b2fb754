"""Server configuration and the state both dialects build on.

:class:`ServerConfig` holds the command-line settings with Cloudreve's
defaults (see :mod:`cloudfs.server.cli` for the flags).  :class:`ServerState`
owns one data directory (held with a lock file, one dialect per directory):
the database, store, id codec, signing secret, token auth and the quota.
Each dialect adds its own runtime on top: :class:`cloudfs.server.v4.state.V4State`,
:class:`cloudfs.server.v3.runtime.V3Runtime`.
"""

from __future__ import annotations

import fcntl
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import TokenAuth, TwoFactorSessions, check_password, hash_password
from .db import Database, User
from .ids import IdCodec
from .store import Store

log = logging.getLogger("cloudfs.server")

GIB = 1 << 30
MIB = 1 << 20
DEFAULT_USER = "demo@cloudfs.local"
DEFAULT_PASSWORD = "cloudfs-demo"


class DataDirBusy(RuntimeError):
    """Another server process holds the data directory."""


class DialectMismatch(RuntimeError):
    """The data directory holds a drive of the other API dialect."""


DIALECTS = ("v4", "v3", "koodrive")


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 5212
    user: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    #: True when --password was given (then it is applied to an existing account too)
    password_explicit: bool = False
    otp_secret: str | None = None
    capacity: int = 1 * GIB  # Cloudreve's default "User" group max_storage
    chunk_size: int = 25 * MIB  # default local storage policy chunk_size
    chunk_concurrency: int = 3
    max_file_size: int = 0  # storage policy max_size, 0 = unlimited
    access_ttl: float = 3600.0
    refresh_ttl: float = 14 * 24 * 3600.0
    upload_session_ttl: float = 86400.0
    url_ttl: float = 3600.0
    url_cache_margin: float = 600.0
    max_page_size: int = 2000
    max_batch: int = 3000
    max_edit_size: int = 50 * MIB
    max_walked_files: int = 100_000
    faults: bool = False
    fault_settings: dict[str, Any] = field(default_factory=dict)
    #: printed/served "title"; cosmetic
    site_name: str = "Cloudreve"
    #: "v4" (/api/v4) or "v3" (/api/v3, Cloudreve 3.8.3); a data dir keeps the one it was created with
    dialect: str = "v4"
    #: gin debug mode (v3): envelopes carry the raw ``error`` text
    debug: bool = False
    #: settings only one dialect reads (koodrive: app_id, app_secret, switches)
    dialect_options: dict[str, Any] = field(default_factory=dict)
    #: GET /file/events (v4): "on", "disabled" (fs_event_push_enabled off: 40019) or "absent" (before 4.11: 404)
    events: str = "on"
    events_debounce: float = 5.0  # fs_event_push_debounce
    events_max_age: float = 14 * 24 * 3600.0  # fs_event_push_max_age
    events_keepalive: float = 30.0  # the stream's keep-alive ticker


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        # one server per data dir: upload sessions and locks live in its memory
        self._lock_file = open(Path(config.data_dir) / "server.lock", "a+")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise DataDirBusy(f"{config.data_dir} is used by another running server") from None
        self.db = Database(Path(config.data_dir))
        try:
            self._check_dialect(config.dialect)
        except DialectMismatch:
            self.db.close()
            self._lock_file.close()
            raise
        self.store = Store(self.db)
        salt = self.db.get_meta("hashid_salt") or ""
        self.codec = IdCodec(salt)
        self.secret = bytes.fromhex(self.db.get_meta("secret") or "")
        self.site_id = self.db.get_meta("site_id") or ""
        self.tokens = TokenAuth(self.secret, config.access_ttl, config.refresh_ttl, self.site_id,
                                self.db.is_revoked, self.db.revoke)
        self.two_factor = TwoFactorSessions()
        #: the quota total set through the fault-injection channel (None: the configured one)
        self.capacity_override: int | None = None
        self.ensure_account()

    def _check_dialect(self, dialect: str) -> None:
        """One data dir serves one dialect: v3 has no trash, versions or metadata, and its
        placeholders/sessions mean nothing to v4 (and the other way round)."""
        if dialect not in DIALECTS:
            raise DialectMismatch(f"unknown dialect {dialect!r}")
        with self.db.tx():
            stored = self.db.get_meta("dialect")
            if stored is None:
                self.db.set_meta("dialect", dialect)
            elif stored != dialect:
                raise DialectMismatch(f"{self.config.data_dir} holds a Cloudreve {stored} drive; "
                                      f"serve it with --dialect {stored}")

    def ensure_account(self) -> User:
        cfg = self.config
        user = self.db.user_by_email(cfg.user)
        if user is None:
            user = self.db.create_user(cfg.user, hash_password(cfg.password), cfg.otp_secret or "")
            log.info("created account %s", cfg.user)
            return user
        # re-hash only on a real change: a new hash would kill refresh tokens (state hash)
        new_password = None
        if cfg.password_explicit and not check_password(user.password, cfg.password):
            new_password = hash_password(cfg.password)
        self.db.update_user_credentials(user.id, new_password, cfg.otp_secret)
        refreshed = self.db.user_by_email(cfg.user)
        assert refreshed is not None
        return refreshed

    def capacity_total(self) -> int:
        if self.capacity_override is not None:
            return self.capacity_override
        return self.config.capacity

    def close(self) -> None:
        self.db.close()
        self._lock_file.close()  # releases the flock
