"""Journal: the durable record of every file whose data is not on the server yet.

One SQLite database per account in the cache dir (WAL, ``synchronous=FULL``,
so a commit survives power loss).  A row is written (after the staging file
was fsync'd, or with the content itself for a small file) before cloudfs
acknowledges data by ``close`` or ``fsync``, and deleted once the upload
landed (deletes asked for together share one commit).  The next mount
replays whatever rows are left: that, not any in-memory state, is what is
pending after a crash.

SQLite calls block, so they run in a worker thread, one at a time.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from cloudfs.cache.ranges import SpanSet
from cloudfs.upload.staging import LocalFile

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    file_id      TEXT PRIMARY KEY,
    path         TEXT NOT NULL,
    staging      TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    base_version TEXT,
    base_size    INTEGER,
    base_mtime_ns INTEGER,
    base_limit   INTEGER NOT NULL,
    present      TEXT NOT NULL,
    updated_ns   INTEGER NOT NULL,
    session_id   TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    content      BLOB
)
"""
#: a record keeps the ids of this many of its latest upload sessions
SESSIONS_KEPT = 16
#: columns added since the first schema, for journals an older version left
ADDED_COLUMNS = {"metadata": "TEXT NOT NULL DEFAULT '{}'", "content": "BLOB"}
#: a file up to this size whose content is all staged is recorded with its
#: content: the one commit makes it durable (no fsync of the staging file:
#: a close of a small file costs one fsync, not two); a replay rewrites the
#: staging file from it
INLINE_MAX = 64 << 10


@dataclass(frozen=True)
class Record:
    file_id: str
    path: str
    staging: Path
    size: int
    mtime_ns: int
    base_version: str | None
    base_size: int | None
    base_mtime_ns: int | None
    base_limit: int
    present: SpanSet
    #: the upload sessions opened for it (a crash may leave one holding a lock, or a failed
    #: swap a whole copy beside the file): see :attr:`session_ids`
    session_id: str | None = None
    #: public metadata (the mode) its upload is to carry
    metadata: dict[str, str] = field(default_factory=dict)
    #: the whole content, for a small file (see INLINE_MAX); else the staging file was synced
    content: bytes | None = None

    @classmethod
    def of(cls, local: LocalFile) -> "Record":
        base = local.base
        return cls(
            file_id=local.file_id,
            path=local.remote_path,
            staging=local.staging,
            size=local.size,
            mtime_ns=local.mtime_ns,
            base_version=base.version if base else None,
            base_size=base.size if base else None,
            base_mtime_ns=base.mtime_ns if base else None,
            base_limit=local.base_limit,
            present=SpanSet(local.present),
            metadata=dict(local.metadata),
            content=local.snapshot() if local.size <= INLINE_MAX and local.complete else None,
        )

    @property
    def session_ids(self) -> list[str]:
        """The recorded sessions, oldest first (a JSON list; one plain id in
        journals an older version wrote)."""
        if not self.session_id:
            return []
        try:
            ids = json.loads(self.session_id)
        except ValueError:
            return [self.session_id]
        return [str(i) for i in ids] if isinstance(ids, list) else [self.session_id]

    def restore(self) -> None:
        """Rewrite the staging file from the recorded content (after a crash
        it may be short or missing: it was never synced)."""
        if self.content is None:
            return
        fd = os.open(self.staging, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, len(self.content))
            os.pwrite(fd, self.content, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = trio.Lock()
        # the connection is used from worker threads, one call at a time
        self._thread_lock = threading.Lock()
        #: records to delete (uploads that landed), written with the next
        #: statement: many uploads landing together cost one commit, not one each
        self._forgets: set[str] = set()
        #: files renamed locally whose record still has the old path (id at
        #: the rename -> the file, whose path is read as the update is written):
        #: written with the next statement, as a local filesystem makes a
        #: rename durable with the next sync (see :meth:`move_soon`)
        self._moves: dict[str, LocalFile] = {}
        #: records asked for and not written yet (see :meth:`record`)
        self._records = _RecordBatch()

    def open(self) -> list[Record]:
        """Open (creating if needed) and return what a previous run left pending."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(pending)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE pending ADD COLUMN {column} {kind}")
        rows = self._db.execute(
            "SELECT file_id, path, staging, size, mtime_ns, base_version, base_size,"
            " base_mtime_ns, base_limit, present, session_id, metadata, content FROM pending ORDER BY updated_ns"
        ).fetchall()
        return [
            Record(
                file_id=r[0], path=r[1], staging=Path(r[2]), size=r[3], mtime_ns=r[4],
                base_version=r[5], base_size=r[6], base_mtime_ns=r[7], base_limit=r[8],
                present=SpanSet.from_list(json.loads(r[9])), session_id=r[10], metadata=json.loads(r[11]),
                content=r[12],
            )
            for r in rows
        ]

    def close(self) -> None:
        if self._db is not None and (self._forgets or self._moves):
            try:
                self._run(list(self._forgets), None, (), moves=self._pending_moves())
            except OSError as exc:
                log.warning("could not drop the records of landed uploads, or record renames (%s); the next "
                            "mount finds them uploaded, or uploads them under their old names", exc)
            self._forgets.clear()
            self._moves.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run(self, forgets: list[str], sql: str | None, params: tuple | Sequence[tuple],
             before: Callable[[], None] | Sequence[Callable[[], None]] | None = None,
             moves: Sequence[tuple[str, str]] = (), *, many: bool = False) -> None:
        """The deletes ``forgets``, the path updates ``moves`` (path, file
        id), then ``sql`` (``many``: once for each of ``params``), in one
        transaction (one commit); ``before`` first (a staging file's sync)."""
        db = self._db
        assert db is not None, "journal not open"
        for prepare in (before if isinstance(before, Sequence) else [before] if before is not None else []):
            prepare()
        with self._thread_lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("DELETE FROM pending WHERE file_id = ?", [(f,) for f in forgets])
                    db.executemany("UPDATE pending SET path = ? WHERE file_id = ?", moves)
                    if sql is not None and many:
                        db.executemany(sql, params)
                    elif sql is not None:
                        db.execute(sql, params)
                except BaseException:
                    if db.in_transaction:  # (some errors, a full disk, roll back by themselves)
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                # callers handle disk trouble as OSError, like the staging files' own
                raise _as_os_error(exc) from exc

    async def _execute(self, sql: str, params: tuple, before: Callable[[], None] | None = None) -> None:
        async with self._lock:
            await self._write(sql, params, before)

    async def _write(self, sql: str | None, params: tuple | Sequence[tuple] = (),
                     before: Callable[[], None] | Sequence[Callable[[], None]] | None = None,
                     *, many: bool = False) -> None:
        """Run ``sql`` after every delete asked for so far, in one commit (the
        order is kept: a record written after a forget of the same file
        stays).  The caller holds the lock."""
        forgets = list(self._forgets)
        self._forgets.clear()
        moving = self._moves
        self._moves = {}
        try:
            await trio.to_thread.run_sync(functools.partial(self._run, forgets, sql, params, before,
                                                            self._pending_moves(moving), many=many))
        except BaseException:
            # maybe not written: the next statement writes them (again: deleting
            # is idempotent; a path is read anew when it is written)
            self._forgets.update(forgets)
            self._moves = {**moving, **self._moves}
            raise

    def _pending_moves(self, moving: dict[str, LocalFile] | None = None) -> list[tuple[str, str]]:
        """(path now, file id at the rename) of the renames not written yet:
        a record is found by the id it had then (a rekey asked for since is
        written after), and takes the file's path as it is now."""
        return [(local.remote_path, file_id) for file_id, local in (self._moves if moving is None else moving).items()]

    async def record(self, local: LocalFile, *, sync_first: bool = False) -> None:
        """Durably record ``local`` as pending.  Its staging file must be
        synced first: ``sync_first`` does it in the same worker-thread trip
        (a close pays one trip, not two), unless the record carries the
        content itself (a small file).  Not if the file is removed before
        the record is written: a forget asked for meanwhile must win.

        Records asked for while another statement is being written go
        together, in one commit: the uploads that start together after a
        burst (a tar x, an rsync) each record their file first, and one
        disk sync each made them wait in line."""
        rec = Record.of(local)
        batch = self._records
        batch.items[id(local)] = (local, rec, sync_first and rec.content is None)
        async with self._lock:
            if batch.written:
                if batch.error is not None:
                    raise OSError(batch.error.errno, batch.error.strerror)  # (this caller's own)
                return  # in a commit another caller made meanwhile
            if self._records is batch:
                self._records = _RecordBatch()
            # unlinked while waiting for the lock: not written (a forget asked for meanwhile must win)
            items = [item for item in batch.items.values() if not item[0].removed]
            try:
                await self._write(
                    "INSERT INTO pending (file_id, path, staging, size, mtime_ns, base_version,"
                    " base_size, base_mtime_ns, base_limit, present, updated_ns, metadata, content)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(file_id) DO UPDATE SET path=excluded.path, staging=excluded.staging,"
                    " size=excluded.size, mtime_ns=excluded.mtime_ns, base_version=excluded.base_version,"
                    " base_size=excluded.base_size, base_mtime_ns=excluded.base_mtime_ns,"
                    " base_limit=excluded.base_limit, present=excluded.present, updated_ns=excluded.updated_ns,"
                    " metadata=excluded.metadata, content=excluded.content",
                    [_record_row(rec) for _, rec, _ in items],
                    [pending.sync for pending, _, sync in items if sync],
                    many=True,
                )
            except OSError as exc:
                batch.written, batch.error = True, exc  # the others in this commit fail as this caller does
                raise
            # (cancelled: not written, and a caller still waiting for it writes it)
            batch.written = True

    async def set_session(self, file_id: str, session_id: str) -> None:
        """Add a session to the file's record (the last SESSIONS_KEPT): an
        earlier attempt's may have left a copy beside the file (a swap that
        failed), which only a replay that knows its id deletes after a crash."""
        await self._execute(
            "UPDATE pending SET session_id = CASE"
            " WHEN session_id IS NULL OR session_id = '' THEN json_array(?1)"
            " WHEN json_valid(session_id) AND json_type(session_id) = 'array' THEN json_insert(CASE"
            "   WHEN json_array_length(session_id) >= ?3 THEN json_remove(session_id, '$[0]') ELSE session_id END,"
            "   '$[#]', ?1)"
            " ELSE json_array(session_id, ?1) END"  # one plain id: an older version's journal
            " WHERE file_id = ?2", (session_id, file_id, SESSIONS_KEPT))

    def forget_soon(self, file_id: str) -> None:
        """Delete ``file_id``'s record with the next statement written (or
        at close): for a caller that may not await (see :meth:`forget`)."""
        self._forgets.add(file_id)

    async def forget(self, file_id: str) -> None:
        """Delete ``file_id``'s record; returns once that is durable.  Forgets
        asked for while another statement is being written go together."""
        self._forgets.add(file_id)
        async with self._lock:
            if file_id in self._forgets:  # else committed by the statement that held the lock
                await self._write(None)

    async def rekey(self, old_file_id: str, new_file_id: str) -> None:
        await self._execute("UPDATE pending SET file_id = ? WHERE file_id = ?", (new_file_id, old_file_id))

    async def move(self, file_id: str, path: str) -> None:
        await self._execute("UPDATE pending SET path = ? WHERE file_id = ?", (path, file_id))

    def move_soon(self, local: LocalFile) -> None:
        """``local`` was renamed here, with no request (a file not on the
        server yet): its record takes its new path with the next statement
        written (the next close, an upload starting, a landed upload) or at
        :meth:`flush`.  As on a local filesystem, a rename is durable once
        something is synced after it; a crash before that uploads the file
        under its former name, with all its content."""
        self._moves[local.file_id] = local

    def moving(self, local: LocalFile) -> bool:
        """Whether ``local``'s record waits for its new path."""
        return any(pending is local for pending in self._moves.values())

    async def flush(self) -> None:
        """Write what waits for the next statement (renames, deletes of landed uploads)."""
        async with self._lock:
            if self._moves or self._forgets:
                await self._write(None)


@dataclass
class _RecordBatch:
    """Records waiting to be written in one commit (by file object: the
    newest of a file's stands for it), and how their commit went."""

    items: dict[int, tuple[LocalFile, Record, bool]] = field(default_factory=dict)
    written: bool = False
    error: OSError | None = None


def _record_row(rec: Record) -> tuple:
    return (rec.file_id, rec.path, str(rec.staging), rec.size, rec.mtime_ns,
            rec.base_version, rec.base_size, rec.base_mtime_ns, rec.base_limit,
            json.dumps(rec.present.to_list()), time.time_ns(), json.dumps(rec.metadata), rec.content)


#: SQLite's primary result code for a full disk (extended codes keep it in the low byte)
_SQLITE_FULL = 13


def _as_os_error(exc: sqlite3.Error) -> OSError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return OSError(errno.ENOSPC if code == _SQLITE_FULL else errno.EIO, f"upload journal: {exc}")
