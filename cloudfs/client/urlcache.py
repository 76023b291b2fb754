"""Signed download URLs, cached per (file id, content version) until
shortly before they expire.

A URL names one content version (Cloudreve puts the entity id in its path),
so the cache key includes the version: after an overwrite a new URL is
signed, and an old :class:`Entry` keeps reading the version it describes.
Parallel readers of one file share one signing request.  A URL the server
refuses is dropped (:meth:`UrlCache.invalidate`) and signed anew.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio
from cachetools import LRUCache

from cloudfs.client.dialect import SignedUrl
from cloudfs.client.models import Entry

log = logging.getLogger(__name__)

Key = tuple[str, str]

#: stop using a URL this long before it expires (at most)...
MARGIN_S = 60.0
#: ...and at most this fraction of its remaining life when it was signed
MARGIN_FRACTION = 0.25


class UrlCache:
    def __init__(self, sign: Callable[[Entry], Awaitable[SignedUrl]], *, maxsize: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self._sign = sign
        self._clock = clock
        #: key -> (url, local time after which it is not used)
        self._urls: LRUCache[Key, tuple[str, float]] = LRUCache(maxsize=maxsize)
        self._pending: dict[Key, trio.Event] = {}
        #: signing requests made, for tests and statistics
        self.signed = 0

    @staticmethod
    def key(entry: Entry) -> Key:
        return (entry.file_id, entry.version)

    def cached(self, entry: Entry) -> str | None:
        hit = self._urls.get(self.key(entry))
        if hit is None:
            return None
        url, use_until = hit
        if self._clock() >= use_until:
            self._urls.pop(self.key(entry), None)
            return None
        return url

    async def get(self, entry: Entry) -> str:
        key = self.key(entry)
        while True:
            url = self.cached(entry)
            if url is not None:
                return url
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()  # someone is signing it; if that failed we try ourselves
        done = self._pending[key] = trio.Event()
        try:
            signed = await self._sign(entry)
            self.signed += 1
            now = self._clock()
            remaining = signed.expires_at - now
            # a skewed clock can make a fresh URL look expired: use it once
            margin = min(MARGIN_S, max(remaining, 0.0) * MARGIN_FRACTION)
            self._urls[key] = (signed.url, now + max(remaining - margin, 0.0))
            return signed.url
        finally:
            del self._pending[key]
            done.set()

    def invalidate(self, entry: Entry, url: str) -> None:
        """Forget ``url`` (refused by the server) unless it was replaced already."""
        key = self.key(entry)
        hit = self._urls.get(key)
        if hit is not None and hit[0] == url:
            del self._urls[key]

    def clear(self) -> None:
        self._urls.clear()
