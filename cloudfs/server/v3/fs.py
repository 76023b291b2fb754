"""Tree operations of the v3 dialect (``pkg/filesystem/manage.go``,
``service/explorer/{directory,objects,file}.go`` @3.8.3).

Listing, mkdir -p, empty-file creation, permanent delete (v3 has no
recycle bin), move, copy, rename and the property summary.  The semantics
are Cloudreve 3's, including its oddities:

* objects are picked by id *and* a source folder: move and copy silently
  skip ids that are not directly in ``src_dir``; undecodable ids are dropped;
  unknown ids make delete/move/copy succeed doing nothing;
* statements are not wrapped in one transaction: a move updates the folders,
  then the files, each UPDATE atomic on its own; a copy stops at the first
  name clash and keeps what it already created;
* a moved or renamed *file* gets a new ``date`` (gorm ``Updates``), a renamed
  *folder* does not (``UpdateColumn``);
* the root in a delete list is skipped, but its sub-folders are deleted
  (and the files directly in the root are kept);
* folder properties are cached for 300 s (``folder_props_timeout``), with the
  first caller's ``path`` and ``query_date``;
* a property query for an id that decodes but is not the user's makes
  Cloudreve index an empty slice: gin's recovery answers HTTP 500 with no body
  (:class:`Panic`).

Deliberate deviations (the store keeps one name space per folder and must not
corrupt): a file and a folder cannot share a name (Cloudreve 3 allows it;
here the second one is 40004 "Object existed"); moving a folder into its own
descendant is refused like moving it into itself (Cloudreve 3 would detach
the subtree); renaming the root is 40053 "Root protected".
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..common import ids
from ..common.db import User, now_us
from ..common.goformat import go_time
from ..common.store import FileRow
from . import errors as E
from .tree import POLICY_NAME, go_base, go_clean, go_dir, legal_name, query_now

if TYPE_CHECKING:
    from .runtime import V3Runtime

FOLDER_PROPS_TTL = 300


class Panic(Exception):
    """A Go runtime panic inside a handler: gin's Recovery answers a bare HTTP 500."""


def _marks(items: list[int]) -> str:
    return ",".join("?" * len(items))


# --- listing / mkdir / create ------------------------------------------------------
def list_directory(rt: V3Runtime, user: User, path: str) -> dict[str, Any]:
    tree = rt.tree
    folder = tree.path_exist(user.id, path)
    if folder is None:
        raise E.path_not_exist()
    parent_path = tree.position(folder)
    folders, files = tree.list_children(folder)
    objects = [tree.object_json(r, parent_path) for r in folders + files]
    return {"parent": rt.state.codec.encode(folder.id, ids.FOLDER), "objects": objects,
            "policy": tree.policy_json(rt.state.config.max_file_size)}


def create_directory(rt: V3Runtime, user: User, full: str) -> FileRow:
    """``FileSystem.CreateDirectory``: mkdir -p, idempotent for existing folders."""
    if full in (".", ""):
        raise E.root_protected()
    tree = rt.tree
    if full == "/":
        return tree.root(user.id)
    full = go_clean(full)
    base = go_dir(full)
    name = go_base(full).rstrip(" ")
    if not legal_name(name):
        raise E.illegal_name()
    parent = tree.path_exist(user.id, base)
    if parent is None:
        parent = create_directory(rt, user, base)
    if tree.child_file(parent, name) is not None:
        raise E.file_existed()
    with rt.state.db.tx():
        # FirstOrCreate: an existing folder of that name is simply returned
        return rt.state.store.create_folder(parent, name, None)


def add_file_row(rt: V3Runtime, user: User, virtual_path: str, name: str,
                 session_id: str | None) -> tuple[FileRow, FileRow]:
    """``GenericAfterUpload``: parent folders, clash checks, the file record (size 0)."""
    folder = create_directory(rt, user, virtual_path)
    existing = rt.tree.child_file(folder, name)
    if existing is not None:
        if rt.tree.session_of(existing.id) is not None:
            raise E.upload_session_existed()
        raise E.file_existed()
    try:
        with rt.state.db.tx():
            row = rt.state.store.create_file(folder, name, None)
            if session_id is not None:
                rt.state.store.upsert_metadata(row.id, {"sys:upload_session_id": session_id})
    except sqlite3.IntegrityError as exc:  # a folder of that name (see the module docstring)
        raise E.file_existed(str(exc)) from None
    return folder, row


def create_file(rt: V3Runtime, user: User, path: str) -> None:
    """``POST /file/create``: an empty file, creating missing parents."""
    if not legal_name(go_base(path)):
        raise E.illegal_name()
    add_file_row(rt, user, go_dir(path), go_base(path), None)


# --- delete -------------------------------------------------------------------------------------
def delete(rt: V3Runtime, user: User, dirs: list[int], files: list[int]) -> None:
    """``FileSystem.Delete``: folders recursively plus files, permanently."""
    tree, store = rt.tree, rt.state.store
    folders: list[FileRow] = []
    targets: list[FileRow] = []
    if dirs:
        folders = tree.subtree_folders(user.id, dirs)
        for i, folder in enumerate(folders):
            if folder.parent_id is None:  # the root itself is never deleted (first hit only)
                del folders[i]
                break
        targets += tree.files_in(folders)
    if files:
        targets += [r for r in (tree.file_of(user.id, f) for f in dict.fromkeys(files)) if r is not None]
    if len({t.id for t in targets}) != len(targets):
        # a file listed directly and inside a listed folder: DeleteFiles' second row update
        # finds nothing ("file size is dirty") and the whole transaction rolls back
        raise E.V3Error(E.DB_ERROR, "Failed to delete object records", "file size is dirty")
    sessions = [sid for sid in (tree.session_of(t.id) for t in targets) if sid is not None]
    unique_folders = list({f.id: f for f in folders}.values())
    with rt.state.db.tx():
        stale = store.delete_files(targets + unique_folders)
        rt.kv.delete(*(f"callback_{sid}" for sid in sessions))
    store.unlink_blobs(stale)


# --- move / rename / copy ---------------------------------------------------------------
def move(rt: V3Runtime, user: User, dirs: list[int], files: list[int], src: str, dst: str) -> None:
    tree, conn = rt.tree, rt.state.db.conn
    dst_row = tree.path_exist(user.id, dst)
    src_row = tree.path_exist(user.id, src)
    if dst_row is None or src_row is None:
        raise E.path_not_exist()
    for fid in dirs:
        folder = tree.folder_of(user.id, fid)
        moving = folder is not None and folder.parent_id == src_row.id
        if fid == dst_row.id or moving and rt.state.store.is_descendant_or_self(dst_row, fid):
            raise E.file_existed("cannot move a folder into itself")
    now = now_us()
    for ftype, chosen in ((1, dirs), (0, files)):
        if not chosen:
            continue
        try:  # one UPDATE per kind, each atomic on its own (no surrounding transaction)
            conn.execute(f"UPDATE files SET parent_id=?, updated_at=? WHERE id IN ({_marks(chosen)}) "
                         "AND owner_id=? AND parent_id=? AND type=?",
                         (dst_row.id, now, *chosen, user.id, src_row.id, ftype))
        except sqlite3.IntegrityError as exc:
            raise E.file_existed(str(exc)) from None


def rename(rt: V3Runtime, user: User, dirs: list[int], files: list[int], new_name: str) -> None:
    if not legal_name(new_name):
        raise E.illegal_name()
    tree, conn = rt.tree, rt.state.db.conn
    if files:
        row = tree.file_of(user.id, files[0])
        if row is None:
            raise E.path_not_exist()
        args: tuple[object, ...]
        sql, args = "UPDATE files SET name=?, updated_at=? WHERE id=?", (new_name, now_us(), row.id)
    elif dirs:
        row = tree.folder_of(user.id, dirs[0])
        if row is None:
            raise E.path_not_exist()
        if row.parent_id is None:
            raise E.root_protected()
        sql, args = "UPDATE files SET name=? WHERE id=?", (new_name, row.id)
    else:
        raise E.path_not_exist()
    try:
        conn.execute(sql, args)
    except sqlite3.IntegrityError as exc:
        raise E.file_existed(str(exc)) from None


def copy(rt: V3Runtime, user: User, dirs: list[int], files: list[int], src: str, dst: str) -> None:
    tree = rt.tree
    dst_row = tree.path_exist(user.id, dst)
    src_row = tree.path_exist(user.id, src)
    if dst_row is None or src_row is None:
        raise E.path_not_exist()
    try:
        if dirs:
            _copy_folder(rt, user, dirs[0], dst_row)
        if files:
            chosen = [r for r in (tree.file_of(user.id, f) for f in dict.fromkeys(files))
                      if r is not None and r.parent_id == src_row.id]
            for row in sorted(chosen, key=lambda r: r.id):
                _copy_file(rt, row, dst_row)
    except sqlite3.IntegrityError as exc:
        raise E.object_not_exist(str(exc)) from None


def _copy_file(rt: V3Runtime, row: FileRow, parent: FileRow) -> None:
    if rt.tree.session_of(row.id) is not None:
        return  # File.CanCopy: placeholders of running uploads are skipped
    with rt.state.db.tx():  # one record at a time, like gorm's Create
        rt.state.store.copy_level([row], {row.parent_id if row.parent_id is not None else -1: parent})


def _copy_folder(rt: V3Runtime, user: User, folder_id: int, dst: FileRow) -> None:
    """``Folder.CopyFolderTo``: the whole subtree (taken before copying), then its files."""
    subtree = rt.tree.subtree_folders(user.id, [folder_id])
    if subtree and subtree[0].parent_id is None:
        # Cloudreve 3 would copy its root as a folder named "/": refused here (no such name)
        raise E.object_not_exist("cannot copy the root folder")
    new_of: dict[int, FileRow] = {}
    conn = rt.state.db.conn
    for folder in subtree:
        parent = dst if folder.id == folder_id else new_of.get(folder.parent_id or -1)
        if parent is None:
            raise E.object_not_exist("Failed to get parent folder")
        now = now_us()
        cur = conn.execute("INSERT INTO files(owner_id, parent_id, name, type, created_at, updated_at) "
                           "VALUES(?,?,?,1,?,?)", (dst.owner_id, parent.id, folder.name, now, now))
        created = rt.state.store.get(int(cur.lastrowid or 0))
        assert created is not None
        new_of[folder.id] = created
    for row in rt.tree.files_in(subtree):
        _copy_file(rt, row, new_of[row.parent_id or -1])


# --- properties ---------------------------------------------------------------------------
def properties(rt: V3Runtime, user: User, raw_id: str, is_folder: bool, trace_root: bool) -> dict[str, Any]:
    """``ItemPropertyService.GetProperty``."""
    codec, tree = rt.state.codec, rt.tree
    props: dict[str, Any] = {"created_at": "", "updated_at": "", "policy": "", "size": 0,
                             "child_folder_num": 0, "child_file_num": 0, "path": "",
                             "query_date": query_now()}
    if not is_folder:
        fid = codec.decode(raw_id, ids.FILE)
        if fid is None:
            raise E.V3Error(E.NOT_FOUND, "", "mismatched ID type.")
        row = tree.file_of(user.id, fid)
        if row is None:
            raise Panic("index out of range [0] with length 0")
        props.update(created_at=go_time(row.created_at), updated_at=go_time(row.updated_at),
                     policy=POLICY_NAME, size=row.size)
        if trace_root and row.parent_id is not None:
            parent = rt.state.store.get(row.parent_id)
            assert parent is not None
            props["path"] = tree.position(parent)
        return props
    fid = codec.decode(raw_id, ids.FOLDER)
    if fid is None:
        raise E.V3Error(E.NOT_FOUND, "", "mismatched ID type.")
    folder = tree.folder_of(user.id, fid)
    if folder is None:
        raise Panic("index out of range [0] with length 0")
    cached = rt.kv.get(f"folder_props_{fid}")
    if isinstance(cached, dict):
        cached.update(created_at=go_time(folder.created_at), updated_at=go_time(folder.updated_at))
        return cached
    props.update(created_at=go_time(folder.created_at), updated_at=go_time(folder.updated_at))
    subtree = tree.subtree_folders(user.id, [fid])
    files = tree.files_in(subtree)
    props.update(child_folder_num=len(subtree) - 1, child_file_num=len(files),
                 size=sum(f.size for f in files))
    if trace_root and folder.parent_id is not None:
        parent = rt.state.store.get(folder.parent_id)
        assert parent is not None
        props["path"] = tree.position(parent)
    rt.kv.set(f"folder_props_{fid}", props, FOLDER_PROPS_TTL)
    return props
