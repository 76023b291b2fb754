"""When a run of lookups missing the cache in one folder lists it (fs/misses.py)."""

from __future__ import annotations

from cloudfs.fs.misses import LIST_AFTER_MISSES, FolderMisses


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def misses(window_s: float = 60.0) -> tuple[FolderMisses, Clock]:
    clock = Clock()
    return FolderMisses(lambda: window_s, page_size=1000, timer=clock), clock


def test_the_third_miss_in_a_folder_lists_it_once_within_the_window() -> None:
    counted, clock = misses()
    assert LIST_AFTER_MISSES == 3
    assert [counted.note("/a") for _ in range(3)] == [False, False, True]
    # names the listing lacked miss again: asked one by one, not listed again
    assert not any(counted.note("/a") for _ in range(10))
    clock.now = 61.0  # its entries expired: a new run lists it again
    assert [counted.note("/a") for _ in range(3)] == [False, False, True]


def test_misses_count_per_folder_and_expire_with_the_window() -> None:
    counted, clock = misses()
    assert not counted.note("/a") and not counted.note("/b") and not counted.note("/a")
    clock.now = 61.0  # the first two of /a are too old to count with the next
    assert not counted.note("/a") and not counted.note("/a") and counted.note("/a")
    assert not counted.note("/b")


def test_a_folder_known_to_need_several_pages_waits_for_one_more_miss_per_page() -> None:
    counted, _ = misses()
    notes = [counted.note("/big", known_children=2500) for _ in range(5)]  # three pages
    assert notes == [False, False, False, False, True]
