"""Metadata for backends that keep none (``capabilities.custom_metadata``
False: Cloudreve 3, KooDrive): what this process sets, kept in memory by
object id and shown on every entry the backend hands out, so the layers
above use metadata (mode, exact mtime, the upload tag) the same way on
every backend.  It is not durable: it lasts as long as the process (a
remount starts empty), which the capability record says.

Kept by object id, so it follows a rename or move (both backends keep the
id).  A replace gives the file a new id (upload beside, then swap): the
backend's upload tells the overlay (:meth:`MetadataOverlay.uploaded`), and
what the replaced object had that belongs to the file, not its content,
goes to the new one (:meth:`MetadataOverlay.replaced`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from cachetools import LRUCache

from cloudfs.client.models import MTIME_KEY, UPLOAD_TAG_KEY, Entry, mtime_value

#: objects whose metadata is kept (the least recently set or shown go first)
OVERLAY_KEPT = 65536
#: keys that describe one object's content, not the file: not carried to the object that replaces it
CONTENT_KEYS = frozenset({MTIME_KEY, UPLOAD_TAG_KEY})


@dataclass(slots=True)
class _Kept:
    values: dict[str, str] = field(default_factory=dict)
    #: the mtime (ms) an upload of ours asked for: shown where the server
    #: shows another (a swap's rename sets the time to now), unless a time
    #: was set since
    asked_mtime_ms: int = 0


class MetadataOverlay:
    """One backend instance's metadata kept in memory, by object id."""

    def __init__(self, maxsize: int = OVERLAY_KEPT) -> None:
        self._kept: LRUCache[str, _Kept] = LRUCache(maxsize=maxsize)

    def set(self, file_id: str, values: Mapping[str, str | None]) -> None:
        """Set (a value) or remove (None) keys of object ``file_id``."""
        kept = self._kept.get(file_id) or _Kept()
        for key, value in values.items():
            if value is None:
                kept.values.pop(key, None)
            else:
                kept.values[key] = value
        if MTIME_KEY in values:
            kept.asked_mtime_ms = 0  # a time set since the upload wins
        self._kept[file_id] = kept

    def uploaded(self, file_id: str, *, tag: object = None, mtime_ms: object = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        """Object ``file_id`` holds content uploaded by us: its upload's
        ``tag`` (so a lost answer is recognised as ours), the mtime it asked
        for and the metadata it carried."""
        values: dict[str, str | None] = dict(metadata or {})
        if isinstance(tag, str) and tag:
            values[UPLOAD_TAG_KEY] = tag
        asked = mtime_ms if isinstance(mtime_ms, int) and mtime_ms > 0 and MTIME_KEY not in values else 0
        if values or asked:
            self.set(file_id, values)
            self._kept[file_id].asked_mtime_ms = asked

    def replaced(self, old_id: str, new_id: str) -> None:
        """Object ``new_id`` took the place of ``old_id`` (a replace with a
        new id): it gets what ``old_id`` had that belongs to the file (the
        mode, say), under what it has itself (its upload's metadata is newer);
        ``old_id`` is gone."""
        if old_id == new_id:
            return
        old = self._kept.pop(old_id, None)
        if old is None:
            return
        carried = {k: v for k, v in old.values.items() if k not in CONTENT_KEYS}
        if carried:
            new = self._kept.get(new_id) or _Kept()
            new.values = {**carried, **new.values}
            self._kept[new_id] = new

    def forget(self, file_ids: Iterable[str]) -> None:
        """Objects deleted: nothing of theirs may show on an object that
        gets one of their ids again."""
        for file_id in file_ids:
            self._kept.pop(file_id, None)

    def apply(self, entry: Entry) -> Entry:
        """``entry`` with the metadata kept for its object."""
        if entry.file_id not in self._kept:  # (a plain lookup: most entries of a listing)
            return entry
        kept = self._kept[entry.file_id]
        values = kept.values
        asked = kept.asked_mtime_ms
        if asked and entry.mtime_ns // 1_000_000 != asked:
            values = {**values, MTIME_KEY: mtime_value(asked * 1_000_000, entry.version)}
        if not values:
            return entry
        return replace(entry, metadata={**entry.metadata, **values})

    def apply_all(self, entries: Iterable[Entry]) -> list[Entry]:
        if not self._kept:  # (most listings: nothing set)
            return list(entries)
        return [self.apply(e) for e in entries]
