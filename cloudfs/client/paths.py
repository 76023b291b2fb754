"""Remote path hygiene: normalising absolute paths and checking names
before any request is sent.

Owns the client-side name rules that must hold whatever the dialect: a
component is at most 255 UTF-8 bytes (``NameTooLong``, ENAMETOOLONG) and never
empty, ``.``, ``..`` or containing ``/`` (EINVAL).  The server checks the rest
(forbidden characters, policy rules) and answers 40052.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterable, Mapping

from cloudfs.errors import CloudfsError, NameTooLong

#: Cloudreve's limit (Go ``len``: bytes, not characters)
MAX_NAME_BYTES = 255


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid single component, else raise."""
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise NameTooLong(f"name longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    if name in ("", ".", "..") or "/" in name:
        raise CloudfsError(f"invalid name {name!r}", errno=errno.EINVAL)
    return name


def normalize(path: str) -> str:
    """The canonical absolute form of ``path`` (``"/"`` for the root), with
    every component checked; relative paths are taken from the root."""
    parts = [p for p in path.split("/") if p]
    for part in parts:
        check_name(part)
    return "/" + "/".join(parts)


def within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def relocated(path: str, moves: Mapping[str, str]) -> str | None:
    """Where ``path`` is once every subtree in ``moves`` (old root -> new
    root, none inside another) has moved at the same time; None if it is in
    none of them.  All at once, so that an exchange (``{a: b, b: a}``) swaps."""
    return Relocation(moves).of(path)


class Relocation:
    """:func:`relocated` for many paths with the same ``moves``: the roots'
    prefixes are worked out once (a rename asks it of every inode and every
    staged file, rsync renames every file it writes)."""

    __slots__ = ("_moves",)

    def __init__(self, moves: Mapping[str, str]) -> None:
        self._moves = [(old, old.rstrip("/") + "/", new, new.rstrip("/") + "/") for old, new in moves.items()]

    def of(self, path: str) -> str | None:
        for old, old_prefix, new, new_prefix in self._moves:
            if path == old:
                return new
            if path.startswith(old_prefix):
                return new_prefix + path[len(old_prefix):]
        return None


def normalize_all(paths: Iterable[str]) -> list[str]:
    return [normalize(p) for p in paths]


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a normalised path; the root has no name."""
    parent, name = posixpath.split(path)
    return parent or "/", name


def join(folder: str, name: str) -> str:
    if folder == "/":
        return "/" + name
    # posixpath.join's result, by hand: once per entry of every listing
    if name.startswith("/"):
        return name
    return folder + name if not folder or folder.endswith("/") else f"{folder}/{name}"


def parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]
