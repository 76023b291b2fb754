"""BlockStore: the on-disk cache of clean file content, under a hard size cap.

Each content version of a remote file (its *cache name* encodes file id,
version and size, so a changed file never hits stale data) is one
sparse file under ``<root>/data/``.  Content is cached in pages of
``page_size`` bytes; which pages are present is tracked in memory and saved in
``<root>/index.json`` at a clean shutdown.  Eviction is least-recently-used
per page, by punching a hole in the sparse file, and happens *before* new
pages are written, so the cap is never exceeded.

Crash safety: the index is only trusted when ``<root>/clean`` exists, which is
written after the index at shutdown and removed at startup.  After a crash
the whole read cache is dropped; it is only a cache (dirty data lives in the
staging area, never here).

All methods are plain ``def`` and do local disk I/O only: each call is atomic
with respect to other trio tasks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from cloudfs.cache.ranges import Span, pages_of
from cloudfs.cache.window import MappedWindow

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 128 * 1024
INDEX_VERSION = 1
#: cached files kept open at once (each costs a file descriptor)
MAX_OPEN_FILES = 64
#: cached files whose mapping window is kept at once (each holds up to
#: ``window.WINDOW_SIZE`` bytes of the page cache mapped: the mount's RSS)
MAX_WINDOWS = 8
#: a mapped read of fewer bytes is a ``pread`` (a copy of a few pages costs
#: less than looking the window up and faulting the pages in)
MAP_MIN = 64 * 1024

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def punch_hole(fd: int, off: int, length: int) -> None:
    """Free the disk blocks of ``[off, off+length)`` (reads then return zeros)."""
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, off, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def cache_name(file_id: str, version: str, size: int) -> str:
    """Stable, filesystem-safe name of one content version.

    The version identifies the content (the server's content version), so times are
    left out on purpose: a rename bumps the server's updated time but keeps
    the bytes."""
    raw = f"{file_id}\0{version}\0{size}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass
class _CachedFile:
    size: int
    pages: set[int] = field(default_factory=set)
    fd: int | None = None
    #: the mapping mapped reads are served from (while ``fd`` is open)
    window: MappedWindow = field(default_factory=MappedWindow)
    #: pages being written by a download right now (see :meth:`BlockStore.reserve`)
    reserved: int = 0


@dataclass
class Reservation:
    """Room under the cap for pages a download writes straight into the
    cached file: through ``fd`` (a descriptor of its own, which the store
    never closes under it) at the content's own offsets."""

    name: str
    pages: range
    fd: int
    cached: _CachedFile
    #: the first page not committed yet (pages are committed in order, as they arrive)
    next_page: int = -1

    def __post_init__(self) -> None:
        if self.next_page < 0:
            self.next_page = self.pages.start


class BlockStore:
    def __init__(self, root: Path, cap_bytes: int, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.root = Path(root)
        self.page_size = page_size
        self.cap_pages = max(cap_bytes // page_size, 0)
        self._data_dir = self.root / "data"
        self._files: dict[str, _CachedFile] = {}
        #: (name, page) in least-recently-used-first order
        self._lru: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._punch_supported = True
        #: pages reserved by downloads in flight: they count against the cap
        self._reserved = 0
        #: names whose ``fd`` is open, least recently used first
        self._open: OrderedDict[str, None] = OrderedDict()
        #: names whose mapping window may be mapped, least recently used first
        self._windows: OrderedDict[str, None] = OrderedDict()
        #: versions kept for offline use (``cloudfs pin``): never evicted
        self._pinned: frozenset[str] = frozenset()

    # ---- lifecycle -------------------------------------------------------
    def open(self) -> None:
        """Load the index of a clean previous run, or start empty."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.root / "clean"
        index_path = self.root / "index.json"
        trusted = marker.exists()
        if trusted:
            marker.unlink()
            try:
                self._load_index(json.loads(index_path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("read cache index unreadable (%s); starting with an empty cache", exc)
                trusted = False
        if not trusted:
            self._wipe()
        # the index is stale from now on until close() rewrites it
        index_path.unlink(missing_ok=True)
        self._fsync_dir(self.root)

    def close(self) -> None:
        """Persist the index, then mark it trustworthy."""
        for name in list(self._open):
            self._close_fd(name)
        index = {
            "version": INDEX_VERSION,
            "page_size": self.page_size,
            # LRU order is kept by listing pages oldest first
            "lru": [[name, page] for name, page in self._lru],
            "sizes": {name: f.size for name, f in self._files.items()},
        }
        tmp = self.root / "index.json.tmp"
        try:
            with open(tmp, "w") as fp:
                json.dump(index, fp)
                fp.flush()
                os.fsync(fp.fileno())
            os.replace(tmp, self.root / "index.json")
            (self.root / "clean").touch()
            self._fsync_dir(self.root)
        except OSError as exc:
            # without an index the next run starts with an empty read cache: nothing is lost
            log.warning("could not save the read cache index (%s); the next mount starts with an empty cache",
                        exc)
            tmp.unlink(missing_ok=True)

    def _load_index(self, index: dict) -> None:
        if index.get("version") != INDEX_VERSION or index.get("page_size") != self.page_size:
            raise ValueError("index format or page size changed")
        sizes = index["sizes"]
        for name, size in sizes.items():
            if (self._data_dir / name).exists():
                self._files[name] = _CachedFile(size=int(size))
        for name, page in index["lru"]:
            cached = self._files.get(name)
            if cached is not None:
                cached.pages.add(int(page))
                self._lru[(name, int(page))] = None
        # a smaller cap than last time: trim now
        self._evict(0)
        for path in self._data_dir.iterdir():
            if path.name not in self._files:
                path.unlink()

    def _wipe(self) -> None:
        shutil.rmtree(self._data_dir, ignore_errors=True)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._files.clear()
        self._lru.clear()

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- queries -------------------------------------------------------------
    @property
    def used_bytes(self) -> int:
        return len(self._lru) * self.page_size

    @property
    def cap_bytes(self) -> int:
        return self.cap_pages * self.page_size

    def pin(self, names: frozenset[str]) -> None:
        """Keep exactly these versions' pages from eviction (they still
        count against the cap: pins beyond it leave less room for the rest)."""
        self._pinned = names

    def cached_bytes(self, name: str) -> int:
        """How much of a version is cached."""
        cached = self._files.get(name)
        if cached is None:
            return 0
        last = -(-cached.size // self.page_size) - 1
        full = len(cached.pages) * self.page_size
        if last in cached.pages:
            full -= self.page_size - (cached.size - last * self.page_size)
        return full

    def has_page(self, name: str, page: int) -> bool:
        cached = self._files.get(name)
        return cached is not None and page in cached.pages

    def missing_pages(self, name: str, size: int, span: Span) -> list[int]:
        cached = self._files.get(name)
        pages = pages_of((span[0], min(span[1], size)), self.page_size)
        if cached is None:
            return list(pages)
        return [p for p in pages if p not in cached.pages]

    def read_page(self, name: str, page: int) -> bytes | None:
        """The whole page (shorter at end of file), or None if not cached."""
        cached = self._files.get(name)
        if cached is None or page not in cached.pages:
            return None
        off = page * self.page_size
        length = min(self.page_size, cached.size - off)
        try:
            data = os.pread(self._fd(name, cached), length, off)
        except OSError as exc:
            log.warning("read cache: cannot read %s: %s; dropping it", name, exc)
            self.discard(name)
            return None
        if len(data) != length:
            log.warning("read cache: %s is shorter than recorded; dropping it", name)
            self.discard(name)
            return None
        self._lru.move_to_end((name, page))
        return data

    def read(self, name: str, span: Span, *, mapped: bool = False) -> bytes | memoryview | None:
        """Exactly ``span`` (clamped to the file) if every page it touches is
        cached, in one read; else None.  The fast path of warm reads.

        ``mapped``: a read-only view of the cache file's pages themselves
        (through the file's mapping window, which lives as long as the
        view) instead of a copy, for spans of ``MAP_MIN`` bytes or more:
        what a FUSE reply wants, as the kernel copies from those pages
        straight into the reader's.  The view is only good while the pages
        stay cached: use it before the next await."""
        cached = self._files.get(name)
        if cached is None:
            return None
        start, end = span[0], min(span[1], cached.size)
        pages = pages_of((start, end), self.page_size)
        if not all(page in cached.pages for page in pages):
            return None
        data: bytes | memoryview
        try:
            fd = self._fd(name, cached)
            if mapped and end - start >= MAP_MIN:
                data = cached.window.view(fd, cached.size, start, end)
                self._windows[name] = None
                self._windows.move_to_end(name)
                if len(self._windows) > MAX_WINDOWS:
                    self._drop_window(next(iter(self._windows)))
            else:
                data = os.pread(fd, end - start, start)
        except OSError as exc:
            log.warning("read cache: cannot read %s: %s; dropping it", name, exc)
            self.discard(name)
            return None
        if len(data) != end - start:
            log.warning("read cache: %s is shorter than recorded; dropping it", name)
            self.discard(name)
            return None
        for page in pages:
            self._lru.move_to_end((name, page))
        return data

    # ---- updates -------------------------------------------------------------
    def will_need(self, name: str, span: Span) -> None:
        """Ask the kernel to start reading the cached part of ``span`` from
        disk now, asynchronously: warm sequential reads then find it in the
        page cache instead of waiting on the disk one request at a time."""
        cached = self._files.get(name)
        if cached is None or span[1] <= span[0]:
            return
        try:
            os.posix_fadvise(self._fd(name, cached), span[0], span[1] - span[0], os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # only a hint

    def write_pages(self, name: str, size: int, first: int, data: bytes | memoryview) -> bool:
        """Store consecutive whole pages starting at page ``first`` in one
        write (the last page of the file may be short).

        Returns False when they cannot be cached (cap of zero, cache disk
        full...): the caller still has the bytes, nothing is lost.
        """
        count = -(-len(data) // self.page_size)
        expected = min(count * self.page_size, size - first * self.page_size)
        if count == 0 or len(data) != expected:
            raise ValueError(f"pages {first}+{count} of {name}: {len(data)} bytes, expected {expected}")
        if count > self.cap_pages - self._reserved:
            return False
        cached = self._files.get(name)
        pages = range(first, first + count)
        if cached is not None and all(page in cached.pages for page in pages):
            for page in pages:
                self._lru.move_to_end((name, page))
            return True
        if not self._evict(count):
            return False
        if cached is None:
            cached = self._files[name] = _CachedFile(size=size)
        try:
            os.pwrite(self._fd(name, cached), data, first * self.page_size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.warning("read cache: cannot write %s: %s", name, exc)
            if not cached.pages:
                self.discard(name)
            return False
        for page in pages:
            if page not in cached.pages:
                cached.pages.add(page)
                self._lru[(name, page)] = None
        return True

    def reserve(self, name: str, size: int, pages: range) -> Reservation | None:
        """Room for ``pages`` of a version, to be written by someone else
        (a download in a worker thread) and then committed (:meth:`commit`); None if
        they cannot be cached (the caller then keeps the bytes itself).
        Until then they count against the cap, and the file is not removed."""
        if not pages or len(pages) > self.cap_pages - self._reserved or not self._evict(len(pages)):
            return None
        cached = self._files.get(name)
        if cached is None:
            cached = self._files[name] = _CachedFile(size=size)
        try:
            fd = os.dup(self._fd(name, cached))
        except OSError as exc:
            log.warning("read cache: cannot open %s: %s", name, exc)
            if not cached.pages and not cached.reserved:
                self.discard(name)
            return None
        cached.reserved += len(pages)
        self._reserved += len(pages)
        return Reservation(name, pages, fd, cached)

    def commit(self, reservation: Reservation, upto: int | None = None) -> bool:
        """The reserved pages below page ``upto`` (all of them by default)
        were written: they are cached now, and no longer count as reserved.
        False if the version was dropped meanwhile (the bytes are still
        readable through the reservation's fd until :meth:`release`)."""
        stop = reservation.pages.stop if upto is None else min(upto, reservation.pages.stop)
        pages = range(reservation.next_page, stop)
        if pages:
            reservation.next_page = stop
            self._unreserve(reservation, len(pages))
        cached = reservation.cached
        if self._files.get(reservation.name) is not cached:
            return False
        for page in pages:
            if page not in cached.pages:
                cached.pages.add(page)
                self._lru[(reservation.name, page)] = None
            else:
                self._lru.move_to_end((reservation.name, page))
        return True

    def release(self, reservation: Reservation) -> None:
        """End a reservation, committed or not."""
        self._unreserve(reservation, len(range(reservation.next_page, reservation.pages.stop)))
        reservation.next_page = reservation.pages.stop
        os.close(reservation.fd)
        cached = reservation.cached
        if self._files.get(reservation.name) is cached and not cached.pages and not cached.reserved:
            self.discard(reservation.name)

    def _unreserve(self, reservation: Reservation, count: int) -> None:
        reservation.cached.reserved -= count
        self._reserved -= count

    def write_page(self, name: str, size: int, page: int, data: bytes) -> bool:
        """Store one whole page (the last page of the file may be short)."""
        return self.write_pages(name, size, page, data)

    def adopt(self, name: str, size: int, source: Path) -> bool:
        """Take a complete local copy of a version (e.g. a file just uploaded
        from the staging area) into the cache, if it fits under the cap."""
        pages = len(pages_of((0, size), self.page_size))
        if pages > self.cap_pages - self._reserved or size == 0:
            return False
        self.discard(name)
        if not self._evict(pages):
            return False
        target = self._data_dir / name
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            log.info("read cache: cannot adopt %s: %s", source, exc)
            target.unlink(missing_ok=True)
            return False
        cached = self._files[name] = _CachedFile(size=size, pages=set(range(pages)))
        for page in cached.pages:
            self._lru[(name, page)] = None
        return True

    def discard(self, name: str) -> None:
        """Forget one cached version entirely."""
        cached = self._files.pop(name, None)
        if cached is None:
            return
        for page in cached.pages:
            self._lru.pop((name, page), None)
        if cached.fd is not None:
            cached.window.drop()
            self._windows.pop(name, None)
            os.close(cached.fd)
            self._open.pop(name, None)
        (self._data_dir / name).unlink(missing_ok=True)

    def _fd(self, name: str, cached: _CachedFile) -> int:
        if cached.fd is None:
            while len(self._open) >= MAX_OPEN_FILES:
                self._close_fd(next(iter(self._open)))
            fd = os.open(self._data_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # as long as its content from the start (a hole costs no disk): a
                # mapping of any of its pages (see window.py) is within the file
                if os.fstat(fd).st_size < cached.size:
                    os.ftruncate(fd, cached.size)
            except OSError:
                os.close(fd)
                raise
            cached.fd = fd
        self._open[name] = None
        self._open.move_to_end(name)
        return cached.fd

    def _close_fd(self, name: str) -> None:
        self._open.pop(name, None)
        cached = self._files.get(name)
        if cached is not None and cached.fd is not None:
            self._drop_window(name)
            os.close(cached.fd)
            cached.fd = None

    def _drop_window(self, name: str) -> None:
        self._windows.pop(name, None)
        cached = self._files.get(name)
        if cached is not None:
            cached.window.drop()

    def _evict(self, room_pages: int) -> bool:
        """Drop least-recently-used pages until ``room_pages`` more fit under
        the cap (pages reserved by downloads in flight count as used);
        pinned versions are passed over.  False if they cannot be made to fit."""
        passed = 0  # pinned pages moved to the young end in this call
        while len(self._lru) + self._reserved + room_pages > self.cap_pages:
            if passed >= len(self._lru):
                return False  # only pinned pages are left
            (name, page), _ = self._lru.popitem(last=False)
            if name in self._pinned:
                self._lru[(name, page)] = None
                passed += 1
                continue
            cached = self._files[name]
            cached.pages.discard(page)
            if not cached.pages and not cached.reserved:
                self.discard(name)
                continue
            if self._punch_supported:
                try:
                    punch_hole(self._fd(name, cached), page * self.page_size, self.page_size)
                    continue
                except OSError as exc:
                    log.info("read cache: hole punching unsupported (%s); evicting whole files", exc)
                    self._punch_supported = False
            self.discard(name)
        return True
