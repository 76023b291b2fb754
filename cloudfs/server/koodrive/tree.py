"""The user's file tree as KooDrive shows it, over the shared SQLite store.

Items are addressed by id only (hashids of the row id, like every id the
bundled servers expose).  The recycle bin holds parentless items that carry
``kd:recycled_from`` (the folder they were in) and ``kd:recycled_at``; their
descendants move with them.  An item is *live* when its top ancestor is the
user's root.  Files still being uploaded carry ``kd:pending`` and are
invisible until ``files/complete``.  A file's content hash is ``kd:sha256``.
"""

from __future__ import annotations

import datetime
import mimetypes
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..db import User, now_us
from ..ids import FILE
from ..store import FileRow, Store
from . import errors as E

if TYPE_CHECKING:
    from .runtime import KooRuntime

FOLDER_TYPE = "10"
RECYCLED_FROM = "kd:recycled_from"
RECYCLED_AT = "kd:recycled_at"
PENDING = "kd:pending"
SHA256 = "kd:sha256"
FILE_TYPE = "kd:file_type"
DESCRIPTION = "kd:description"
MAX_NAME = 250
BAD_NAME_CHARS = re.compile(r'[<>|:"*?/\\]')


def iso_time(us: int, millis: bool = True) -> str:
    when = datetime.datetime.fromtimestamp(us / 1_000_000, datetime.UTC)
    if not millis:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: Any) -> int | None:
    """An ISO 8601 time (or epoch ms) from a request, as microseconds; None if absent/bad."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text * 1000)
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1_000_000)


def check_name(name: Any, field: str = "fileName", max_len: int = MAX_NAME) -> str:
    if not isinstance(name, str) or not name.strip() or name in (".", ".."):
        raise E.bad(f"{field} is invalid")
    if len(name) > max_len or BAD_NAME_CHARS.search(name) or any(ord(c) < 32 for c in name):
        raise E.bad(f"{field} is invalid")
    return name


def suffix_of(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else ""


def timestamped(name: str, is_folder: bool, when: float | None = None) -> str:
    """renameMode 2: ``stem_yyyyMMddHHmmss.ext`` (the exact form is an assumption)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when if when is not None else time.time()))
    ext = "" if is_folder else suffix_of(name)
    stem = name[: -len(ext) - 1] if ext else name
    return f"{stem}_{stamp}" + (f".{ext}" if ext else "")


class Tree:
    def __init__(self, rt: KooRuntime) -> None:
        self.rt = rt
        self.store: Store = rt.state.store
        self.codec = rt.state.codec
        self.conn = self.store.conn

    # --- ids ------------------------------------------------------------------------------
    def fid(self, row: FileRow) -> str:
        return self.codec.encode(row.id, FILE)

    def root(self, user: User) -> FileRow:
        root = self.store.root(user.id)
        assert root is not None
        return root

    def row(self, user: User, raw: Any, *, live: bool = True, folder: bool | None = None) -> FileRow:
        """The item an id names (``root`` is the root), or 13000309."""
        if raw == "root":
            row: FileRow | None = self.root(user)
        else:
            num = self.codec.decode(raw, FILE) if isinstance(raw, str) else None
            row = self.store.get(num) if num is not None else None
        if row is None or row.owner_id != user.id or self.meta(row).get(PENDING):
            raise E.KooError(E.NOT_EXIST)
        if live and not self.is_live(row):
            raise E.KooError(E.RECYCLE_STATE)
        if folder is True and not row.is_folder:
            raise E.KooError(E.BAD_TARGET, "The target is not a folder.")
        if folder is False and row.is_folder:
            raise E.KooError(E.FOLDER_NOT_ALLOWED)
        return row

    def check_container(self, body: dict[str, Any], field: str = "containerId") -> None:
        value = body.get(field)
        if not isinstance(value, str) or not value or len(value) > 64:
            raise E.bad(f"{field} is invalid")
        if value != self.rt.container_id:
            raise E.KooError(E.NOT_IN_SPACE)

    # --- structure ------------------------------------------------------------------------
    def is_live(self, row: FileRow) -> bool:
        top, _ = self.store.top_ancestor(row)
        return top.name == "" and top.is_folder

    def depth(self, row: FileRow) -> int:
        _, chain = self.store.top_ancestor(row)
        return len(chain) - 1

    def meta(self, row: FileRow) -> dict[str, str]:
        return self.store.metadata([row.id], public_only=False)[row.id]

    def children(self, parent: FileRow) -> list[FileRow]:
        rows = self.store.children([parent.id])
        pending = self._pending_ids([r.id for r in rows if not r.is_folder])
        return [r for r in rows if r.id not in pending]

    def recycled(self, user: User) -> list[FileRow]:
        rows = self.conn.execute(
            "SELECT f.* FROM files f JOIN metadata m ON m.file_id=f.id AND m.name=? "
            "WHERE f.parent_id IS NULL AND f.owner_id=? ORDER BY f.id", (RECYCLED_AT, user.id)).fetchall()
        return [FileRow(**dict(r)) for r in rows]

    def _pending_ids(self, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        found: set[int] = set()
        for i in range(0, len(ids), 900):
            chunk = list(ids[i:i + 900])
            marks = ",".join("?" * len(chunk))
            found |= {r[0] for r in self.conn.execute(
                f"SELECT file_id FROM metadata WHERE name=? AND file_id IN ({marks})", [PENDING, *chunk])}
        return found

    def free_name(self, parent: FileRow, name: str, is_folder: bool, mode: int) -> str:
        """The name to create ``name`` under: itself, a timestamped one (mode 2), or 13000405."""
        if self.store.child(parent.id, name) is None:
            return name
        if mode != 2:
            raise E.KooError(E.DUPLICATE_NAME)
        candidate = timestamped(name, is_folder)
        n = 1
        while self.store.child(parent.id, candidate) is not None:
            n += 1
            candidate = timestamped(name, is_folder) + f"({n})"
        return candidate

    def rename_mode(self, body: dict[str, Any], field: str) -> int:
        mode = body.get(field, self.rt.switches.default_rename_mode)
        if mode not in (2, 3, 4) or isinstance(mode, bool):
            raise E.bad(f"{field} is invalid")
        return int(mode)

    def check_depth(self, parent: FileRow, extra: int = 1) -> None:
        if self.depth(parent) + extra > self.rt.switches.max_depth:
            raise E.KooError(E.DEPTH_EXCEEDED)

    def subtree_height(self, row: FileRow) -> int:
        height, level = 1, [row] if row.is_folder else []
        while level:
            level = [r for r in self.store.children([r.id for r in level]) if r.is_folder]
            height += 1 if level else 0
        return height

    def used_bytes(self, user: User) -> int:
        """Space used: every stored byte, the recycle bin's too unless ``recycle_counts`` is off."""
        used = self.rt.state.db.storage_used(user.id)
        if not self.rt.switches.recycle_counts:
            used -= sum(r.size for r in self.store.descendants(self.recycled(user)) if not r.is_folder)
        return max(used, 0)

    # --- writes -----------------------------------------------------------------------------
    def recycle(self, row: FileRow) -> None:
        parent_id = row.parent_id
        self.conn.execute("UPDATE files SET parent_id=NULL WHERE id=?", (row.id,))
        self.store.upsert_metadata(row.id, {RECYCLED_FROM: str(parent_id), RECYCLED_AT: str(now_us())})

    def unrecycle(self, row: FileRow, parent: FileRow, name: str) -> None:
        self.conn.execute("UPDATE files SET parent_id=?, name=? WHERE id=?", (parent.id, name, row.id))
        self.store.remove_metadata(row.id, RECYCLED_FROM, RECYCLED_AT)

    def purge(self, rows: Sequence[FileRow]) -> list[str]:
        """Hard-delete rows with their subtrees; returns blobs to unlink after commit."""
        return self.store.delete_files(self.store.descendants(rows))

    # --- JSON -------------------------------------------------------------------------------
    def time(self, us: int) -> Any:
        fmt = self.rt.switches.time_format
        return us // 1000 if fmt == "epoch_ms" else iso_time(us, millis=fmt == "iso_ms")

    def item(self, row: FileRow, meta: dict[str, str] | None = None) -> dict[str, Any]:
        """One file or folder as list entries and ``/detail`` show it (the full schema is
        unknown: these are the fields the reference names)."""
        meta = self.meta(row) if meta is None else meta
        user_key = self.rt.user_key
        recycled_from = meta.get(RECYCLED_FROM)
        parent_id = row.parent_id if row.parent_id is not None else (
            int(recycled_from) if recycled_from and recycled_from != "None" else None)
        parent = self.store.get(parent_id) if parent_id is not None else None
        item: dict[str, Any] = {
            "id": self.fid(row),
            "fileName": row.name,
            "fileType": FOLDER_TYPE if row.is_folder else meta.get(FILE_TYPE, self.rt.switches.file_type),
            "fileSuffix": "" if row.is_folder else suffix_of(row.name),
            "mimeType": "" if row.is_folder else (mimetypes.guess_type(row.name)[0] or "application/octet-stream"),
            "size": 0 if row.is_folder else row.size,
            "createdTime": self.time(row.created_at),
            "editedTime": self.time(row.updated_at),
            "updateTime": self.time(row.updated_at),
            "parentFolder": [self.fid(parent)] if parent is not None else [],
            "containers": [self.rt.container_id],
            "containerId": self.rt.container_id,
            "recycled": RECYCLED_AT in meta or not self.is_live(row),
            # User objects whose schema is unknown: the user id only
            "owners": [{"userId": user_key}],
            "lastEditor": {"userId": user_key},
            "description": meta.get(DESCRIPTION, ""),
            "properties": {},
            "attachments": [],
        }
        if RECYCLED_AT in meta:
            item["recycledTime"] = self.time(int(meta[RECYCLED_AT]))
        if self.rt.switches.item_sha256 and not row.is_folder:
            item["sha256"] = meta.get(SHA256, "")
        return item

    def items(self, rows: Sequence[FileRow]) -> list[dict[str, Any]]:
        metas = self.store.metadata([r.id for r in rows], public_only=False)
        return [self.item(r, metas.get(r.id, {})) for r in rows]
