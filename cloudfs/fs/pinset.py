"""The pinned remote paths (``cloudfs pin PATH``): kept in the cache dir so a
remount keeps them, and moved along when this mount renames a pinned object.
The keeping itself (fetching, holding in the read cache) is :mod:`cloudfs.fs.pins`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from cloudfs.client.paths import relocated

log = logging.getLogger(__name__)


class PinSet:
    """The pinned remote paths, saved in ``path`` (JSON) on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paths: set[str] = set()
        try:
            saved = json.loads(path.read_text())
            self.paths = {p for p in saved.get("paths", []) if isinstance(p, str)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("pinned paths in %s unreadable (%s); none are pinned", path, exc)

    def add(self, paths: list[str]) -> None:
        self.paths.update(paths)
        self._save()

    def remove(self, paths: list[str]) -> list[str]:
        """Unpin ``paths``; returns those that were not pinned."""
        missing = [p for p in paths if p not in self.paths]
        self.paths.difference_update(paths)
        self._save()
        return missing

    def moved(self, moves: Mapping[str, str]) -> None:
        """This mount renamed objects (old -> new): pins at or below them follow."""
        changed = {p: new for p in self.paths if (new := relocated(p, moves)) is not None and new != p}
        if changed:
            self.paths = (self.paths - set(changed)) | set(changed.values())
            self._save()

    def removed(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        gone = {p for p in self.paths if p == path or p.startswith(prefix)}
        if gone:
            self.paths -= gone
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"paths": sorted(self.paths)}))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the pinned paths in %s: %s", self.path, exc)
