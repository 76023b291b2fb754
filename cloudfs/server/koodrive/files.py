"""Listing, detail, directory creation and rename (``/files/{type}``,
``/files/{fileId}/detail``, ``/directory``, ``/files/rename/{fileId}``).

Listings page by an opaque ``nextCursor`` (empty on the last page).  The
cursor carries the offset reached and the sort, so a page after a change in
the folder may skip or repeat an entry, as cursor listings of real drives may.
With the ``short_pages`` switch, pages come back shorter than ``pageSize`` and
every third one empty while ``nextCursor`` goes on: what the reference warns
clients about.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..db import now_us
from ..store import FileRow
from . import errors as E
from .context import KooCtx
from .tree import DESCRIPTION, FILE_TYPE, RECYCLED_AT, check_name, parse_time, suffix_of

SORT_KEYS = {1: "name", 2: "size", 3: "created", 4: "modified", 5: "recycled", 6: "format"}


def _int(body: dict[str, Any], field: str, default: int | None = None) -> int | None:
    value = body.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool):
        raise E.bad(f"{field} is invalid")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise E.bad(f"{field} is invalid") from None


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(data, dict) or not isinstance(data.get("o"), int) or data["o"] < 0:
            raise ValueError
        return data
    except (ValueError, TypeError):
        raise E.bad("pageCursor is invalid") from None


def _sort(kc: KooCtx, rows: list[FileRow], sort_type: int, desc: bool) -> list[FileRow]:
    recycled_at: dict[int, str] = {}
    if sort_type == 5:
        metas = kc.tree.store.metadata([r.id for r in rows], public_only=False)
        recycled_at = {i: m.get(RECYCLED_AT, "0") for i, m in metas.items()}
    keys = {
        1: lambda r: (r.name.lower(), r.name),
        2: lambda r: (r.size, r.name),
        3: lambda r: (r.created_at, r.name),
        4: lambda r: (r.updated_at, r.name),
        5: lambda r: (int(recycled_at.get(r.id, "0")), r.name),
        6: lambda r: (suffix_of(r.name).lower(), r.name),
    }
    rows = sorted(rows, key=keys[sort_type], reverse=desc)
    if kc.rt.switches.folders_first:
        rows = [r for r in rows if r.is_folder] + [r for r in rows if not r.is_folder]
    return rows


async def list_files(kc: KooCtx, type: str) -> dict[str, Any]:
    if type not in ("0", "1"):
        raise E.bad("type is invalid")
    body, tree, sw = kc.body, kc.tree, kc.rt.switches
    tree.check_container(body)
    page = body.get("pageInfo") or {}
    sort = body.get("sortInfo") or {}
    if not isinstance(page, dict) or not isinstance(sort, dict):
        raise E.bad("pageInfo/sortInfo is invalid")
    size = _int(page, "pageSize", 100) or 0
    if size < 1:
        raise E.bad("pageSize is invalid")
    if size > sw.max_page_size:
        if sw.page_size_over_max == "reject":
            raise E.bad("pageSize is too large")
        size = sw.max_page_size
    sort_type = _int(sort, "sortType", 1) or 1
    direction = _int(sort, "sortDirection", 1)
    if sort_type not in SORT_KEYS or direction not in (1, 2):
        raise E.bad("sortInfo is invalid")
    parent_raw = body.get("parentFileId", "root")
    if type == "0":
        parent = tree.row(kc.me, parent_raw, folder=True)
        rows = tree.children(parent)
    elif parent_raw in ("root", "", None):
        rows = tree.recycled(kc.me)
    else:
        parent = tree.row(kc.me, parent_raw, live=False, folder=True)
        if tree.is_live(parent):
            raise E.KooError(E.NOT_RECYCLED)
        rows = tree.children(parent)
    file_type = body.get("fileType")
    if file_type not in (None, ""):
        metas = tree.store.metadata([r.id for r in rows], public_only=False)
        rows = [r for r in rows if str(file_type) == (
            "10" if r.is_folder else metas.get(r.id, {}).get(FILE_TYPE, sw.file_type))]
    name_filter = body.get("fileName")
    if isinstance(name_filter, str) and name_filter:
        rows = [r for r in rows if name_filter.lower() in r.name.lower()]
    rows = _sort(kc, rows, sort_type, direction == 2)
    cursor_raw = page.get("pageCursor") or ""
    # sibling list pages document "0" as the first cursor
    cursor = _decode_cursor(cursor_raw) if cursor_raw not in ("", "0") else {"o": 0, "n": 0}
    offset, served = cursor["o"], int(cursor.get("n", 0))
    take = size
    if sw.short_pages and offset < len(rows):
        # every third page empty, the others about half full: the end is only nextCursor == ""
        take = 0 if served % 3 == 1 else max(1, size // 2)
    chosen = rows[offset:offset + take]
    reached = offset + len(chosen)
    next_cursor = _encode_cursor({"o": reached, "n": served + 1}) if reached < len(rows) else ""
    return {"category": int(type), "nextCursor": next_cursor, "files": tree.items(chosen)}


async def detail(kc: KooCtx, file_id: str) -> dict[str, Any]:
    kc.tree.check_container(kc.body)
    row = kc.tree.row(kc.me, file_id, live=False)
    return kc.tree.item(row)


async def create_directory(kc: KooCtx) -> dict[str, Any]:
    body, tree = kc.body, kc.tree
    tree.check_container(body)
    name = check_name(body.get("fileName"))
    if str(body.get("fileType", "10")) != "10":
        raise E.bad("fileType must be 10")
    parents = body.get("parentFolder") or []
    if not isinstance(parents, list) or len(parents) > 1:
        raise E.bad("parentFolder is invalid")
    parent = tree.row(kc.me, parents[0] if parents else "root", folder=True)
    mode = tree.rename_mode(body, "renameMode")
    if mode == 4:
        raise E.bad("renameMode is invalid")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 512):
        raise E.bad("description is invalid")
    tree.check_depth(parent)
    store = tree.store
    with store.db.tx():
        final = tree.free_name(parent, name, True, mode)
        row = store.create_folder(parent, final, {DESCRIPTION: description} if description else None)
        created, edited = parse_time(body.get("createdTime")), parse_time(body.get("editedTime"))
        if created or edited:
            store.conn.execute("UPDATE files SET created_at=?, updated_at=? WHERE id=?",
                               (created or row.created_at, edited or row.updated_at, row.id))
        store.touch(parent.id)
        fresh = store.get(row.id)
    assert fresh is not None
    return tree.item(fresh)


async def rename(kc: KooCtx, file_id: str) -> dict[str, Any]:
    body, tree = kc.body, kc.tree
    tree.check_container(body)
    name = check_name(body.get("name"), "name", kc.rt.switches.rename_max_len)
    mode = tree.rename_mode(body, "renameMode")
    if mode == 4:
        raise E.bad("renameMode is invalid")
    row = tree.row(kc.me, file_id)
    if row.parent_id is None:
        raise E.bad("the root cannot be renamed")
    if row.name == name:
        return {}
    parent = tree.store.get(row.parent_id)
    assert parent is not None
    with tree.store.db.tx():
        final = tree.free_name(parent, name, row.is_folder, mode)
        # a rename is not an edit: editedTime stays
        tree.conn.execute("UPDATE files SET name=? WHERE id=?", (final, row.id))
        tree.store.touch(parent.id, now_us())
    return {}
