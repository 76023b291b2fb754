"""Open-file and open-folder state, and per-inode locks.

A file handle remembers which content version it was opened on (its
read-ahead state belongs to it); a folder handle keeps its pass over the
listing (fs/listing.py), so readdir offsets stay valid across the kernel's paging.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from cloudfs.cache.fetcher import Source
from cloudfs.cache.readahead import ReadAhead
from cloudfs.fs.inodes import Node
from cloudfs.fs.listing import FolderListing


@dataclass(frozen=True, slots=True)
class Opened:
    """A file just opened: its handle, and whether the kernel may keep the
    pages it cached of it (``ops.py`` replies with pyfuse3's ``FileInfo``)."""

    fh: int
    keep_cache: bool = True


@dataclass(eq=False)
class FileHandle:
    fh: int
    node: Node
    source: Source
    readahead: ReadAhead
    writer: bool = False


@dataclass(eq=False)
class DirHandle:
    fh: int
    node: Node
    #: the pass readdir pages through (offsets are 1 + index), once started
    listing: FolderListing | None = None


class HandleTable:
    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.files: dict[int, FileHandle] = {}
        self.dirs: dict[int, DirHandle] = {}

    def next_fh(self) -> int:
        return next(self._numbers)


class InodeLocks:
    """One trio.Lock per inode, created on demand and dropped when free.

    Always take several in ascending inode order (``hold``) to avoid deadlock."""

    def __init__(self) -> None:
        self._locks: dict[int, trio.Lock] = {}
        self._users: dict[int, int] = {}

    @asynccontextmanager
    async def hold(self, *inos: int) -> AsyncIterator[None]:
        ordered = sorted(set(inos))
        taken: list[int] = []
        try:
            for ino in ordered:
                lock = self._locks.get(ino)
                if lock is None:
                    lock = self._locks[ino] = trio.Lock()
                self._users[ino] = self._users.get(ino, 0) + 1
                taken.append(ino)
                try:
                    # a free lock is taken without a pass through trio's
                    # scheduler (rsync's setattrs and renames take one each)
                    lock.acquire_nowait()
                except trio.WouldBlock:
                    await lock.acquire()
            yield
        finally:
            for ino in reversed(taken):
                lock = self._locks[ino]
                if lock.locked() and lock.statistics().owner is trio.lowlevel.current_task():
                    lock.release()
                self._users[ino] -= 1
                if self._users[ino] == 0:
                    del self._users[ino]
                    del self._locks[ino]
