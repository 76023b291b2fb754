"""read_parts (common/blobs.py): the bytes of a small answer, from the page
cache without a thread, the rest from the disk in one worker thread."""

from __future__ import annotations

import ctypes
import mmap
import os

import pytest
import trio

from cloudfs.server.common.blobs import read_parts

DATA = os.urandom(1 << 20)


def _resident(fd: int, size: int) -> list[bool]:
    """Which pages of the file are in the page cache (``mincore`` of a mapping:
    looking does not read anything in, unlike a read would)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        return [bool(b & 1) for b in vec.raw]
    finally:
        libc.munmap(addr, size)


def _evict(path: str, start: int = 0, length: int = 0) -> None:
    """Drop ``path``'s pages from the page cache (all of them when ``length`` is 0)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)
        size = os.fstat(fd).st_size
        first, end = start // mmap.PAGESIZE, ((start + length if length else size) - 1) // mmap.PAGESIZE + 1
        if any(_resident(fd, size)[first:end]):
            pytest.skip("the page cache keeps this file's pages (tmpfs?)")
    finally:
        os.close(fd)


@pytest.fixture
def threads(monkeypatch):
    """Counts the reads that went to a worker thread."""
    calls = []
    real = trio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):
        calls.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    return calls


@pytest.fixture
def blob_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(DATA[:1 << 20])
    return str(path)


def _read(path, parts, tail=b""):
    return trio.run(read_parts, path, parts, tail)


@pytest.fixture
def page_cache(monkeypatch):
    """A page cache that lacks the pages put into the returned set (offsets of
    4 KiB pages): a cache-only read stops at the first one, as the kernel's
    does (``RWF_NOWAIT``: partial, or EAGAIN when the first page is missing)."""
    missing: set[int] = set()
    real = os.preadv

    def preadv(fd, buffers, offset, flags=0):
        if not flags & os.RWF_NOWAIT:
            return real(fd, buffers, offset, flags)
        (buf,) = buffers
        stop = offset + len(buf)
        for page in sorted(missing):
            if page + 4096 > offset and page < stop:
                stop = max(page, offset)
                break
        if stop == offset:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(fd, [memoryview(buf)[:stop - offset]], offset)

    monkeypatch.setattr(os, "preadv", preadv)
    return missing


def test_read_parts_from_the_cache_and_from_the_disk(blob_file, threads):
    """The real page cache: evicted pages are read again, whichever way."""
    parts = [(b"", 4096, 65536)]
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]
    if threads:
        pytest.skip("no RWF_NOWAIT reads on this file system: every read goes to a thread")
    _evict(blob_file)
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]
    _read(blob_file, [(b"", 0, 1 << 20)])
    _evict(blob_file, 32768, 16384)  # a hole in the middle of the range
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]


def test_only_what_the_cache_lacks_goes_to_a_thread(blob_file, threads, page_cache):
    parts = [(b"", 4096, 65536)]
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]
    assert threads == []
    page_cache.add(4096)  # the first page: nothing read inline
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]
    assert len(threads) == 1
    page_cache.clear()
    page_cache.add(32768)  # a hole in the middle: the part before inline, the rest in one thread
    assert _read(blob_file, parts) == DATA[4096:4096 + 65536]
    assert len(threads) == 2


def test_read_parts_prefixes_and_tail(blob_file, threads, page_cache):
    parts = [(b"--a\r\n", 0, 10), (b"\r\n--b\r\n", 500_000, 20), (b"\r\n--c\r\n", (1 << 20) - 5, 5)]
    want = b"--a\r\n" + DATA[:10] + b"\r\n--b\r\n" + DATA[500_000:500_020] + b"\r\n--c\r\n" \
        + DATA[(1 << 20) - 5:1 << 20] + b"--end"
    assert _read(blob_file, parts, b"--end") == want
    page_cache.add(500_000 // 4096 * 4096)  # the second part is not in the cache
    assert _read(blob_file, parts, b"--end") == want
    assert len(threads) == 1


def test_read_parts_of_a_file_that_shrank(blob_file, page_cache):
    os.truncate(blob_file, 1000)
    # the answer stops where the file does: no tail, no later parts
    assert _read(blob_file, [(b"p", 990, 20), (b"q", 0, 5)], b"tail") == b"p" + DATA[990:1000]
    page_cache.add(0)
    assert _read(blob_file, [(b"p", 990, 20), (b"q", 0, 5)], b"tail") == b"p" + DATA[990:1000]
