"""The upload sessions of a v4 server (``PUT /file/upload`` opens one): kept in
memory and mirrored in the database, so a restart keeps them and the path
locks they hold.  The uploads themselves are :mod:`cloudfs.server.v4.uploads`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..common.db import Database
from ..common.store import FILE, Store
from .locks import LockSystem


@dataclass
class UploadSession:
    id: str
    uid: int
    file_id: int
    entity_id: int
    uri: str
    lock_path: str
    size: int
    chunk_size: int
    expires: float
    last_modified: int | None
    metadata: dict[str, str] | None
    new_file: bool
    lock_token: str
    callback_secret: str
    blob: str
    received: list[int] = field(default_factory=list)
    entity_type: int = 0  # 0 version, 2 live photo

    def chunk_count(self) -> int:
        if self.chunk_size <= 0 or self.size == 0:
            return 1
        return (self.size + self.chunk_size - 1) // self.chunk_size


class UploadSessions:
    """The live upload sessions, mirrored in the database; restoring them restores their path locks."""

    def __init__(self, db: Database, store: Store, locks: LockSystem) -> None:
        self.db, self.store, self.locks = db, store, locks
        self.sessions: dict[str, UploadSession] = {}
        now = time.time()
        for data in db.load_sessions():
            session = UploadSession(**data)
            self.sessions[session.id] = session
            if session.lock_token:
                locks.restore(session.lock_token, f"{session.uid}/my", session.lock_path, "upload",
                              FILE, session.expires - now)

    def get(self, sid: str) -> UploadSession | None:
        session = self.sessions.get(sid)
        if session is not None and session.expires <= time.time():
            self.forget(session)
            return None
        return session

    def save(self, session: UploadSession) -> None:
        self.db.save_session(session.id, asdict(session), session.expires)

    def forget(self, session: UploadSession) -> None:
        self.sessions.pop(session.id, None)
        self.db.delete_session(session.id)

    def forget_orphans(self) -> None:
        """Drop sessions whose pending entity was recycled (as Cloudreve's entity
        recycler does): their next chunk then gets 40011."""
        for session in list(self.sessions.values()):
            if self.store.entity(session.entity_id) is None:
                self.locks.drop(session.lock_token)
                self.forget(session)

    def add(self, session: UploadSession) -> None:
        self.sessions[session.id] = session
        self.save(session)
