"""File operations with Cloudreve's semantics (``pkg/filemanager/fs/dbfs/manage.go``).

Listing, stat, create (mkdir -p), rename, move/copy, soft and hard delete,
restore from trash, metadata patches, force unlock, empty trash.  Batch
calls follow Cloudreve's two-phase shape: per-URI lookup/permission failures
are collected into a 40081 ``aggregated_error`` (valid items still proceed);
then all valid items are locked together and changed in one transaction, so
a lock conflict (40073), a name clash (40004) or a quota failure (40051) is
all-or-nothing and reported for the whole call.

Every function here is synchronous: they run on the event loop between
awaits, which serialises them against each other.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

from ..common import ids
from ..common.goformat import go_time
from ..common.gourl import URIError
from ..common.store import FileRow
from . import errors as E
from . import eventemit, metadata, pagetoken, search, views
from .locks import LockRequest, LockSession
from .state import Ctx, V4State
from .navigator import (
    CREATE,
    DELETE,
    LIST,
    LOCK,
    RENAME,
    RESTORE,
    SOFT_DELETE,
    UPDATE_METADATA,
    Node,
    WalkError,
    check_fs,
    get_target,
    lock_ns,
    render,
    walk,
)
from .uris import CloudreveURI, join_uri, validate_name

DEFAULT_PAGE_SIZE = 100


def parse_uri(raw: str, msg: str = "unknown uri") -> CloudreveURI:
    try:
        return CloudreveURI.parse(raw)
    except URIError as exc:
        raise E.AppError(E.PARAM_ERR, msg, str(exc)) from None


def parse_uris(raws: list[str]) -> list[CloudreveURI]:
    return [parse_uri(r) for r in raws]


def _lock_req(ctx: Ctx, node: Node, zero_depth: bool = False) -> LockRequest:
    return LockRequest(lock_ns(ctx, node.fs), node.lock_path, node.row.type, zero_depth)


def _after_commit(ctx: Ctx, stale: list[str]) -> None:
    ctx.state.store.unlink_blobs(stale)


# --- listing ------------------------------------------------------------------
def list_files(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    uri = parse_uri(args["uri"])
    fs = check_fs(uri, LIST)
    try:
        parent = walk(ctx, uri)
    except WalkError as exc:
        raise E.wrap("parent not exist", exc.err) from None
    if parent is not None and (not parent.row.is_folder or fs == "trash"):
        # the trash is flat: its items cannot be entered
        raise E.wrap("failed to get children", E.wrap("failed to get children", E.path_not_exist()))
    cfg = ctx.state.config
    page_size = args["page_size"] if args["page_size"] > 0 else DEFAULT_PAGE_SIZE
    page_size = min(page_size, cfg.max_page_size)
    order_by, direction = args["order_by"], args["order_direction"]
    assert ctx.user is not None
    spec = search.parse(uri.url.raw_query) if uri.url.raw_query else None
    caps = views.navigator_props(fs == "trash", cfg.max_page_size)
    limited = False
    if spec is not None:
        nodes, next_token, limited = search.run(ctx, parent, spec, page_size, order_by,
                                                direction == "desc", args["next_page_token"])
        if fs == "my":  # the "my" navigator offers no ordering options while searching
            caps["order_by_options"] = caps["order_direction_options"] = None
        else:
            caps["order_by_options"] = ["created_at"]
    else:
        cursor = pagetoken.decode_token(ctx, args["next_page_token"], order_by) if args["next_page_token"] else None
        rows, next_cursor = ctx.state.store.list_page(parent.row.id if parent else None, ctx.user.id,
                                                      order_by, direction == "desc", page_size, cursor)
        nodes = [parent.child(r) if parent is not None else Node(r, "trash", "cloudreve://trash", [r.name])
                 for r in rows]
        next_token = pagetoken.encode_token(ctx, next_cursor, order_by) if next_cursor is not None else None
    meta = ctx.state.store.metadata([n.row.id for n in nodes])
    files = [render(ctx, node, meta[node.row.id], capability=caps["capability"]) for node in nodes]
    pagination: dict[str, Any] = {"page": 0, "page_size": page_size}
    if next_token:
        pagination["next_token"] = next_token
    pagination["is_cursor"] = True
    out: dict[str, Any] = {
        "files": files,
        "parent": (render(ctx, parent, None, capability=caps["capability"]) if parent is not None
                   else views.empty_file_response()),
        "pagination": pagination,
        "props": caps,
        "context_hint": str(uuid.uuid4()),
    }
    if limited:
        out["recursion_limit_reached"] = True
    out["mixed_type"] = spec is not None
    if parent is not None:
        out["storage_policy"] = views.storage_policy(ctx.state.codec, cfg.max_file_size, cfg.chunk_concurrency)
    view: dict[str, Any] = {"page_size": page_size}
    if order_by:
        view["order"] = order_by
    if direction:
        view["order_direction"] = direction
    if fs == "trash":
        view["view"] = "list"
        view["columns"] = [{"type": 0}, {"type": 2}, {"type": 8}, {"type": 7}]
    else:
        view.update({"view": "grid", "thumbnail": True})
    out["view"] = view
    return out


# --- stat ---------------------------------------------------------------------
def _uri_of_row(ctx: Ctx, row: FileRow) -> str:
    top, chain = ctx.state.store.top_ancestor(row)
    names = [r.name for r in chain[1:]]
    if top.name == "":
        return join_uri("cloudreve://my", names) if names else "cloudreve://my/"
    return join_uri("cloudreve://trash", [top.name] + names)


def file_info(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    uri_s: str = args["uri"]
    if args["id"] and not uri_s:
        fid = ctx.state.codec.decode(args["id"], ids.FILE)
        if fid is None:
            raise E.AppError(E.PARAM_ERR, "unknown file id")
        row = ctx.state.store.get(fid)
        if row is None:
            raise E.wrap("failed to traverse file", E.PlainError(E.ENT_NOT_FOUND))
        if ctx.user is None or row.owner_id != ctx.user.id:
            raise E.wrap("failed to traverse file", E.owner_only("only file owner can traverse file's uri"))
        uri_s = _uri_of_row(ctx, row)
    if not uri_s:
        raise E.AppError(E.PARAM_ERR, "uri is required")
    uri = parse_uri(uri_s)
    try:
        node = get_target(ctx, uri)
    except (E.AppError, E.Wrapped, E.PlainError) as exc:
        raise E.wrap("failed to get file", exc) from None
    if node is None or node.is_root:
        raise E.wrap("failed to get file", E.not_supported("cannot operate root file"))
    extra: dict[str, Any] = {}
    if args["extended"]:
        extra["extended_info"] = _extended_info(ctx, node)
    if args["folder_summary"] and node.row.is_folder:
        extra["folder_summary"] = _folder_summary(ctx, node)
    meta = ctx.state.store.metadata([node.row.id])[node.row.id]
    return render(ctx, node, meta, extra=extra)


def _extended_info(ctx: Ctx, node: Node) -> dict[str, Any]:
    store, codec, cfg = ctx.state.store, ctx.state.codec, ctx.state.config
    policy = views.storage_policy(codec, cfg.max_file_size, cfg.chunk_concurrency)
    entities = store.entities_of(node.row.id)
    out: dict[str, Any] = {"storage_policy": policy, "storage_used": sum(e.size for e in entities)}
    if entities:
        owner = ctx.user
        out["entities"] = [
            dict({"id": codec.entity(e.id), "size": e.size, "type": e.type,
                  "created_at": go_time(e.created_at), "storage_policy": policy},
                 **({"created_by": views.user_redacted(codec, owner)} if owner and e.created_by else {}))
            for e in entities]
    return out


def _folder_summary(ctx: Ctx, node: Node) -> dict[str, Any]:
    limit = ctx.state.config.max_walked_files
    rows = ctx.state.store.descendants([node.row], limit)
    completed = len(rows) <= limit
    rows = rows[1:limit]
    sizes = 0
    for r in rows:
        if not r.is_folder:
            sizes += sum(e.size for e in ctx.state.store.entities_of(r.id))
    return {"size": sizes, "files": sum(1 for r in rows if not r.is_folder),
            "folders": sum(1 for r in rows if r.is_folder), "completed": completed,
            "calculated_at": go_time(time.time_ns() // 1000)}


# --- create / rename ------------------------------------------------------------
def create(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    uri = parse_uri(args["uri"])
    ftype = views_type(args["type"])
    meta: dict[str, str] | None = args["metadata"]
    if meta is not None:
        metadata.validate(metadata.from_map(meta), ctx.state.codec)
    check_fs(uri, CREATE, LOCK)
    try:
        node = walk(ctx, uri)
        assert node is not None
        if node.row.type == ftype:
            if args["err_on_conflict"]:
                raise E.file_existed()
            return render(ctx, node, None)
        raise E.file_existed(f"object with the same name but different type {node.row.type} already exist")
    except WalkError as exc:
        if exc.ancestor is None:
            raise E.wrap("failed to get ancestor", exc.err) from None
        ancestor = exc.ancestor
    session = LockSession()
    ctx.state.locks.acquire(session, "create", [LockRequest(lock_ns(ctx, "my"), uri.path(), ftype)])
    try:
        return render(ctx, create_chain(ctx, ancestor, uri.elements, ftype, meta), None)
    finally:
        ctx.state.locks.release(session)


def views_type(value: str) -> int:
    return 1 if value == "folder" else 0


def create_chain(ctx: Ctx, ancestor: Node, desired: list[str], ftype: int,
                 meta: dict[str, str] | None) -> Node:
    """Create the missing tail of ``desired`` below ``ancestor`` (each step commits)."""
    store = ctx.state.store
    for i in range(len(ancestor.elements), len(desired)):
        name = desired[i]
        last = i == len(desired) - 1
        if not ancestor.row.is_folder:
            raise E.not_supported("parent must be a valid folder")
        problem = validate_name(name)
        if problem:
            raise E.illegal_name(problem)
        with ctx.state.db.tx():
            if not last or ftype == 1:
                row = store.create_folder(ancestor.row, name, meta if last else None)
            else:
                try:
                    row = store.create_file(ancestor.row, name, meta)
                except sqlite3.IntegrityError as exc:
                    raise E.file_existed(str(exc)) from None
        eventemit.created(ctx, row)
        ancestor = ancestor.child(row)
    return ancestor


def rename(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    uri = parse_uri(args["uri"])
    node = get_target(ctx, uri, RENAME, LOCK)
    assert node is not None
    if node.is_root:
        raise E.not_supported("cannot modify root folder")
    new_name: str = args["new_name"]
    problem = validate_name(new_name)
    if problem:
        raise E.illegal_name(problem)
    before = eventemit.locate(ctx, node.row) if eventemit.active(ctx) else None
    session = LockSession()
    ctx.state.locks.acquire(session, "rename", [_lock_req(ctx, node)])
    try:
        with ctx.state.db.tx():
            try:
                row = ctx.state.store.rename(node.row, new_name)
            except sqlite3.IntegrityError as exc:
                raise E.file_existed(str(exc)) from None
            if not row.is_folder and _ext(new_name) != _ext(node.row.name):
                ctx.state.store.remove_metadata(row.id, "thumb:disabled")
    finally:
        ctx.state.locks.release(session)
    if before is not None:
        eventemit.renamed(ctx, before, row.name)
    renamed = Node(row, node.fs, node.prefix, node.elements[:-1] + [row.name], node.caps)
    return render(ctx, renamed, None)


def _ext(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 or (dot == 0 and len(name) > 1) else ""


# --- move / copy ------------------------------------------------------------------
def _can_move(src_fs: str, dst_fs: str, copy: bool) -> bool:
    if copy:
        return src_fs == dst_fs == "my"
    if src_fs == "my":
        return dst_fs in ("my", "trash")
    return src_fs == "trash" and dst_fs == "my"


def move_copy(ctx: Ctx, uris: list[CloudreveURI], dst: CloudreveURI, copy: bool) -> None:
    check_fs(dst, LOCK)
    try:
        destination = walk(ctx, dst)
    except WalkError as exc:
        raise E.wrap("faield to get destination folder", exc.err) from None
    if destination is None or not destination.row.is_folder:
        raise E.not_supported("destination must be a valid folder")
    store = ctx.state.store
    ae = E.AggregateError()
    targets: list[Node] = []
    for uri in uris:
        key = uri.string()
        try:
            check_fs(uri, LOCK)
            if not _can_move(uri.filesystem, dst.filesystem, copy):
                raise E.not_supported(f"cannot move or copy file form {uri.string()} to {dst.string()}")
            try:
                node = walk(ctx, uri)
            except WalkError as exc:
                raise E.wrap("failed to get file", exc.err) from None
            if node is None or node.is_root:
                raise E.not_supported("cannot move root folder")
            if node.row.is_folder and store.is_descendant_or_self(destination.row, node.row.id):
                raise E.not_supported("cannot move or copy folder to itself or its descendant")
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            ae.add(key, exc)
            continue
        if all(t.row.id != node.row.id for t in targets):
            targets.append(node)
    if targets:
        _move_copy_targets(ctx, targets, destination, copy)
    err = ae.aggregate()
    if err is not None:
        raise err


def _move_copy_targets(ctx: Ctx, targets: list[Node], destination: Node, copy: bool) -> None:
    store, db = ctx.state.store, ctx.state.db
    meta = store.metadata([t.row.id for t in targets])
    dst_ns = lock_ns(ctx, destination.fs)
    base = destination.lock_path.rstrip("/")
    requests: list[LockRequest] = []
    if not copy:
        requests += [_lock_req(ctx, t) for t in targets]
        requests += [LockRequest(dst_ns, f"{base}/{_restored_name(t, meta)}", t.row.type)
                     for t in targets if "sys:restore_uri" in meta[t.row.id]]
    requests += [LockRequest(dst_ns, f"{base}/{t.row.name}", t.row.type) for t in targets]
    before = [eventemit.locate(ctx, t.row) for t in targets] if eventemit.active(ctx) and not copy else []
    session = LockSession()
    ctx.state.locks.acquire(session, "moveCopy", requests)
    try:
        with db.tx():
            if copy:
                _copy_rows(ctx, [t.row for t in targets], destination.row)
            else:
                try:
                    store.set_parent([t.row for t in targets], destination.row)
                    for t in targets:
                        if "sys:restore_uri" in meta[t.row.id]:
                            store.rename(t.row, _restored_name(t, meta))
                            store.remove_metadata(t.row.id, "sys:restore_uri", "sys:expected_collect_time")
                except sqlite3.IntegrityError as exc:
                    raise E.file_existed(str(exc)) from None
    finally:
        ctx.state.locks.release(session)
    eventemit.moved_or_copied(ctx, [t.row for t in targets], destination.row, before)


def _restored_name(node: Node, meta: dict[int, dict[str, str]]) -> str:
    try:
        return CloudreveURI.parse(meta[node.row.id]["sys:restore_uri"]).name()
    except (URIError, KeyError):
        return node.row.name


def _copy_rows(ctx: Ctx, sources: list[FileRow], destination: FileRow) -> None:
    store, cfg = ctx.state.store, ctx.state.config
    limit = cfg.max_walked_files
    if len(store.descendants(sources, limit)) > limit:
        raise E.wrap("failed to walk files", E.AppError(E.FILE_COUNT_LIMIT, "Walked file count reached limit"))
    assert ctx.user is not None
    used, total = ctx.state.db.storage_used(ctx.user.id), ctx.state.capacity_total()
    dst_of: dict[int, FileRow] = {(s.parent_id if s.parent_id is not None else -1): destination for s in sources}
    level = sources
    while level:
        size = sum(e.size for f in level for e in store.entities_of(f.id))
        if used + size > total:
            raise E.wrap("failed to walk files", E.insufficient_capacity())
        try:
            created = store.copy_level(level, dst_of)
        except sqlite3.IntegrityError as exc:
            raise E.wrap("failed to walk files", E.file_existed(str(exc))) from None
        used += size
        dst_of = created
        level = store.children([f.id for f in level if f.is_folder])


# --- delete / restore ------------------------------------------------------------
def delete(ctx: Ctx, uris: list[CloudreveURI], hard: bool) -> None:
    need = (DELETE, LOCK) if hard else (SOFT_DELETE,)
    ae = E.AggregateError()
    targets: list[Node] = []
    for uri in uris:
        try:
            node = get_target(ctx, uri, *need)
            if node is None or node.is_root:
                raise E.not_supported("cannot delete root folder")
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            ae.add(uri.string(), exc)
            continue
        if all(t.row.id != node.row.id for t in targets):
            targets.append(node)
    if targets:
        before = [eventemit.locate(ctx, t.row) for t in targets] if eventemit.active(ctx) else []
        session = LockSession()
        ctx.state.locks.acquire(session, "delete" if hard else "softDelete",
                                [_lock_req(ctx, t) for t in targets])
        try:
            if hard:
                hard_delete_rows(ctx, [t.row for t in targets])
            else:
                with ctx.state.db.tx():
                    collect = int(time.time()) + views.TRASH_RETENTION
                    for t in targets:
                        ctx.state.store.soft_delete(t.row, str(uuid.uuid4()), t.uri, collect)
        finally:
            ctx.state.locks.release(session)
        eventemit.deleted(ctx, before)
    err = ae.aggregate()
    if err is not None:
        raise err


def hard_delete_rows(ctx: Ctx, rows: list[FileRow]) -> None:
    store = ctx.state.store
    with ctx.state.db.tx():
        stale = store.delete_files(store.descendants(rows))
    _after_commit(ctx, stale)
    if stale:
        ctx.state.upload_sessions.forget_orphans()


def collect_trash(state: V4State, now: float | None = None) -> int:
    """CronCollectTrashBin: hard-delete trash items past sys:expected_collect_time."""
    now = time.time() if now is None else now
    rows = [FileRow(*r) for r in state.db.conn.execute(
        "SELECT f.* FROM files f JOIN metadata m ON m.file_id=f.id AND m.name='sys:expected_collect_time' "
        "WHERE f.parent_id IS NULL AND f.name != '' AND CAST(m.value AS INTEGER) < ?", (int(now),))]
    if rows:
        with state.db.tx():
            stale = state.store.delete_files(state.store.descendants(rows))
        state.store.unlink_blobs(stale)
        state.upload_sessions.forget_orphans()
    return len(rows)


def restore(ctx: Ctx, uris: list[CloudreveURI]) -> None:
    ae = E.AggregateError()
    targets: list[Node] = []
    for uri in uris:
        try:
            node = get_target(ctx, uri, RESTORE, prefix="failed to get file")
            if node is None:
                raise E.not_supported("cannot restore file without required metadata mark")
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            ae.add(uri.string(), exc)
            continue
        targets.append(node)
    meta = ctx.state.store.metadata([t.row.id for t in targets])
    for t in targets:
        restore_uri = meta[t.row.id].get("sys:restore_uri")
        if restore_uri is None:
            ae.add(t.uri, E.not_supported("cannot restore file without required metadata mark"))
            continue
        try:
            src = CloudreveURI.parse(restore_uri)
            elements = src.elements[:-1]
            parent_uri = CloudreveURI.parse(join_uri(src.root_prefix(), elements) if elements
                                            else src.root_prefix() + "/")
            move_copy(ctx, [CloudreveURI.parse(t.uri)], parent_uri, False)
        except URIError as exc:
            ae.add(t.uri, E.not_supported(f"invalid restore uri: {exc}"))
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            if not ae.merge(exc):
                ae.add(t.uri, exc)
    err = ae.aggregate()
    if err is not None:
        raise err


def empty_trash(ctx: Ctx) -> None:
    assert ctx.user is not None
    rows = ctx.state.db.conn.execute(
        "SELECT * FROM files WHERE parent_id IS NULL AND owner_id=? AND name != ''", (ctx.user.id,)).fetchall()
    rows = [FileRow(**dict(r)) for r in rows]
    if rows:
        hard_delete_rows(ctx, rows)


# --- metadata, locks, capacity -----------------------------------------------------
def patch_metadata(ctx: Ctx, uris: list[CloudreveURI], patches: list[metadata.Patch]) -> None:
    metadata.validate(patches, ctx.state.codec)
    ae = E.AggregateError()
    targets: list[Node] = []
    for uri in uris:
        try:
            node = get_target(ctx, uri, UPDATE_METADATA, LOCK)
            if node is None or node.is_root:
                raise E.not_supported("cannot move root folder")
        except (E.AppError, E.Wrapped, E.PlainError) as exc:
            ae.add(uri.string(), exc)
            continue
        targets.append(node)
    if targets:
        values = {p.key: p.value for p in patches if not p.remove}
        removed = [p.key for p in patches if p.remove]
        touch = any(p.update_modified for p in patches)
        session = LockSession()
        ctx.state.locks.acquire(session, "updateMetadata", [_lock_req(ctx, t, True) for t in targets])
        try:
            metadata.check_lengths(values)
            with ctx.state.db.tx():
                for t in targets:
                    ctx.state.store.upsert_metadata(t.row.id, values)
                    ctx.state.store.remove_metadata(t.row.id, *removed)
                    if touch:
                        ctx.state.store.touch(t.row.id)
        finally:
            ctx.state.locks.release(session)
    err = ae.aggregate()
    if err is not None:
        raise err


def force_unlock(ctx: Ctx, tokens: list[str]) -> None:
    if not ctx.state.locks.unlock(tokens):
        raise E.AppError(E.PARAM_ERR, "failed to unlock file", "memlock: no such lock")


def capacity(ctx: Ctx) -> dict[str, int]:
    assert ctx.user is not None
    return {"total": ctx.state.capacity_total(), "used": ctx.state.db.storage_used(ctx.user.id)}
