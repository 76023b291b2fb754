"""Symbolic links, stored as small files whose content is the target.

Where the backend keeps object metadata (the client's ``keeps_metadata``),
a link is a file under its own name marked with ``LINK_KEY``: the web UI and
other clients see a small file holding the target.  Where it keeps none, the
name carries the mark, as rclone's ``--links`` does: the link ``NAME`` is
the file ``NAME.rclonelink``, so a drive shared with rclone users reads the
same in both.  (A file and a link file of the same shown name cannot both be
shown under it: the link file then keeps its full name.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cloudfs.client.models import LINK_KEY, Entry

LINK_SUFFIX = ".rclonelink"
#: metadata that marks a file a link (where the backend keeps metadata)
LINK_MARK = {LINK_KEY: "1"}
#: a target must be shorter than this, NUL included (Linux's PATH_MAX)
PATH_MAX = 4096


class LinkRule:
    """How links are told apart on one backend: by metadata or by name."""

    def __init__(self, *, by_name: bool) -> None:
        self.by_name = by_name

    def is_link(self, entry: Entry, pending: Mapping[str, str] | None = None) -> bool:
        """Whether ``entry`` is a link (``pending``: metadata its staged
        content will carry with its upload)."""
        if entry.is_dir:
            return False
        if self.by_name:
            # (its name ends with the suffix and is longer: asked per entry of every listing)
            path = entry.path
            return path.endswith(LINK_SUFFIX) and len(path) > len(LINK_SUFFIX) and path[-len(LINK_SUFFIX) - 1] != "/"
        return (entry.metadata or {}).get(LINK_KEY) == "1" or (pending or {}).get(LINK_KEY) == "1"

    def stored_name(self, name: str, link: bool) -> str:
        """The server's name for the shown ``name`` of a link (or not)."""
        return name + LINK_SUFFIX if link and self.by_name else name

    def shown_name(self, name: str, link: bool) -> str:
        """The name shown for the server's ``name`` of a link (or not)."""
        if link and self.by_name and name.endswith(LINK_SUFFIX):
            return name[:-len(LINK_SUFFIX)]
        return name

    def shown_names(self, children: list[Entry], everyone: Iterable[Entry] | None = None) -> list[tuple[str, Entry]]:
        """(name to show, entry) for a folder's children: link files without
        their suffix, unless another child already has that name
        (``everyone``: all the folder's children, if ``children`` are only
        some of them; the names of the others do not depend on these)."""
        shown = [(child.name, child) for child in children]
        if not self.by_name or not any(self.is_link(child) for child in children):
            return shown
        taken = {child.name for child in (children if everyone is None else everyone)}
        for index, (name, child) in enumerate(shown):
            if self.is_link(child) and name[:-len(LINK_SUFFIX)] not in taken:
                shown[index] = (name[:-len(LINK_SUFFIX)], child)
        return shown
