"""Offline files: ``cloudfs pin PATH`` keeps files and whole folders in the
read cache, fetched in the background, never evicted, and fetched again
when they change on the server.

``PinKeeper`` is the background task over the core's
:class:`~cloudfs.fs.pinset.PinSet`: it walks every pinned path (one listing
per folder, which also keeps the folders' last known state fresh for an
offline mount), tells the block store which content versions to keep, and
downloads what is missing, one file at a time.  It runs at
start, when a pin is added, and every ``interval_s`` after that.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any

import trio

from cloudfs.cache.blocks import cache_name
from cloudfs.client.models import Entry
from cloudfs.errors import CloudfsError
from cloudfs.fs.core import Core

log = logging.getLogger(__name__)

#: bytes asked of the read cache at a time while fetching a pinned file
FETCH_STEP = 8 << 20


@dataclass
class PinState:
    """What the last pass found (for ``cloudfs status``)."""

    files: int = 0
    size: int = 0
    cached: int = 0
    #: why the last pass could not finish (None: it did)
    error: str | None = None

    def as_dict(self, paths: set[str]) -> dict[str, Any]:
        return {"paths": sorted(paths), "files": self.files, "bytes": self.size, "cached": self.cached,
                "error": self.error}


class PinKeeper:
    def __init__(self, core: Core, *, interval_s: float) -> None:
        self.core = core
        self.interval_s = interval_s
        self.state = PinState()
        self._wake = trio.Event()
        #: versions kept from eviction: by cache name, the entry fetched for it
        self._kept: dict[str, Entry] = {}

    def poke(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._wake = trio.Event()
            try:
                await self.sync()
            except CloudfsError as exc:
                self.state.error = str(exc)
                log.info("offline files: pass stopped: %s", exc)
            with trio.move_on_after(self.interval_s):
                await self._wake.wait()

    async def sync(self) -> None:
        """One pass: find every pinned file, keep it, fetch what is missing."""
        core = self.core
        if core.connectivity.offline:
            return  # what is kept stays kept; nothing can be fetched
        entries: dict[str, Entry] = {}
        listed: set[str] = set()
        for path in sorted(core.pins.paths):
            await self._list_ancestors(path, listed)
            for entry in await self._files_under(path):
                entries[cache_name(entry.file_id, entry.version, entry.size)] = entry
        self._kept = entries
        core.fetcher.store.pin(frozenset(entries))
        self.state = PinState(files=len(entries), size=sum(e.size for e in entries.values()))
        if self.state.size > core.fetcher.store.cap_bytes:
            # what does not fit is fetched and dropped again on every pass: say so
            self.state.error = (f"the pinned files ({self.state.size} bytes) do not fit in the cache "
                                f"({core.fetcher.store.cap_bytes} bytes): raise cache_size or unpin some")
            log.warning("offline files: %s", self.state.error)
        self._count_cached()
        for name, entry in entries.items():
            await self._fetch(name, entry)
        self._count_cached()

    def _count_cached(self) -> None:
        store = self.core.fetcher.store
        self.state.cached = sum(store.cached_bytes(name) for name in self._kept)

    async def _list_ancestors(self, path: str, listed: set[str]) -> None:
        """List the folders above a pin, so that an offline mount can still
        be walked down to it (``ls`` of each, not just a lookup by name)."""
        ancestors = []
        while path != "/":
            path = posixpath.dirname(path)
            ancestors.append(path)
        for folder_path in reversed(ancestors):
            if folder_path in listed:
                continue
            listed.add(folder_path)
            since = self.core.meta.epoch
            try:
                folder, children = await self.core.client.list_all(folder_path)
            except CloudfsError as exc:
                if self.core.connectivity.failed(exc):
                    raise
                return  # gone meanwhile: the pin's own walk says so
            self.core.meta.put_listing(folder, children, since)

    async def _files_under(self, path: str) -> list[Entry]:
        core = self.core
        try:
            entry = await core.client.stat(path)
        except CloudfsError as exc:
            if core.connectivity.failed(exc):
                raise
            log.info("offline files: %s: %s", path, exc)
            return []
        if not entry.is_dir:
            return [entry]
        found: list[Entry] = []
        folders = [entry.path]
        while folders:
            since = core.meta.epoch
            folder, children = await core.client.list_all(folders.pop())
            core.meta.put_listing(folder, children, since)  # also the last known state, for offline use
            for child in children:
                if child.is_dir:
                    folders.append(child.path)
                else:
                    found.append(child)
        return found

    async def _fetch(self, name: str, entry: Entry) -> None:
        store = self.core.fetcher.store
        for off in range(0, entry.size, FETCH_STEP):
            span = (off, min(off + FETCH_STEP, entry.size))
            if not store.missing_pages(name, entry.size, span):
                continue
            await self.core.fetch_base(entry, span)
            self.state.cached = min(self.state.cached + span[1] - span[0], self.state.size)
