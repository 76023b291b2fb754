"""Paths, names and tree lookups of the v3 dialect, over the shared store schema.

v3 addresses objects by *path strings* (``/a/b``) and by hashids of two
separate kinds, ``FileID`` (2) and ``FolderID`` (3).  This server keeps the
v4 store (one ``files`` table for both kinds, one id space), so a folder and
a file never share a numeric id; their hashids still differ by kind exactly
as in Cloudreve 3.  An upload placeholder is a file row carrying the
metadata ``sys:upload_session_id`` (Cloudreve 3's ``upload_session_id``
column) plus a pending entity; listings hide it, name checks see it.

Path handling copies Cloudreve 3's quirks, which differ by call site:
``IsPathExist`` splits the *raw* path (``util.SplitPath``: it must start
with ``/``; ``/a/`` or ``/a//b`` contain an empty element and do not
exist), while ``CreateDirectory`` first applies Go's ``path.Clean``.  The
Go ``path`` functions are re-implemented here because ``posixpath``
disagrees on edge cases (``Base("/a/b/")`` is ``b`` in Go).

Name rules (``ValidateLegalName``): none of ``\\ ? * < " : > / |``, fewer
than 256 UTF-8 bytes, not empty, no trailing space.  Unlike v4, ``.`` and
``..`` are legal names.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import ids
from ..common.goformat import go_time
from ..common.store import FileRow, Store

UPLOAD_SESSION_KEY = "sys:upload_session_id"
RESERVED_CHARS = set('\\?*<":>/|')
POLICY_ID = 1
POLICY_NAME = "Default storage policy"


# --- Go's path package -------------------------------------------------------------
def go_clean(p: str) -> str:
    """``path.Clean``."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def go_dir(p: str) -> str:
    """``path.Dir``: everything up to the last slash, cleaned."""
    return go_clean(p[:p.rfind("/") + 1])


def go_base(p: str) -> str:
    """``path.Base``: the last element after trailing slashes are dropped."""
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p[p.rfind("/") + 1:]


def go_join(*elems: str) -> str:
    """``path.Join``: non-empty elements joined with ``/`` and cleaned ("" if none)."""
    kept = [e for e in elems if e != ""]
    return go_clean("/".join(kept)) if kept else ""


def split_path(p: str) -> list[str]:
    """``util.SplitPath``: ``["/", elem, ...]``; a relative path splits to nothing."""
    if not p or p[0] != "/":
        return []
    if p == "/":
        return ["/"]
    parts = p.split("/")
    parts[0] = "/"
    return parts


def legal_name(name: str) -> bool:
    """``FileSystem.ValidateLegalName``."""
    if any(c in RESERVED_CHARS for c in name):
        return False
    size = len(name.encode("utf-8", "surrogatepass"))
    return 0 < size < 256 and not name.endswith(" ")


# --- lookups ----------------------------------------------------------------------------
class Tree:
    """Read helpers over the store for one server (all synchronous)."""

    def __init__(self, store: Store, codec: ids.IdCodec) -> None:
        self.store = store
        self.conn = store.conn
        self.codec = codec

    def root(self, uid: int) -> FileRow:
        row = self.store.root(uid)
        assert row is not None, "every account has a root folder"
        return row

    def _child(self, parent: FileRow, name: str, ftype: int) -> FileRow | None:
        row = self.store.child(parent.id, name)
        return row if row is not None and row.type == ftype else None

    def child_folder(self, parent: FileRow, name: str) -> FileRow | None:
        return self._child(parent, name, 1)

    def child_file(self, parent: FileRow, name: str) -> FileRow | None:
        """``IsChildFileExist``: files only (placeholders included)."""
        return self._child(parent, name, 0)

    def path_exist(self, uid: int, path: str) -> FileRow | None:
        """``IsPathExist``: the folder at a raw (uncleaned) path, or None."""
        current: FileRow | None = None
        for name in split_path(path):
            if name == "/":
                if current is None:
                    current = self.root(uid)
                continue
            assert current is not None
            current = self.child_folder(current, name)
            if current is None:
                return None
        return current

    def file_of(self, uid: int, fid: int) -> FileRow | None:
        """``GetFilesByIDs([id], uid)``: the user's file (placeholders included)."""
        row = self.store.get(fid)
        return row if row is not None and row.owner_id == uid and row.type == 0 else None

    def folder_of(self, uid: int, fid: int) -> FileRow | None:
        row = self.store.get(fid)
        return row if row is not None and row.owner_id == uid and row.type == 1 else None

    def session_of(self, fid: int) -> str | None:
        """The upload session id of a placeholder (None for a finished file)."""
        row = self.conn.execute("SELECT value FROM metadata WHERE file_id=? AND name=?",
                                (fid, UPLOAD_SESSION_KEY)).fetchone()
        return None if row is None else str(row[0])

    def placeholder(self, uid: int, sid: str) -> FileRow | None:
        """``GetFilesByUploadSession``."""
        for (fid,) in self.conn.execute("SELECT file_id FROM metadata WHERE name=? AND value=?",
                                        (UPLOAD_SESSION_KEY, sid)).fetchall():
            row = self.store.get(int(fid))
            if row is not None and row.owner_id == uid:
                return row
        return None

    def placeholders(self, uid: int | None) -> list[tuple[FileRow, str]]:
        """``GetUploadPlaceholderFiles``: (file, session id) of one user, or all users."""
        out: list[tuple[FileRow, str]] = []
        for fid, sid in self.conn.execute("SELECT file_id, value FROM metadata WHERE name=?",
                                          (UPLOAD_SESSION_KEY,)).fetchall():
            row = self.store.get(int(fid))
            if row is not None and (uid is None or row.owner_id == uid):
                out.append((row, str(sid)))
        return out

    def position(self, folder: FileRow) -> str:
        """``path.Join(Position, Name)`` of a folder: ``/`` for the root, else ``/a/b``."""
        names: list[str] = []
        row: FileRow | None = folder
        while row is not None and row.parent_id is not None:
            names.append(row.name)
            row = self.store.get(row.parent_id)
        return "/" + "/".join(reversed(names))

    def subtree_folders(self, uid: int, folder_ids: list[int]) -> list[FileRow]:
        """``GetRecursiveChildFolder(ids, uid, true)``: the folders and all folders below,
        level by level (a folder reachable twice is listed twice, as in Go)."""
        level = [r for r in (self.folder_of(uid, i) for i in dict.fromkeys(folder_ids)) if r is not None]
        out = list(level)
        while level:
            ids_ = [r.id for r in level]
            level = []
            for i in range(0, len(ids_), 900):
                chunk = ids_[i:i + 900]
                marks = ",".join("?" * len(chunk))
                level += [FileRow(**dict(r)) for r in self.conn.execute(
                    f"SELECT * FROM files WHERE parent_id IN ({marks}) AND type=1 AND owner_id=? ORDER BY id",
                    (*chunk, uid))]
            out += level
        return out

    def files_in(self, folders: list[FileRow]) -> list[FileRow]:
        """``GetChildFilesOfFolders``: every file directly in these folders (each once)."""
        ids_ = list(dict.fromkeys(f.id for f in folders))
        out: list[FileRow] = []
        for i in range(0, len(ids_), 900):
            chunk = ids_[i:i + 900]
            marks = ",".join("?" * len(chunk))
            out += [FileRow(**dict(r)) for r in self.conn.execute(
                f"SELECT * FROM files WHERE parent_id IN ({marks}) AND type=0 ORDER BY id", chunk)]
        return out

    def list_children(self, folder: FileRow) -> tuple[list[FileRow], list[FileRow]]:
        """(folders, finished files) directly inside, each in id order (the DB's natural order)."""
        folders = [FileRow(**dict(r)) for r in self.conn.execute(
            "SELECT * FROM files WHERE parent_id=? AND type=1 ORDER BY id", (folder.id,))]
        files = [FileRow(**dict(r)) for r in self.conn.execute(
            "SELECT * FROM files f WHERE parent_id=? AND type=0 AND NOT EXISTS "
            "(SELECT 1 FROM metadata m WHERE m.file_id=f.id AND m.name=?) ORDER BY id",
            (folder.id, UPLOAD_SESSION_KEY))]
        return folders, files

    # --- JSON -------------------------------------------------------------------------------
    def object_json(self, row: FileRow, parent_path: str) -> dict[str, Any]:
        """``serializer.Object`` of a listing."""
        if row.is_folder:
            return {"id": self.codec.encode(row.id, ids.FOLDER), "name": row.name, "path": parent_path,
                    "thumb": False, "size": 0, "type": "dir", "date": go_time(row.updated_at),
                    "create_date": go_time(row.created_at), "source_enabled": False}
        # thumbnails are generated lazily in 3.8.3: "thumb" is true until a generation failed
        return {"id": self.codec.encode(row.id, ids.FILE), "name": row.name, "path": parent_path,
                "thumb": True, "size": row.size, "type": "file", "date": go_time(row.updated_at),
                "create_date": go_time(row.created_at), "source_enabled": False}

    def policy_json(self, max_size: int) -> dict[str, Any]:
        """``serializer.PolicySummary`` of the default local policy."""
        return {"id": self.codec.encode(POLICY_ID, ids.POLICY), "name": POLICY_NAME, "type": "local",
                "max_size": max_size, "file_type": []}


def query_now() -> str:
    """``time.Now()`` as Go marshals it."""
    return go_time(time.time_ns() // 1000)
