"""What every KooDrive handler shares: the server state, switches, identities,
tokens, jobs and upload tasks of one emulator.

Identities are made once per data directory and kept in its ``meta`` table:
the account's ``userId`` (a 19-digit string like the reference's examples),
its space's ``containerId``.  The enterprise app credentials (AppId,
AppSecret) come from the command line (defaults below, printed at start).
"""

from __future__ import annotations

import secrets
from typing import Any

from ..db import User
from ..state import ServerState
from .auth import Tokens
from .presign import Presigner
from .switches import Switches

DEFAULT_APP_ID = "cloudfs-demo-app"
DEFAULT_APP_SECRET = "cloudfs-demo-app-secret"
DEFAULT_AGENT = "cloudfs"


class KooRuntime:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        options: dict[str, Any] = dict(state.config.dialect_options)
        self.switches = Switches()
        self.switches.update(options.get("switches", {}))
        self.app_id: str = options.get("app_id") or DEFAULT_APP_ID
        self.app_secret: str = options.get("app_secret") or DEFAULT_APP_SECRET
        db = state.db
        with db.tx():
            if db.get_meta("kd_user_id") is None:
                db.set_meta("kd_user_id", "1008600000" + "".join(secrets.choice("0123456789") for _ in range(9)))
                db.set_meta("kd_container_id", secrets.token_hex(16))
            self.tokens = Tokens(db.conn)
        self.user_key = db.get_meta("kd_user_id") or ""
        self.container_id = db.get_meta("kd_container_id") or ""
        self.presigner = Presigner(state.secret)

    # --- the account -----------------------------------------------------------------------
    @property
    def user(self) -> User:
        user = self.state.db.user_by_email(self.state.config.user)
        assert user is not None  # created by ServerState.ensure_account
        return user

    def user_by_key(self, key: str) -> User | None:
        return self.user if key == self.user_key else None

    def key_of(self, user: User) -> str:
        return self.user_key

    def capacity_bytes(self) -> int:
        return self.state.capacity_total()
