"""The file tree: folders, files, content entities (blobs), metadata, quota.

Synchronous operations on :class:`~cloudfs.server.common.db.Database`, each one a
single transaction, modelled on Cloudreve's ``inventory/file.go``:

* a *file* row points at its current content *entity* (``primary_entity``);
  entities are shared by reference count (copies share blobs) and linked to
  files through ``file_entities``;
* a user's ``storage`` counter moves with every entity link/unlink (so trash
  and pending uploads count, and a copy is charged again);
* an entity whose reference count reaches 0 is dropped and its blob is
  returned to the caller for deletion after commit.

Blob files live in ``DATA/blobs/xx/<random hex>``: names come from
:func:`new_blob_name`, never from user input.  ``seed_bulk_folder`` is a test
helper that inserts many empty files quickly (no HTTP endpoint exposes it).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database, now_us

FOLDER, FILE = 1, 0
VERSION_ENTITY = 0
ORDER_COLUMNS = {"name": "name", "size": "size", "updated_at": "updated_at", "created_at": "created_at"}
SQL_CHUNK = 900


@dataclass
class FileRow:
    id: int
    owner_id: int
    parent_id: int | None
    name: str
    type: int
    size: int
    primary_entity: int
    created_at: int
    updated_at: int

    @property
    def is_folder(self) -> bool:
        return self.type == FOLDER


@dataclass
class EntityRow:
    id: int
    type: int
    size: int
    blob: str
    ref_count: int
    upload_session_id: str | None
    created_by: int | None
    created_at: int
    updated_at: int


@dataclass
class Cursor:
    """Decoded page token: where the previous page stopped."""

    start_with_file: bool
    last_id: int
    last_value: Any


def _row(r: sqlite3.Row | None) -> FileRow | None:
    return None if r is None else FileRow(**dict(r))


def new_blob_name() -> str:
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.conn
        self.blob_root = db.data_dir / "blobs"
        self.blob_root.mkdir(exist_ok=True)

    def blob_path(self, blob: str) -> Path:
        # blob names are generated here (two hex levels), never user supplied
        return self.blob_root / blob

    # --- reads ------------------------------------------------------------
    def get(self, fid: int) -> FileRow | None:
        return _row(self.conn.execute("SELECT * FROM files WHERE id=?", (fid,)).fetchone())

    def root(self, uid: int) -> FileRow | None:
        return _row(self.conn.execute(
            "SELECT * FROM files WHERE owner_id=? AND parent_id IS NULL AND name='' AND type=1",
            (uid,)).fetchone())

    def child(self, parent_id: int, name: str) -> FileRow | None:
        return _row(self.conn.execute("SELECT * FROM files WHERE parent_id=? AND name=?",
                                      (parent_id, name)).fetchone())

    def trash_item(self, uid: int, name: str) -> FileRow | None:
        if name == "":
            return None
        return _row(self.conn.execute(
            "SELECT * FROM files WHERE parent_id IS NULL AND owner_id=? AND name=?", (uid, name)).fetchone())

    def top_ancestor(self, row: FileRow) -> tuple[FileRow, list[FileRow]]:
        """Walk parents up to the parentless ancestor; returns (top, chain top->row)."""
        chain = [row]
        while chain[-1].parent_id is not None:
            parent = self.get(chain[-1].parent_id)
            if parent is None:
                break
            chain.append(parent)
        chain.reverse()
        return chain[0], chain

    def list_page(self, parent_id: int | None, owner_id: int, order_by: str, desc: bool,
                  page_size: int, cursor: Cursor | None) -> tuple[list[FileRow], Cursor | None]:
        """One page of children, folders first; keyset pagination on (column, id)."""
        column = ORDER_COLUMNS.get(order_by, "id")
        rows: list[FileRow] = []
        if cursor is None or not cursor.start_with_file:
            rows = self._phase(parent_id, owner_id, FOLDER, column, desc, page_size + 1, cursor)
        if len(rows) < page_size + 1:
            file_cursor = cursor if cursor is not None and cursor.start_with_file else None
            rows += self._phase(parent_id, owner_id, FILE, column, desc, page_size + 1 - len(rows),
                                file_cursor)
        next_cursor = None
        if len(rows) > page_size:
            last = rows[page_size - 1]
            value = getattr(last, column) if column != "id" else None
            next_cursor = Cursor(last.type == FILE, last.id, value)
        return rows[:page_size], next_cursor

    def _phase(self, parent_id: int | None, owner_id: int, ftype: int, column: str, desc: bool,
               limit: int, cursor: Cursor | None) -> list[FileRow]:
        if parent_id is None:
            sql = "SELECT * FROM files WHERE parent_id IS NULL AND type=? AND owner_id=? AND name != ''"
            args: list[Any] = [ftype, owner_id]
        else:
            sql = "SELECT * FROM files WHERE parent_id=? AND type=?"
            args = [parent_id, ftype]
        op = "<" if desc else ">"
        if cursor is not None:
            if column == "id":
                sql += f" AND id {op} ?"
                args.append(cursor.last_id)
            else:
                sql += f" AND ({column}, id) {op} (?, ?)"
                args += [cursor.last_value, cursor.last_id]
        direction = "DESC" if desc else "ASC"
        sql += (f" ORDER BY {column} {direction}, id {direction}" if column != "id"
                else f" ORDER BY id {direction}") + " LIMIT ?"
        args.append(limit)
        # column order of ``files`` matches FileRow's fields
        return [FileRow(*r) for r in self.conn.execute(sql, args)]

    def metadata(self, ids: Sequence[int], public_only: bool = True) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT file_id, name, value FROM metadata WHERE file_id IN ({marks})"
            if public_only:
                sql += " AND is_public=1"
            for fid, name, value in self.conn.execute(sql, chunk):
                out[fid][name] = value
        return out

    def entities_of(self, fid: int) -> list[EntityRow]:
        rows = self.conn.execute(
            "SELECT e.* FROM entities e JOIN file_entities fe ON fe.entity_id=e.id "
            "WHERE fe.file_id=? ORDER BY e.id DESC", (fid,))
        return [EntityRow(**dict(r)) for r in rows]

    def entity(self, eid: int) -> EntityRow | None:
        r = self.conn.execute("SELECT * FROM entities WHERE id=?", (eid,)).fetchone()
        return None if r is None else EntityRow(**dict(r))

    def descendants(self, roots: Sequence[FileRow], limit: int | None = None) -> list[FileRow]:
        """Breadth-first walk (roots included), like navigator.Walk."""
        out = list(roots)
        level = [r.id for r in roots if r.is_folder]
        while level:
            nxt: list[int] = []
            for chunk in _chunks(level):
                marks = ",".join("?" * len(chunk))
                for r in self.conn.execute(f"SELECT * FROM files WHERE parent_id IN ({marks}) ORDER BY id",
                                           chunk):
                    row = FileRow(**dict(r))
                    out.append(row)
                    if row.is_folder:
                        nxt.append(row.id)
                    if limit is not None and len(out) > limit:
                        return out
            level = nxt
        return out

    def children(self, parent_ids: Sequence[int]) -> list[FileRow]:
        out: list[FileRow] = []
        for chunk in _chunks(list(parent_ids)):
            marks = ",".join("?" * len(chunk))
            out += [FileRow(**dict(r)) for r in self.conn.execute(
                f"SELECT * FROM files WHERE parent_id IN ({marks}) ORDER BY id", chunk)]
        return out

    def is_descendant_or_self(self, candidate: FileRow, ancestor_id: int) -> bool:
        row: FileRow | None = candidate
        while row is not None:
            if row.id == ancestor_id:
                return True
            row = self.get(row.parent_id) if row.parent_id is not None else None
        return False

    # --- writes (call inside db.tx()) ---------------------------------------
    def create_folder(self, parent: FileRow, name: str, metadata: dict[str, str] | None) -> FileRow:
        now = now_us()
        cur = self.conn.execute(
            "INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) "
            "VALUES(?,?,?,1,?,?) ON CONFLICT(parent_id, name) DO NOTHING",
            (parent.owner_id, parent.id, name, now, now))
        row = self.child(parent.id, name)
        assert row is not None
        if cur.rowcount and metadata:
            self.upsert_metadata(row.id, metadata)
        return row

    def create_file(self, parent: FileRow, name: str, metadata: dict[str, str] | None) -> FileRow:
        """Raises sqlite3.IntegrityError when the name is taken."""
        now = now_us()
        cur = self.conn.execute(
            "INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) VALUES(?,?,?,0,?,?)",
            (parent.owner_id, parent.id, name, now, now))
        fid = int(cur.lastrowid or 0)
        if metadata:
            self.upsert_metadata(fid, metadata)
        row = self.get(fid)
        assert row is not None
        return row

    def create_entity(self, file: FileRow, size: int, blob: str, session_id: str | None,
                      created_by: int | None, updated_at: int | None = None,
                      etype: int = VERSION_ENTITY) -> EntityRow:
        now = now_us()
        cur = self.conn.execute(
            "INSERT INTO entities(type, size, blob, ref_count, upload_session_id, created_by, created_at, "
            "updated_at) VALUES(?,?,?,1,?,?,?,?)",
            (etype, size, blob, session_id, created_by, now, updated_at or now))
        eid = int(cur.lastrowid or 0)
        self.conn.execute("INSERT INTO file_entities(file_id, entity_id) VALUES(?,?)", (file.id, eid))
        self.db.add_storage(file.owner_id, size)
        entity = self.entity(eid)
        assert entity is not None
        return entity

    def unlink_entity(self, file: FileRow, entity: EntityRow) -> list[str]:
        """Drop the file->entity link; returns blobs that became unreferenced."""
        self.conn.execute("DELETE FROM file_entities WHERE file_id=? AND entity_id=?", (file.id, entity.id))
        self.db.add_storage(file.owner_id, -entity.size)
        return self._deref([entity.id])

    def _deref(self, entity_ids: Iterable[int], by: int = 1) -> list[str]:
        stale: list[str] = []
        for eid in entity_ids:
            self.conn.execute("UPDATE entities SET ref_count=ref_count-? WHERE id=?", (by, eid))
            r = self.conn.execute("SELECT ref_count, blob FROM entities WHERE id=?", (eid,)).fetchone()
            if r is not None and r[0] <= 0:
                self.conn.execute("DELETE FROM entities WHERE id=?", (eid,))
                self.conn.execute("DELETE FROM file_entities WHERE entity_id=?", (eid,))
                stale.append(r[1])
        return stale

    def rename(self, file: FileRow, name: str) -> FileRow:
        self.conn.execute("UPDATE files SET name=?, updated_at=? WHERE id=?", (name, now_us(), file.id))
        row = self.get(file.id)
        assert row is not None
        return row

    def set_parent(self, files: Sequence[FileRow], parent: FileRow) -> None:
        now = now_us()
        for f in files:
            self.conn.execute("UPDATE files SET parent_id=?, updated_at=? WHERE id=?", (parent.id, now, f.id))

    def touch(self, fid: int, when: int | None = None) -> None:
        self.conn.execute("UPDATE files SET updated_at=? WHERE id=?", (when or now_us(), fid))

    def soft_delete(self, file: FileRow, new_name: str, restore_uri: str, collect_at: int) -> None:
        self.conn.execute("UPDATE files SET name=?, parent_id=NULL, updated_at=? WHERE id=?",
                          (new_name, now_us(), file.id))
        self.upsert_metadata(file.id, {"sys:restore_uri": restore_uri,
                                       "sys:expected_collect_time": str(collect_at)})

    def delete_files(self, files: Sequence[FileRow]) -> list[str]:
        """Hard-delete exactly these rows (callers pass whole subtrees)."""
        ids = [f.id for f in files]
        refs: dict[int, int] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for fid, eid, size, owner in self.conn.execute(
                    f"SELECT fe.file_id, fe.entity_id, e.size, f.owner_id FROM file_entities fe "
                    f"JOIN entities e ON e.id=fe.entity_id JOIN files f ON f.id=fe.file_id "
                    f"WHERE fe.file_id IN ({marks})", chunk):
                refs[eid] = refs.get(eid, 0) + 1
                self.db.add_storage(owner, -size)
        stale: list[str] = []
        for eid, count in refs.items():
            stale += self._deref([eid], count)
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"DELETE FROM file_entities WHERE file_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM metadata WHERE file_id IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
        return stale

    def copy_level(self, files: Sequence[FileRow], dst_of: dict[int, FileRow]) -> dict[int, FileRow]:
        """Copy one walk level; ``dst_of`` maps source parent id -> new parent."""
        created: dict[int, FileRow] = {}
        now = now_us()
        for f in files:
            parent = dst_of[f.parent_id if f.parent_id is not None else -1]
            cur = self.conn.execute(
                "INSERT INTO files(owner_id, parent_id, name, type, size, primary_entity, created_at, "
                "updated_at) VALUES(?,?,?,?,?,?,?,?)",
                (parent.owner_id, parent.id, f.name, f.type, f.size, f.primary_entity, now, now))
            new_id = int(cur.lastrowid or 0)
            self.conn.execute("INSERT INTO metadata(file_id, name, value, is_public) SELECT ?, name, value, "
                              "is_public FROM metadata WHERE file_id=?", (new_id, f.id))
            for e in self.entities_of(f.id):
                if e.upload_session_id is not None:
                    continue  # entities still uploading are not copied
                self.conn.execute("INSERT INTO file_entities(file_id, entity_id) VALUES(?,?)", (new_id, e.id))
                self.conn.execute("UPDATE entities SET ref_count=ref_count+1 WHERE id=?", (e.id,))
                self.db.add_storage(parent.owner_id, e.size)
            row = self.get(new_id)
            assert row is not None
            created[f.id] = row
        return created

    def upsert_metadata(self, fid: int, values: dict[str, str], private: set[str] | None = None) -> None:
        for key, value in values.items():
            self.conn.execute(
                "INSERT INTO metadata(file_id, name, value, is_public) VALUES(?,?,?,?) "
                "ON CONFLICT(file_id, name) DO UPDATE SET value=excluded.value, is_public=excluded.is_public",
                (fid, key, value, 0 if private and key in private else 1))

    def remove_metadata(self, fid: int, *keys: str) -> None:
        for key in keys:
            self.conn.execute("DELETE FROM metadata WHERE file_id=? AND name=?", (fid, key))

    def upgrade_placeholder(self, file: FileRow, entity: EntityRow, modified_at: int | None) -> None:
        """Upload completion: the pending entity is final; a version becomes current."""
        self.conn.execute("UPDATE entities SET upload_session_id=NULL, updated_at=? WHERE id=?",
                          (modified_at or entity.updated_at, entity.id))
        if entity.type != VERSION_ENTITY:
            return  # e.g. the video part of a live photo: attached, not the file's content
        self.conn.execute("UPDATE files SET size=?, primary_entity=?, updated_at=? WHERE id=?",
                          (entity.size, entity.id, modified_at or now_us(), file.id))

    def cap_versions(self, file: FileRow, keep: int = 1, etype: int = VERSION_ENTITY) -> list[str]:
        """Unlink all but the newest ``keep`` entities of one type (CapEntities)."""
        stale: list[str] = []
        for e in [e for e in self.entities_of(file.id) if e.type == etype][keep:]:
            stale += self.unlink_entity(file, e)
        return stale

    def remove_stale_pending(self, file: FileRow) -> list[str]:
        """Entities of abandoned upload sessions (RemoveStaleEntities)."""
        stale: list[str] = []
        for e in self.entities_of(file.id):
            if e.ref_count == 1 and e.upload_session_id is not None:
                stale += self.unlink_entity(file, e)
        return stale

    def unlink_blobs(self, blobs: Iterable[str]) -> None:
        for blob in blobs:
            try:
                os.unlink(self.blob_path(blob))
            except FileNotFoundError:
                pass


def _chunks(items: list[int], size: int = SQL_CHUNK) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def seed_bulk_folder(data_dir: str | os.PathLike[str], folder: Sequence[str], count: int,
                     email: str | None = None, prefix: str = "f", folders: int = 0) -> int:
    """Test helper: create ``folder`` (path elements) holding ``count`` empty files
    (plus ``folders`` subfolders) in one transaction.  Safe while the server runs
    (separate connection, WAL).  Returns the folder's file id."""
    db = Database(Path(data_dir))
    try:
        row = db.conn.execute("SELECT id FROM users ORDER BY id LIMIT 1" if email is None else
                              "SELECT id FROM users WHERE email=?", () if email is None else (email,)).fetchone()
        if row is None:
            raise ValueError("no such user in data dir")
        store = Store(db)
        parent = store.root(int(row[0]))
        assert parent is not None
        with db.tx():
            for name in folder:
                parent = store.create_folder(parent, name, None)
            now = now_us()
            width = len(str(max(count, folders, 1)))
            db.conn.executemany(
                "INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) VALUES(?,?,?,1,?,?)",
                ((parent.owner_id, parent.id, f"d{i:0{width}d}", now, now) for i in range(folders)))
            db.conn.executemany(
                "INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) VALUES(?,?,?,0,?,?)",
                ((parent.owner_id, parent.id, f"{prefix}{i:0{width}d}", now + i, now + i) for i in range(count)))
        return parent.id
    finally:
        db.close()
