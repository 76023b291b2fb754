"""A folder's listing as readdir hands it out: (name, entry) pairs that may
arrive page by page.

A cold listing of a large folder takes several paged requests, one after
the other (each needs the previous one's cursor).  Waiting for all of them
before the first readdir reply kept the kernel and the lister (``ls -l``
stats every entry it reads) idle for the whole walk, then the server idle
while they worked: :class:`FolderListing` is filled by a task of its own
(``Core.open_listing``) while readdir answers from the pages already here.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

from cloudfs.client.models import Entry

#: a name as the kernel is given it, and the entry it stands for
Shown = tuple[bytes, Entry]


class FolderListing:
    """One pass over a folder: what readdir offsets index (they stay valid
    while pages arrive: the list only grows)."""

    def __init__(self, since: int = 0) -> None:
        #: the metadata cache's change number when the pass began (its entries
        #: were read at or after it: see cloudfs.fs.meta)
        self.since = since
        self.shown: list[Shown] = []
        #: no more entries will come (all pages here, or ``error``)
        self.done = False
        self.error: BaseException | None = None
        #: set when entries arrive or the pass ends; replaced once set
        self._grown = trio.Event()
        #: the task filling it, while it runs (cancelled when the folder is closed)
        self.scope: trio.CancelScope | None = None

    def add(self, shown: Iterable[Shown]) -> None:
        self.shown.extend(shown)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.done = True
        self.error = error
        self.scope = None
        self._wake()

    def cancel(self) -> None:
        """Nobody reads this pass any more: stop fetching its pages."""
        if self.scope is not None:
            self.scope.cancel()

    async def wait_beyond(self, count: int) -> None:
        """Until more than ``count`` entries are here, or the pass ended
        (with its error raised if it ended there because of one)."""
        while len(self.shown) <= count and not self.done:
            await self._grown.wait()
        if len(self.shown) <= count and self.error is not None:
            raise self.error

    def _wake(self) -> None:
        self._grown.set()
        self._grown = trio.Event()
