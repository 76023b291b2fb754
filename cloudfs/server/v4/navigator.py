"""Resolving ``cloudreve://`` URIs to tree nodes, per file system ("navigator").

Cloudreve routes every URI through a navigator chosen by its host: ``my``
(the user's tree) or ``trash`` (a flat list of soft-deleted items).  Each
navigator has a capability set; an action it lacks is refused with 403 "Not
supported action".  ``my`` refuses anonymous callers (401) and other users'
ids (403); an undecodable id is "Path not exist" (40016).  Lookup walks the
path one element at a time and, when an element is missing, reports the
deepest existing ancestor along with a 40016 error whose text matches the Go
chain (``failed to walk into "x": Path not exist: ent: file not found``).

:class:`Node` carries a row plus how the caller addressed it, so responses
echo paths the way Cloudreve builds them (root prefix + encodeURIComponent
segments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common import ids
from ..common.store import FileRow
from . import errors as E
from . import views
from .uris import CloudreveURI, go_quote, join_uri, path_escape

if TYPE_CHECKING:
    from .state import Ctx

# navigator capability numbers (NavigatorCapability iota)
CREATE, RENAME, UPLOAD, DOWNLOAD, UPDATE_METADATA, LIST = 0, 1, 6, 7, 8, 9
DELETE, LOCK, SOFT_DELETE, RESTORE, INFO, MODIFY_PROPS = 14, 15, 16, 17, 19, 24
MY_CAPS = {0, 1, 6, 7, 8, 9, 10, 14, 15, 16, 18, 19, 20, 23, 24}
TRASH_CAPS = {9, 14, 15, 17, 19}
FILESYSTEMS = {"my": MY_CAPS, "trash": TRASH_CAPS}


@dataclass
class Node:
    row: FileRow
    fs: str
    prefix: str  # "cloudreve://my" (as addressed) or "cloudreve://trash"
    elements: list[str] = field(default_factory=list)
    caps: str | None = None

    @property
    def uri(self) -> str:
        if self.fs == "trash":
            return "cloudreve://trash/" + path_escape(self.row.name)
        return join_uri(self.prefix, self.elements)

    @property
    def is_root(self) -> bool:
        return self.fs == "my" and not self.elements

    @property
    def lock_path(self) -> str:
        return "/" + "/".join(self.elements)

    def child(self, row: FileRow) -> Node:
        return Node(row, self.fs, self.prefix, self.elements + [row.name], self.caps)


class WalkError(Exception):
    """Lookup stopped early: ``ancestor`` is the deepest existing node."""

    def __init__(self, err: BaseException, ancestor: Node | None) -> None:
        super().__init__(str(err))
        self.err = err
        self.ancestor = ancestor


def check_fs(uri: CloudreveURI, *needed: int) -> str:
    """``getNavigator``: the file system name, or raise (unknown fs is code -1)."""
    fs = uri.filesystem
    caps = FILESYSTEMS.get(fs)
    if caps is None:
        raise E.PlainError(f'unknown file system "{fs}"')
    for cap in needed:
        if cap not in caps:
            raise E.not_supported(f"action '\\x{cap:02x}' is not supported under current fs")
    return fs


def lock_ns(ctx: Ctx, fs: str) -> str:
    assert ctx.user is not None
    return f"{ctx.user.id}/{fs}"


def walk(ctx: Ctx, uri: CloudreveURI) -> Node | None:
    """``navigator.To``: the node (None = trash root) or raise WalkError/AppError."""
    fs = uri.filesystem
    if ctx.user is None:
        raise E.login_required()
    store = ctx.state.store
    if fs == "trash":
        elements = uri.elements
        if len(elements) > 1:
            raise WalkError(E.path_not_exist(f"invalid Path {go_quote(uri.string())}"), None)
        if not elements:
            return None
        row = store.trash_item(ctx.user.id, elements[0])
        if row is None:
            raise WalkError(E.wrap(f"failed to walk into {go_quote(elements[0])}",
                                   E.path_not_exist(E.ENT_NOT_FOUND)), None)
        return Node(row, "trash", "cloudreve://trash", [row.name])
    # "my"
    if uri.user_id is not None:
        uid = ctx.state.codec.decode(uri.user_id, ids.USER)
        if uid is None:
            raise E.path_not_exist("invalid user id")
        if uid != ctx.user.id:
            raise E.permission_denied()
    root = store.root(ctx.user.id)
    if root is None:
        raise E.path_not_exist("user not found")
    node = Node(root, "my", uri.root_prefix(), [], views.MY_CAPABILITY)
    for name in uri.elements:
        row = store.child(node.row.id, name) if node.row.is_folder else None
        if row is None:
            raise WalkError(E.wrap(f"failed to walk into {go_quote(name)}",
                                   E.path_not_exist(E.ENT_NOT_FOUND)), node)
        node = node.child(row)
    return node


def get_target(ctx: Ctx, uri: CloudreveURI, *needed: int, prefix: str = "failed to get target file") -> Node | None:
    """Navigator check + walk; missing paths become the wrapped 40016."""
    check_fs(uri, *needed)
    try:
        return walk(ctx, uri)
    except WalkError as exc:
        raise E.wrap(prefix, exc.err) from None


def display_name(node: Node, metadata: dict[str, str] | None) -> str:
    """Trash items show their original name (from sys:restore_uri)."""
    if metadata and "sys:restore_uri" in metadata:
        try:
            return CloudreveURI.parse(metadata["sys:restore_uri"]).name()
        except ValueError:
            return node.row.name
    return node.row.name


def render(ctx: Ctx, node: Node, metadata: dict[str, str] | None, *,
           capability: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """BuildFileResponse for a node; ``metadata`` None renders as JSON null."""
    meta_for_name = metadata
    if node.fs == "trash" and metadata is None:
        meta_for_name = ctx.state.store.metadata([node.row.id])[node.row.id]
    row = node.row
    return views.file_response(
        ctx.state.codec, ftype=row.type, fid=row.id, name=display_name(node, meta_for_name),
        created_at=row.created_at, updated_at=row.updated_at, size=row.size, metadata=metadata,
        path=node.uri, capability=capability if capability is not None else node.caps,
        primary_entity=row.primary_entity, **(extra or {}))
