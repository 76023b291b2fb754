"""The fetcher against an in-memory content source (no HTTP: this is the
cache's logic), in both of its download modes: streamed bytes, and bytes
written straight into the store's file (``fill``)."""

import os

import pytest
import trio
import trio.testing

from cloudfs.cache.blocks import BlockStore
from cloudfs.cache.fetcher import Fetcher, Source
from cloudfs.errors import ProtocolError

PAGE = 4096


class Remote:
    """Serves bytes in small pieces and counts what it was asked for."""

    def __init__(self, data: bytes, fail_times: int = 0) -> None:
        self.data = data
        self.requests: list[tuple[int, int]] = []
        self.fail_times = fail_times
        self.gate = trio.Event()
        self.gate.set()

    async def stream(self, token, off, length):
        self.requests.append((off, length))
        await self.gate.wait()
        if self.fail_times:
            self.fail_times -= 1
            yield self.data[off : off + 10]
            raise OSError("connection dropped")
        for i in range(off, off + length, 1000):
            await trio.sleep(0)
            yield self.data[i : min(i + 1000, off + length)]

    async def fill(self, token, off, length, fd, progress):
        self.requests.append((off, length))
        await self.gate.wait()
        if self.fail_times:
            self.fail_times -= 1
            os.pwrite(fd, self.data[off : off + 10], off)
            progress(off + 10)
            raise ProtocolError("connection dropped")
        await trio.sleep(0)
        os.pwrite(fd, self.data[off : off + length], off)
        progress(off + length)


@pytest.fixture(params=["stream", "fill"])
def mode(request):
    return request.param


@pytest.fixture
def make(mode):
    def make(tmp_path, nursery, data, cap=64 * PAGE, **kw):
        store = BlockStore(tmp_path, cap_bytes=cap, page_size=PAGE)
        store.open()
        remote = Remote(data, **kw)
        fill = remote.fill if mode == "fill" else None
        fetcher = Fetcher(store, remote.stream, nursery, part_size=4 * PAGE, max_parallel=2, fill=fill)
        return fetcher, remote, Source("f", len(data), None)

    return make


DATA = bytes(range(256)) * 100  # 25600 bytes: 6.25 pages


async def test_fetcher_reads_exact_spans_and_caches(tmp_path, nursery, make):
    fetcher, remote, src = make(tmp_path, nursery, DATA)
    assert await fetcher.read(src, (5000, 9000)) == DATA[5000:9000]
    assert remote.requests == [(4096, 8192)]
    assert await fetcher.read(src, (4096, 8000)) == DATA[4096:8000]
    assert len(remote.requests) == 1  # served from the store
    assert await fetcher.read(src, (25000, 99999)) == DATA[25000:]
    assert await fetcher.read(src, (30000, 40000)) == b""


async def test_fetcher_concurrent_readers_share_one_download(tmp_path, nursery, make):
    fetcher, remote, src = make(tmp_path, nursery, DATA)
    remote.gate = trio.Event()
    results = []

    async def reader():
        results.append(await fetcher.read(src, (0, 8192)))

    async with trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(reader)
        await trio.sleep(0.01)
        remote.gate.set()
    assert results == [DATA[:8192]] * 5
    assert remote.requests == [(0, 8192)]


async def test_fetcher_prefetch_then_read_waits_instead_of_refetching(tmp_path, nursery, make):
    fetcher, remote, src = make(tmp_path, nursery, DATA)
    fetcher.prefetch(src, (0, len(DATA)))
    assert await fetcher.read(src, (0, len(DATA))) == DATA
    covered = sum(length for _, length in remote.requests)
    assert covered == len(DATA)
    # split into parts of at most 4 pages
    assert all(length <= 4 * PAGE for _, length in remote.requests)


async def test_fetcher_retries_after_a_failed_download(tmp_path, nursery, make):
    fetcher, remote, src = make(tmp_path, nursery, DATA, fail_times=1)
    assert await fetcher.read(src, (100, 5000)) == DATA[100:5000]
    assert len(remote.requests) == 2


async def test_fetcher_works_with_a_zero_cap_cache(tmp_path, nursery, make):
    fetcher, remote, src = make(tmp_path, nursery, DATA, cap=0)
    assert await fetcher.read(src, (0, 10000)) == DATA[:10000]
    assert await fetcher.read(src, (0, 10000)) == DATA[:10000]
    assert len(remote.requests) == 2


async def test_fetcher_fill_leaves_nothing_reserved_and_keeps_the_cap(tmp_path, nursery):
    store = BlockStore(tmp_path, cap_bytes=4 * PAGE, page_size=PAGE)
    store.open()
    remote = Remote(DATA)
    fetcher = Fetcher(store, remote.stream, nursery, part_size=4 * PAGE, max_parallel=2, fill=remote.fill)
    src = Source("f", len(DATA), None)
    for off in range(0, len(DATA), 2 * PAGE):  # 7 pages through a 4-page cache, with read-ahead
        fetcher.prefetch(src, (off, off + 4 * PAGE))
        assert await fetcher.read(src, (off, off + 2 * PAGE)) == DATA[off:off + 2 * PAGE]
        assert store.used_bytes + store._reserved * PAGE <= store.cap_bytes
    await trio.testing.wait_all_tasks_blocked()
    assert store._reserved == 0


async def test_fetcher_fill_hands_over_pages_as_they_land(tmp_path, nursery):
    """A read waits for its own pages, not for the whole part they are downloaded in."""
    store = BlockStore(tmp_path, cap_bytes=64 * PAGE, page_size=PAGE)
    store.open()
    rest = trio.Event()

    async def fill(token, off, length, fd, progress):
        os.pwrite(fd, DATA[off : off + PAGE + 100], off)
        progress(off + PAGE + 100)  # the first page and a bit of the second
        await rest.wait()
        os.pwrite(fd, DATA[off + PAGE + 100 : off + length], off + PAGE + 100)
        progress(off + length)

    fetcher = Fetcher(store, Remote(DATA).stream, nursery, part_size=4 * PAGE, max_parallel=2, fill=fill)
    src = Source("f", len(DATA), None)
    fetcher.prefetch(src, (0, 4 * PAGE))  # one part of 4 pages
    with trio.fail_after(5):
        assert await fetcher.read(src, (0, PAGE)) == DATA[:PAGE]
    assert not store.has_page("f", 1) and store._reserved == 3
    assert store.used_bytes + store._reserved * PAGE <= store.cap_bytes
    rest.set()
    assert await fetcher.read(src, (PAGE, 4 * PAGE)) == DATA[PAGE : 4 * PAGE]
    await trio.testing.wait_all_tasks_blocked()
    assert store._reserved == 0 and store.used_bytes == 4 * PAGE
