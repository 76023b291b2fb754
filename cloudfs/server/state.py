"""Server configuration and the shared state every request handler sees.

:class:`ServerConfig` holds the command-line settings with Cloudreve's
defaults (see :mod:`cloudfs.server.cli` for the flags).  :class:`ServerState`
owns the database, store, id codec, token auth, locks, upload sessions and
URL cache for one data directory.  :class:`Ctx` is one request's view:
correlation id, current user (None = anonymous), base URL.
"""

from __future__ import annotations

import fcntl
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auth import TokenAuth, TwoFactorSessions, check_password, hash_password
from .db import Database, User
from .ids import IdCodec
from .locks import LockSystem
from .store import Store

if TYPE_CHECKING:
    from .faults import FaultState
    from .uploads import UploadManager

log = logging.getLogger("cloudfs.server")

GIB = 1 << 30
MIB = 1 << 20
DEFAULT_USER = "demo@cloudfs.local"
DEFAULT_PASSWORD = "cloudfs-demo"
VERSION = "4.14.0"  # what a source build of Cloudreve 4.18.0 reports from /site/ping


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
        self.locks = LockSystem()
        self.capacity_override: int | None = None
        self.faults: FaultState | None = None
        self.url_cache: dict[tuple[Any, ...], tuple[str, float]] = {}
        #: the v3 dialect's runtime (cloudfs.server.v3app.V3Runtime), None when serving v4
        self.v3: Any = None
        #: the koodrive dialect's runtime (cloudfs.server.koodrive.runtime.KooRuntime)
        self.koodrive: Any = None
        self.ensure_account()
        from .uploads import UploadManager  # circular at import time

        self.uploads: UploadManager = UploadManager(self)

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


@dataclass
class Ctx:
    state: ServerState
    user: User | None
    cid: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
