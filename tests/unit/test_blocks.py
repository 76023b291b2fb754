import os

import pytest

from cloudfs.cache import window
from cloudfs.cache.blocks import MAP_MIN, MAX_WINDOWS, BlockStore, cache_name

PAGE = 4096


def content(size: int, seed: int = 1) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def fill(store: BlockStore, name: str, data: bytes) -> None:
    for page in range(-(-len(data) // PAGE)):
        store.write_page(name, len(data), page, data[page * PAGE : (page + 1) * PAGE])


def disk_usage(store: BlockStore) -> int:
    return sum(os.stat(p).st_blocks * 512 for p in (store.root / "data").iterdir())


def test_blocks_round_trip_and_short_last_page(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=100 * PAGE, page_size=PAGE)
    store.open()
    data = content(3 * PAGE + 100)
    fill(store, "a", data)
    assert b"".join(store.read_page("a", p) for p in range(4)) == data
    assert store.missing_pages("a", len(data), (0, len(data))) == []
    assert store.read_page("b", 0) is None
    with pytest.raises(ValueError):
        store.write_page("a", len(data), 3, b"x")


def test_blocks_never_exceed_the_cap_and_evict_least_recently_used(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=8 * PAGE, page_size=PAGE)
    store.open()
    fill(store, "old", content(4 * PAGE, 1))
    fill(store, "hot", content(4 * PAGE, 2))
    store.read_page("old", 0)  # page 0 of "old" becomes the most recently used
    fill(store, "new", content(3 * PAGE, 3))
    assert store.used_bytes <= store.cap_bytes
    assert disk_usage(store) <= store.cap_bytes
    assert store.has_page("old", 0)
    assert not store.has_page("old", 1)
    assert all(store.has_page("new", p) for p in range(3))
    # pages that stay are intact after their neighbours' holes were punched
    assert store.read_page("old", 0) == content(4 * PAGE, 1)[:PAGE]


def test_blocks_survive_a_clean_restart_but_not_a_crash(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=16 * PAGE, page_size=PAGE)
    store.open()
    data = content(5 * PAGE)
    fill(store, "a", data)
    store.close()

    again = BlockStore(tmp_path, cap_bytes=16 * PAGE, page_size=PAGE)
    again.open()
    assert again.read_page("a", 4) == data[4 * PAGE :]
    # no close(): a crash.  The next start must not trust the index.
    crashed = BlockStore(tmp_path, cap_bytes=16 * PAGE, page_size=PAGE)
    crashed.open()
    assert crashed.read_page("a", 0) is None
    assert list((tmp_path / "data").iterdir()) == []


def test_blocks_smaller_cap_on_restart_trims(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=16 * PAGE, page_size=PAGE)
    store.open()
    fill(store, "a", content(10 * PAGE))
    store.close()
    small = BlockStore(tmp_path, cap_bytes=4 * PAGE, page_size=PAGE)
    small.open()
    assert small.used_bytes == 4 * PAGE


def test_blocks_adopt_and_zero_cap(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(content(3 * PAGE))
    store = BlockStore(tmp_path / "c", cap_bytes=8 * PAGE, page_size=PAGE)
    store.open()
    assert store.adopt("x", 3 * PAGE, src)
    assert store.read_page("x", 2) == content(3 * PAGE)[2 * PAGE :]
    none = BlockStore(tmp_path / "z", cap_bytes=0, page_size=PAGE)
    none.open()
    assert not none.write_page("x", PAGE, 0, b"\0" * PAGE)


def test_cache_name_depends_on_every_part_of_the_version():
    base = cache_name("id", "v1", 10)
    assert base != cache_name("id", "v2", 10)
    assert base != cache_name("id", "v1", 11)
    assert base != cache_name("id2", "v1", 10)
    assert base == cache_name("id", "v1", 10)


def test_blocks_reservations_count_against_the_cap_and_commit_what_was_written(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=8 * PAGE, page_size=PAGE)
    store.open()
    fill(store, "old", content(6 * PAGE, 1))
    data = content(4 * PAGE, 2)
    reservation = store.reserve("new", len(data), range(0, 4))
    assert reservation is not None
    assert store.used_bytes + 4 * PAGE <= store.cap_bytes  # room was made before anything was written
    assert store.reserve("other", PAGE, range(0, 5)) is None  # 5 pages do not fit beside the 4 reserved
    os.pwrite(reservation.fd, data, 0)  # as a download in a worker thread does
    assert not store.has_page("new", 0)  # not before it is committed
    assert store.commit(reservation)
    store.release(reservation)
    assert store.read("new", (0, len(data))) == data
    assert disk_usage(store) <= store.cap_bytes


def test_blocks_a_reserved_file_survives_eviction_of_its_other_pages(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=4 * PAGE, page_size=PAGE)
    store.open()
    data = content(4 * PAGE, 3)
    store.write_page("f", len(data), 0, data[:PAGE])
    reservation = store.reserve("f", len(data), range(1, 4))
    assert reservation is not None
    fill(store, "g", content(PAGE, 4))  # evicts page 0 of "f", the only one cached
    os.pwrite(reservation.fd, data[PAGE:], PAGE)
    assert store.commit(reservation)
    store.release(reservation)
    assert store.read("f", (PAGE, len(data))) == data[PAGE:]


def test_blocks_a_version_dropped_while_reserved_is_not_committed(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=8 * PAGE, page_size=PAGE)
    store.open()
    reservation = store.reserve("f", 2 * PAGE, range(0, 2))
    assert reservation is not None
    os.pwrite(reservation.fd, b"x" * 2 * PAGE, 0)
    store.discard("f")
    assert not store.commit(reservation)
    assert os.pread(reservation.fd, 4, 0) == b"xxxx"  # still readable for the waiters
    store.release(reservation)
    assert store.read("f", (0, 10)) is None and store._reserved == 0


def test_blocks_pinned_versions_are_never_evicted_and_the_cap_still_holds(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=8 * PAGE, page_size=PAGE)
    store.open()
    offline = content(4 * PAGE + 10, 1)
    store.pin(frozenset({"offline"}))
    fill(store, "offline", offline)
    assert store.cached_bytes("offline") == len(offline)
    # a stream of other reads cycles through the rest of the cache only
    for i in range(10):
        fill(store, f"other{i}", content(3 * PAGE, i))
        assert store.used_bytes <= store.cap_bytes
    assert b"".join(store.read_page("offline", p) for p in range(5)) == offline
    # with only pinned pages left there is no room: the write is refused, the cap holds
    store.pin(frozenset({"offline", "other9"}))
    assert not store.write_pages("big", 4 * PAGE, 0, content(4 * PAGE, 3))
    assert store.used_bytes <= store.cap_bytes
    assert store.reserve("big", 4 * PAGE, range(0, 4)) is None
    # unpinned, it is an ordinary cached file again
    store.pin(frozenset())
    fill(store, "again", content(4 * PAGE, 4))
    assert store.cached_bytes("offline") < len(offline)
    assert store.cached_bytes("missing") == 0


def test_blocks_mapped_reads_give_the_same_bytes_as_copies(tmp_path, monkeypatch):
    # small windows, so that spans cross them and the window moves
    monkeypatch.setattr(window, "WINDOW_SIZE", 16 * PAGE)
    store = BlockStore(tmp_path, cap_bytes=100 * PAGE, page_size=PAGE)
    store.open()
    data = content(40 * PAGE + 123)
    fill(store, "a", data)
    big = MAP_MIN + 3 * PAGE + 5
    # small spans are copies (aligned, unaligned, empty); big ones views (aligned, unaligned,
    # across windows, to the short end of the file, past it, a window back)
    for span, kind in (((0, PAGE), bytes), ((100, 3 * PAGE + 7), bytes), ((7, 7), bytes),
                       ((0, MAP_MIN), memoryview), ((100, 100 + big), memoryview),
                       ((10 * PAGE + 1, 10 * PAGE + 1 + big), memoryview), ((len(data) - big, len(data) + 50), memoryview),
                       ((20 * PAGE, 60 * PAGE), memoryview), ((PAGE, PAGE + MAP_MIN), memoryview)):
        copy = store.read("a", span)
        view = store.read("a", span, mapped=True)
        assert isinstance(view, kind)
        assert copy == bytes(view) == data[span[0] : span[1]]
    store.discard("b")
    assert store.read("b", (0, MAP_MIN), mapped=True) is None


def test_blocks_a_mapped_read_outlives_the_version_being_dropped_and_the_window_moving(tmp_path, monkeypatch):
    monkeypatch.setattr(window, "WINDOW_SIZE", 32 * PAGE)
    store = BlockStore(tmp_path, cap_bytes=100 * PAGE, page_size=PAGE)
    store.open()
    data = content(80 * PAGE)
    fill(store, "a", data)
    first = store.read("a", (PAGE, PAGE + MAP_MIN), mapped=True)
    moved = store.read("a", (40 * PAGE, 40 * PAGE + MAP_MIN), mapped=True)  # another window
    store.discard("a")  # the file is unlinked; the mappings keep their pages
    assert bytes(first) == data[PAGE : PAGE + MAP_MIN]
    assert bytes(moved) == data[40 * PAGE : 40 * PAGE + MAP_MIN]


def test_blocks_a_window_mapped_before_pages_were_written_serves_them(tmp_path):
    # a cold sequential read: the window is mapped while the file is still short
    store = BlockStore(tmp_path, cap_bytes=100 * PAGE, page_size=PAGE)
    store.open()
    data = content(64 * PAGE)
    for page in range(32):
        store.write_page("a", len(data), page, data[page * PAGE : (page + 1) * PAGE])
    assert bytes(store.read("a", (0, 32 * PAGE), mapped=True)) == data[: 32 * PAGE]
    assert store.read("a", (32 * PAGE, 48 * PAGE), mapped=True) is None  # not cached yet
    for page in range(32, 64):
        store.write_page("a", len(data), page, data[page * PAGE : (page + 1) * PAGE])
    assert bytes(store.read("a", (30 * PAGE, 64 * PAGE), mapped=True)) == data[30 * PAGE :]


@pytest.mark.parametrize("mapped_before", [False, True])
def test_blocks_a_cache_file_cut_short_under_the_store_is_dropped_not_mapped(tmp_path, mapped_before):
    store = BlockStore(tmp_path, cap_bytes=100 * PAGE, page_size=PAGE)
    store.open()
    data = content(64 * PAGE)
    fill(store, "a", data)
    if mapped_before:  # the window is mapped already: faulting the missing pages in fails
        assert bytes(store.read("a", (0, 16 * PAGE), mapped=True)) == data[: 16 * PAGE]
    os.truncate(next((store.root / "data").iterdir()), 16 * PAGE)
    # a view of pages past the end would kill the mount (SIGBUS) when the kernel or anyone touched them
    assert store.read("a", (32 * PAGE, 48 * PAGE), mapped=True) is None
    assert store.cached_bytes("a") == 0


def test_blocks_keep_a_bounded_number_of_mapping_windows(tmp_path):
    store = BlockStore(tmp_path, cap_bytes=1000 * PAGE, page_size=PAGE)
    store.open()
    data = content(MAP_MIN)
    names = [f"f{i}" for i in range(MAX_WINDOWS + 3)]
    for name in names:
        fill(store, name, data)

    def mapped_files() -> int:
        with open("/proc/self/maps") as fp:
            return sum(str(store.root / "data") in line for line in fp)

    first = store.read(names[0], (0, MAP_MIN), mapped=True)
    for name in names[1:]:
        view = store.read(name, (0, MAP_MIN), mapped=True)
        assert view is not None and bytes(view) == data
        del view
    assert bytes(first) == data  # a view handed out stays good after its window is dropped
    del first
    assert mapped_files() == MAX_WINDOWS
    store.close()
    assert mapped_files() == 0
