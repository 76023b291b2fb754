"""Views of a cache file's pages through a mapping window that is kept
between reads, so a FUSE reply is copied by the kernel straight from the
page cache without a copy into a Python object first.

Mapping and unmapping the span of every read cost more than the copy it
saved (about 20 us a read against 11 us for a ``pread`` of 128 KiB), and
made random 4 KiB reads slower; a window of ``WINDOW_SIZE`` bytes is mapped
once and serves every read inside it.  Only the pages a read touches are
faulted in (``MADV_POPULATE_READ``: one call instead of a fault per 64 KiB
in the kernel's copy), so the mount's resident set grows by at most one
window per open cache file, not by the file.

The store keeps every cache file as long as its content (sparse where no
page was written), so a window never reaches past the file's end; if the
file was cut short under the store anyway, mapping it or faulting its pages
in fails (``OSError``) instead of a ``SIGBUS`` when the kernel or anyone
touches the view.
"""

from __future__ import annotations

import errno
import mmap

#: bytes mapped at once per cache file (a multiple of the allocation granularity)
WINDOW_SIZE = 8 << 20
#: madvise() advice that faults a range's pages in (Linux 5.14; Python names it from 3.12 on)
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_populate_supported = True


class MappedWindow:
    """The current mapping window of one cache file (none at first)."""

    __slots__ = ("start", "mapping", "view_of")

    def __init__(self) -> None:
        self.start = 0
        self.mapping: mmap.mmap | None = None
        self.view_of: memoryview | None = None

    def view(self, fd: int, size: int, start: int, end: int) -> memoryview:
        """A read-only view of bytes ``[start, end)`` of the file behind
        ``fd`` (whose content is ``size`` bytes; ``end <= size``)."""
        mapping = self.mapping
        if mapping is None or start < self.start or end > self.start + len(mapping):
            mapping = self._remap(fd, size, start, end)
        assert self.view_of is not None
        lo, hi = start - self.start, end - self.start
        _populate(mapping, lo, hi)
        return self.view_of[lo:hi]

    def _remap(self, fd: int, size: int, start: int, end: int) -> mmap.mmap:
        base = start - start % WINDOW_SIZE
        length = min(max(WINDOW_SIZE, -(-(end - base) // WINDOW_SIZE) * WINDOW_SIZE), size - base)
        self.drop()
        try:
            mapping = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base)
        except ValueError as exc:  # Python's own check: the file is shorter than the window
            raise OSError(errno.EIO, f"cache file shorter than its content ({exc})") from None
        self.start, self.mapping, self.view_of = base, mapping, memoryview(mapping)
        return mapping

    def drop(self) -> None:
        """Forget the window.  It is unmapped once the last view handed
        out is gone (closing it now would fail while a reply holds one)."""
        self.mapping = self.view_of = None


def _populate(mapping: mmap.mmap, lo: int, hi: int) -> None:
    global _populate_supported
    if not _populate_supported or hi <= lo:
        return
    first = lo - lo % mmap.PAGESIZE
    try:
        mapping.madvise(_MADV_POPULATE_READ, first, hi - first)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise  # EFAULT: the file is shorter than the pages the store recorded
        _populate_supported = False  # an older kernel: the kernel's copy faults them in
