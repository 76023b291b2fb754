"""Search listings: ``GET /file`` on a URI with a query part (``?name=...``).

Follows ``fs/uri.go`` (``SearchParameters``), ``dbfs/navigator.go``
(``search``) and ``inventory/file_utils.go`` (``searchQuery``): below a
``my`` folder the search walks the tree level by level (breadth first), files
and folders mixed, one cursor per level (page token ``"<level>|<inner>"``);
in the trash it covers the top-level items.  Filters: ``name`` (substring;
``"quoted"`` exact substring; ``*`` wildcards; several names AND-ed unless
``use_or``/``name_op_or``), ``type`` (file|folder), ``category``
(image|video|audio|document presets), ``meta_<key>`` (public key, value
substring) and ``exact_meta_<key>``, ``size_gte``/``size_lte`` (Cloudreve
applies both bounds once either is given), ``created_gte``... (Unix s).
Name matching is case-insensitive for ASCII, as on Cloudreve's SQLite backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..common.store import ORDER_COLUMNS, Cursor, FileRow, Store
from . import errors as E
from .navigator import Node
from .pagetoken import decode_token, encode_token

MAX_SEARCHED_FOLDERS = 65535
_EXTS = {
    "image": "bmp iff png gif jpg jpeg psd svg webp heif heic tiff avif 3fr ari arw bay braw crw cr2 cr3 cap "
             "dcs dcr dng drf eip erf fff gpr iiq k25 kdc mdc mef mos mrw nef nrw obm orf pef ptx pxn r3d raf "
             "raw rwl rw2 rwz sr2 srf srw tif x3f",
    "video": "mp4 m3u8 flv avi wmv mkv rm rmvb mov ogv",
    "audio": "mp3 flac ape wav acc ogg m4a",
    "document": "pdf doc docx ppt pptx xls xlsx csv txt md pub",
}
CATEGORY_QUERIES = {k: "type=file&case_folding&use_or&" + "&".join(f"name=*.{e}" for e in v.split())
                    for k, v in _EXTS.items()}


@dataclass
class Spec:
    names: list[str] = field(default_factory=list)
    names_or: bool = False
    ftype: int | None = None
    metadata: list[tuple[str, str, bool]] = field(default_factory=list)  # key, value, exact
    size_gte: int = 0
    size_lte: int = 0
    times: list[tuple[str, str, int]] = field(default_factory=list)  # column, op, microseconds


def parse(raw_query: str) -> Spec | None:
    """``URI.SearchParameters``: None when the query holds no search condition."""
    q = parse_qs(raw_query, keep_blank_values=True)
    if "category" in q:
        category = q["category"][0]
        if category:
            if category not in CATEGORY_QUERIES:
                raise E.PlainError(f"unknown category: {category}")
            q = parse_qs(CATEGORY_QUERIES[category], keep_blank_values=True)
    spec, found = Spec(), False
    if "name" in q:
        spec.names, found = q["name"], bool(q["name"])
    spec.names_or = "name_op_or" in q or "use_or" in q
    if "type" in q:
        spec.ftype = {"file": 0, "folder": 1}.get(q["type"][0], -1)
        found = True
    for key, values in q.items():
        if key.startswith("meta_"):
            spec.metadata.append((key[5:], values[0], False))
            found = True
        elif key.startswith("exact_meta_"):
            spec.metadata.append((key[11:], values[0], True))
            found = True
    for key, attr in (("size_gte", "size_gte"), ("size_lte", "size_lte")):
        if key in q and q[key][0].lstrip("-").isdigit():
            setattr(spec, attr, int(q[key][0]))
            found = True
    for key, column, op in (("created_gte", "created_at", ">="), ("created_lte", "created_at", "<="),
                            ("updated_gte", "updated_at", ">="), ("updated_lte", "updated_at", "<=")):
        if key in q and q[key][0].lstrip("-").isdigit():
            spec.times.append((column, op, int(q[key][0]) * 1_000_000))
            found = True
    return spec if found else None


def _like_contains(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filters(spec: Spec) -> tuple[str, list[Any]]:
    """SQL conditions (AND-ed to the parent condition) and their arguments."""
    clauses: list[str] = []
    args: list[Any] = []
    if spec.names:
        parts = []
        for name in spec.names:
            if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
                parts.append("name LIKE ? ESCAPE '\\'")
                args.append(_like_contains(name.strip('"')))
            elif "*" in name:
                pattern = name.replace("*", "%")
                if pattern[0] != "%" and pattern[-1] != "%":
                    pattern = f"%{pattern}%"
                parts.append("name LIKE ?")
                args.append(pattern)
            else:
                parts.append("name LIKE ? ESCAPE '\\'")
                args.append(_like_contains(name))
        clauses.append("(" + (" OR " if spec.names_or else " AND ").join(parts) + ")")
    if spec.ftype is not None:
        clauses.append("type = ?")
        args.append(spec.ftype)
    for key, value, exact in spec.metadata:
        if exact:
            clauses.append("EXISTS (SELECT 1 FROM metadata m WHERE m.file_id=files.id AND m.name=? AND m.value=?)")
            args += [key, value]
        elif value == "":
            clauses.append("EXISTS (SELECT 1 FROM metadata m WHERE m.file_id=files.id AND m.name=? "
                           "AND m.is_public=1)")
            args.append(key)
        else:
            clauses.append("EXISTS (SELECT 1 FROM metadata m WHERE m.file_id=files.id AND m.name=? "
                           "AND m.is_public=1 AND m.value LIKE ? ESCAPE '\\')")
            args += [key, _like_contains(value)]
    if spec.size_gte > 0 or spec.size_lte > 0:
        clauses.append("size >= ? AND size <= ?")
        args += [spec.size_gte, spec.size_lte]
    for column, op, bound in spec.times:
        clauses.append(f"{column} {op} ?")
        args.append(bound)
    return " AND ".join(clauses), args


def query_page(store: Store, parent_ids: list[int] | None, owner_id: int, spec: Spec, order_by: str,
               desc: bool, limit: int, cursor: Cursor | None) -> tuple[list[FileRow], Cursor | None]:
    """One cursor page of matches among the children of ``parent_ids`` (None = trash)."""
    column = ORDER_COLUMNS.get(order_by, "id")
    cond, args = filters(spec)
    if parent_ids is None:
        sql = "SELECT * FROM files WHERE parent_id IS NULL AND owner_id=? AND name != ''"
        params: list[Any] = [owner_id]
    else:
        if not parent_ids:
            return [], None
        sql = f"SELECT * FROM files WHERE parent_id IN ({','.join('?' * len(parent_ids))})"
        params = list(parent_ids)
    if cond:
        sql += " AND " + cond
        params += args
    op, direction = ("<", "DESC") if desc else (">", "ASC")
    if cursor is not None:
        if column == "id":
            sql += f" AND id {op} ?"
            params.append(cursor.last_id)
        else:
            sql += f" AND ({column}, id) {op} (?, ?)"
            params += [cursor.last_value, cursor.last_id]
    sql += (f" ORDER BY {column} {direction}, id {direction}" if column != "id" else f" ORDER BY id {direction}")
    sql += " LIMIT ?"
    params.append(limit + 1)
    rows = [FileRow(*r) for r in store.conn.execute(sql, params)]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = Cursor(False, last.id, getattr(last, column) if column != "id" else None)
    return rows[:limit], next_cursor


def run(ctx: Any, parent: Any, spec: Spec, page_size: int, order_by: str, desc: bool,
        token: str) -> tuple[list[Any], str | None, bool]:
    """Search below ``parent`` (a Node; None = trash root).

    Returns (result nodes, next page token or None, recursion limit reached).
    """
    store = ctx.state.store
    owner = ctx.user.id
    if parent is None:
        cursor = decode_token(ctx, token, order_by) if token else None
        rows, nxt = query_page(store, None, owner, spec, order_by, desc, page_size, cursor)
        nodes = [Node(r, "trash", "cloudreve://trash", [r.name]) for r in rows]
        return nodes, encode_token(ctx, nxt, order_by) if nxt else None, False
    start_level, inner = 0, ""
    if token:
        level_s, sep, inner = token.partition("|")
        if not sep or not level_s.isdigit():
            raise E.wrap("failed to get children", E.PlainError("invalid page token"))
        start_level = int(level_s)
    levels: list[dict[int, Any]] = [{parent.row.id: parent}]
    walked = 1

    def step(level: int) -> bool:
        """Collect the folders one level deeper; True when there are none."""
        nonlocal walked
        below: dict[int, Any] = {}
        for row in store.children(list(levels[level])):
            if row.is_folder and walked + len(below) <= MAX_SEARCHED_FOLDERS:
                below[row.id] = levels[level][row.parent_id].child(row)
        walked += len(below)
        levels.append(below)
        return not below

    for level in range(start_level):
        if step(level):
            return [], None, False
    found: list[Any] = []
    stop = False
    while len(found) < page_size and walked <= MAX_SEARCHED_FOLDERS:
        cursor = decode_token(ctx, inner, order_by) if inner else None
        rows, nxt = query_page(store, list(levels[start_level]), owner, spec, order_by, desc,
                               page_size - len(found), cursor)
        # every row found has a parent: the search walks below its scope's folders
        found += [levels[start_level][r.parent_id].child(r) for r in rows if r.parent_id is not None]
        inner = encode_token(ctx, nxt, order_by) if nxt else ""
        if not inner:
            if len(found) == page_size:
                start_level += 1
                break
            if step(start_level):
                stop = True
                break
            start_level += 1
    limited = walked > MAX_SEARCHED_FOLDERS
    next_token = None if limited or stop else f"{start_level}|{inner}"
    return found, next_token, limited
