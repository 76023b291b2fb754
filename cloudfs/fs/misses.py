"""Lookups that miss the metadata cache, counted per folder.

After a remount, or once the metadata TTL passed, ``git status``, ``make``,
an IDE indexer or ``rsync`` of an existing tree lstat every file of a
folder: each name the cache does not know was its own stat request (384
requests for a 300-file repository), where the folder's listing (one paged
request per folder) answers them all.  So a run of misses in one folder
lists it once (:class:`FolderMisses` says when) and the lookups are answered
from that listing; lookups in a folder whose listing is being fetched wait
for it instead of each sending a stat.  The listing's children are cached as
their stats would have been (``Core._list_on_misses``): a name it lacks is
still asked for, and the folder is not listed again for lookups within the
window.

A lone lookup still costs one stat: a path walk (``cat a/b/c``) looks up one
name per folder, and a huge folder is not listed for one name.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

#: the miss in one folder (each within the metadata TTL of the first) that
#: lists the folder instead of a stat.  With 3, a folder of one page costs at
#: most what stats would have (2 stats + 1 listing for 3 names) and every
#: further name is free; a pair of names (a file and its lock, swap or temp
#: sibling, ``foo`` tried then ``foo.lnk``) still costs two quick stats, not
#: the heavier listing of the whole folder.
LIST_AFTER_MISSES = 3

#: folders whose misses are counted at once (the oldest are forgotten)
MAX_FOLDERS = 4096


class FolderMisses:
    def __init__(self, window_s: Callable[[], float], *, page_size: int = 1000,
                 timer: Callable[[], float] = time.monotonic) -> None:
        #: how long misses count together (the metadata TTL: what one stat would be trusted for)
        self._window_s = window_s
        self._page_size = max(page_size, 1)
        self._timer = timer
        #: folder path -> (misses, when the first of them came), least recently missed first
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        #: folder path -> set when its listing (fetched for missed lookups) is in the cache or failed
        self._fetching: dict[str, trio.Event] = {}
        #: folder path -> when its listing was last fetched for missed lookups, least recent first
        self._listed: OrderedDict[str, float] = OrderedDict()

    def fetching(self, folder: str) -> trio.Event | None:
        """Set when the listing of ``folder`` being fetched for missed lookups
        is done (None: none is)."""
        return self._fetching.get(folder)

    def note(self, folder: str, known_children: int | None = None) -> bool:
        """One more lookup in ``folder`` missed the cache: whether it should
        list the folder.  ``known_children``: the folder's size when last
        listed, if known: a folder of several pages waits for one more miss
        per extra page, so listing it never costs more requests than the
        stats it saves."""
        now = self._timer()
        listed = self._listed.get(folder)
        if listed is not None and now - listed <= self._window_s():
            # listed a moment ago: the names it lacked are missing ones,
            # asked for one by one (each a negative entry then), not a reason to list again
            return False
        count, first = self._counts.pop(folder, (0, now))
        if now - first > self._window_s():
            count, first = 0, now
        count += 1
        pages = math.ceil(known_children / self._page_size) if known_children else 1
        if count >= LIST_AFTER_MISSES + max(pages, 1) - 1:
            self._listed.pop(folder, None)
            self._listed[folder] = now
            if len(self._listed) > MAX_FOLDERS:
                self._listed.popitem(last=False)
            return True
        self._counts[folder] = (count, first)
        if len(self._counts) > MAX_FOLDERS:
            self._counts.popitem(last=False)
        return False

    @contextmanager
    def listing(self, folder: str) -> Iterator[None]:
        """While the block fetches ``folder``'s listing, lookups there wait for it."""
        done = trio.Event()
        self._fetching[folder] = done
        try:
            yield
        finally:
            del self._fetching[folder]
            done.set()
