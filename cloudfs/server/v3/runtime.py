"""The v3 dialect's per-server runtime: what its handlers share beyond
:class:`~cloudfs.server.common.state.ServerState` (the KV cache, cookie
sessions, tree helpers and the per-upload locks)."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator

import trio

from ..common.state import ServerState
from .kv import KV, Sessions
from .tree import Tree


class V3Runtime:
    """Everything the v3 handlers share beyond :class:`ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.kv = KV(state.db)
        self.kv.purge()
        self.sessions = Sessions(self.kv, state.secret)
        self.tree = Tree(state.store, state.codec)
        self._locks: dict[str, trio.Lock] = {}
        self._lock_users: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def session_lock(self, sid: str) -> AsyncIterator[None]:
        """Serialises chunk writes of one upload session (the blob is appended in place)."""
        lock = self._locks.setdefault(sid, trio.Lock())
        self._lock_users[sid] += 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[sid] -= 1
            if not self._lock_users[sid]:
                del self._lock_users[sid]
                self._locks.pop(sid, None)
