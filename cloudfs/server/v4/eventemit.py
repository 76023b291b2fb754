"""Turning file operations into hub events (``pkg/filemanager/fs/dbfs/events.go``).

Every subscriber of every *ancestor* folder of the changed object gets the
event, with paths relative to the folder it subscribed to (leading ``/``,
decoded).  Subscribers whose client id is the one of the request that made
the change (``X-Cr-Client-Id``) are skipped: a client never hears its own
changes.  A move is a ``rename`` for a subscriber that sees both ends, else a
``delete`` (source side only) or a ``create`` (destination side only).

Callers :func:`locate` the objects *before* changing them (a deleted or
moved row no longer has its old path) and emit after the commit.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .eventhub import CREATE, DELETE, MODIFY, RENAME, Event, Subscriber
from ..common.store import FileRow

if TYPE_CHECKING:
    from .state import Ctx


@dataclass
class Located:
    """A row and its chain of ancestors, root first, the row last."""

    chain: list[FileRow]

    @property
    def row(self) -> FileRow:
        return self.chain[-1]

    @property
    def path(self) -> str:
        return _path(self.chain)


def _path(chain: list[FileRow]) -> str:
    return "/" + "/".join(r.name for r in chain[1:])


def _relative(root_chain: list[FileRow], path: str) -> str:
    """``foundSubscriber.relativePath``."""
    rel = path.removeprefix(_path(root_chain))
    if rel == "":
        rel = "/"
    return rel if rel.startswith("/") else "/" + rel


def active(ctx: Ctx) -> bool:
    """Whether anyone listens at all (most requests then skip the path lookups)."""
    hub = ctx.state.events
    return hub is not None and hub.has_subscribers()


def locate(ctx: Ctx, row: FileRow) -> Located:
    return Located(ctx.state.store.top_ancestor(row)[1])


def _eligible(ctx: Ctx, chain: list[FileRow]) -> list[tuple[Subscriber, list[FileRow]]]:
    """``getEligibleSubscriber``: subscribers of the folders in ``chain``, minus the caller."""
    hub = ctx.state.events
    assert hub is not None
    found = []
    if chain and chain[0].name != "":
        return []  # in the trash: nobody subscribes below a trashed item
    for depth in range(len(chain)):
        for sub in hub.subscribers(chain[depth].id):
            if sub.client_id != ctx.client_id:
                found.append((sub, chain[:depth + 1]))
    return found


def _publish(ctx: Ctx, sub: Subscriber, event: Event) -> None:
    hub = ctx.state.events
    assert hub is not None
    hub.publish(sub, event)


def _at_its_path(ctx: Ctx, kind: str, row: FileRow) -> None:
    if not active(ctx):
        return
    where = locate(ctx, row)
    for sub, root in _eligible(ctx, where.chain[:-1]):
        _publish(ctx, sub, Event(kind, ctx.state.codec.file(row.id), _relative(root, where.path)))


def created(ctx: Ctx, row: FileRow) -> None:
    _at_its_path(ctx, CREATE, row)


def modified(ctx: Ctx, row: FileRow) -> None:
    _at_its_path(ctx, MODIFY, row)


def renamed(ctx: Ctx, before: Located, new_name: str) -> None:
    if not active(ctx):
        return
    for sub, root in _eligible(ctx, before.chain[:-1]):
        src = _relative(root, before.path)
        dst = src.removesuffix(before.row.name) + new_name
        _publish(ctx, sub, Event(RENAME, ctx.state.codec.file(before.row.id), src, dst))


def deleted(ctx: Ctx, before: list[Located]) -> None:
    if not active(ctx):
        return
    for where in before:
        for sub, root in _eligible(ctx, where.chain[:-1]):
            _publish(ctx, sub, Event(DELETE, ctx.state.codec.file(where.row.id), _relative(root, where.path)))


def moved(ctx: Ctx, before: Located, destination: FileRow, name: str) -> None:
    """``emitFileMoved``; ``name`` is the name the object has at the destination."""
    if not active(ctx):
        return
    file_id = ctx.state.codec.file(before.row.id)
    src_subs = {sub.client_id: (sub, root) for sub, root in _eligible(ctx, before.chain[:-1])}
    dst = locate(ctx, destination)
    dst_subs = {sub.client_id: (sub, root) for sub, root in _eligible(ctx, dst.chain)}
    for client_id, (sub, root) in src_subs.items():
        if client_id in dst_subs:
            _, dst_root = dst_subs.pop(client_id)
            to = posixpath.join(_relative(dst_root, dst.path), name)
            _publish(ctx, sub, Event(RENAME, file_id, _relative(root, before.path), to))
        else:
            _publish(ctx, sub, Event(DELETE, file_id, _relative(root, before.path)))
    for sub, root in dst_subs.values():
        _publish(ctx, sub, Event(CREATE, file_id, posixpath.join(_relative(root, dst.path), name)))


def moved_or_copied(ctx: Ctx, sources: list[FileRow], destination: FileRow, before: list[Located]) -> None:
    """After a move (``before`` = the sources located beforehand) or a copy (``before`` empty)."""
    if not active(ctx):
        return
    store = ctx.state.store
    for i, source in enumerate(sources):
        if before:  # the row now sits in the destination, under its (restored) name
            now = store.get(source.id)
            if now is not None:
                moved(ctx, before[i], destination, now.name)
        else:  # emitFileCreated for the new top-level copy
            copied = store.child(destination.id, source.name)
            if copied is not None:
                created(ctx, copied)
