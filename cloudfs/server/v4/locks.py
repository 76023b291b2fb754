"""In-memory path locks, with the conflict rules of Cloudreve's ``memLS``.

Every mutating call locks the paths it touches for its duration; upload
sessions keep their lock until completion, cancellation or expiry.  A lock on
``p`` conflicts with a lock on ``p`` itself, with an infinite-depth lock on an
ancestor of ``p`` and (unless the new lock is zero-depth) with any lock below
``p``.  Locks are keyed by namespace (``"<uid>/my"``) and cleaned path.

A conflict becomes error 40073 whose ``data`` lists the holders as
``{"path", "token", "owner": {"application": {"type"}}, "type"}``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import errors as E
from .uris import join_uri


@dataclass
class Lock:
    token: str
    ns: str
    path: str
    zero_depth: bool
    app: str
    ftype: int
    expires: float | None  # monotonic deadline, None = until released


@dataclass
class LockRequest:
    ns: str
    path: str
    ftype: int
    zero_depth: bool = False
    token: str = ""

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.path}"


def _is_below(child: str, parent: str) -> bool:
    return parent == "/" and child != "/" or child.startswith(parent + "/")


@dataclass
class LockSession:
    """Locks taken by one request; released together (keys already held are skipped)."""

    tokens: dict[str, str] = field(default_factory=dict)


class LockSystem:
    def __init__(self) -> None:
        self._locks: dict[str, Lock] = {}

    def _collect(self) -> None:
        now = time.monotonic()
        for token in [t for t, lk in self._locks.items() if lk.expires is not None and lk.expires <= now]:
            del self._locks[token]

    def _conflicts(self, req: LockRequest) -> list[Lock]:
        hits: list[Lock] = []
        for lk in self._locks.values():
            if lk.ns != req.ns:
                continue
            if lk.path == req.path or _is_below(req.path, lk.path) and not lk.zero_depth or not req.zero_depth and _is_below(lk.path, req.path):
                hits.append(lk)
        return hits

    def acquire(self, session: LockSession, app: str, requests: list[LockRequest],
                duration: float | None = None) -> None:
        """Create all locks or none; raises the 40073 AppError on conflict."""
        self._collect()
        created: list[Lock] = []
        for req in requests:
            if req.key in session.tokens:
                continue  # already locked by this request
            hits = self._conflicts(req)
            if hits:
                for lk in created:
                    self._locks.pop(lk.token, None)
                    session.tokens.pop(f"{lk.ns}/{lk.path}", None)
                raise self.conflict_error(hits)
            lk = Lock(req.token or str(uuid.uuid4()), req.ns, req.path, req.zero_depth, app, req.ftype,
                      None if duration is None else time.monotonic() + duration)
            self._locks[lk.token] = lk
            session.tokens[req.key] = lk.token
            created.append(lk)

    @staticmethod
    def conflict_error(hits: list[Lock]) -> E.AppError:
        details: list[dict[str, Any]] = []
        for lk in hits:
            elements = [p for p in lk.path.split("/") if p]
            details.append({"path": join_uri("cloudreve://my", elements).rstrip("/")
                            if elements else "cloudreve://my",
                            "token": lk.token, "owner": {"application": {"type": lk.app}},
                            "type": lk.ftype})
        text = "conflict with locked resource: " + ",".join(f'"{lk.path}"' for lk in hits)
        return E.lock_conflict(details, text)

    def release(self, session: LockSession, keep: str | None = None) -> None:
        for key, token in list(session.tokens.items()):
            if token != keep:
                self._locks.pop(token, None)
            del session.tokens[key]

    def exclude(self, session: LockSession, key: str) -> str:
        """Take one lock out of the session so release() leaves it held."""
        return session.tokens.pop(key, "")

    def confirm(self, token: str, ns: str, path: str) -> bool:
        """Is ``token`` a live lock covering ``ns``/``path``?"""
        self._collect()
        lk = self._locks.get(token)
        if lk is None or lk.ns != ns:
            return False
        return lk.path == path or (not lk.zero_depth and _is_below(path, lk.path))

    def unlock(self, tokens: list[str]) -> bool:
        """Force-release tokens; False (nothing released) if any is unknown."""
        self._collect()
        if any(t not in self._locks for t in tokens):
            return False
        for t in tokens:
            del self._locks[t]
        return True

    def restore(self, token: str, ns: str, path: str, app: str, ftype: int, remaining: float) -> None:
        """Recreate a persisted upload lock after a restart."""
        self._locks[token] = Lock(token, ns, path, False, app, ftype, time.monotonic() + remaining)

    def drop(self, token: str) -> None:
        self._locks.pop(token, None)
