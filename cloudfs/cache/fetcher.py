"""Fetcher: reads remote content through the BlockStore, sharing downloads.

A read asks for a span of one content version.  Pages already in the store
are served from disk; missing pages are downloaded as contiguous runs, each
run one streamed HTTP range; pages already being downloaded (by read-ahead or
another reader) are waited for instead of fetched twice.  Every in-flight page
carries its bytes once it arrives, so a waiter never depends on the store
keeping the page (it may have been evicted, or the cache disk may be full).

The fetcher knows nothing about HTTP: it is given a ``stream(token, off,
length)`` function yielding bytes and, optionally, a ``fill(token, off,
length, fd)`` function that writes the bytes straight into a file at their
own offsets.  With ``fill``, a download writes into room the store reserved
in the cached file (no byte passes through the event loop) and its pages are
committed when it ends; ``stream`` remains for what the store cannot keep.
Background downloads (read-ahead) run in a nursery owned by the mount,
bounded by a capacity limiter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, overload

import trio

from cloudfs.cache.blocks import BlockStore, Reservation
from cloudfs.cache.ranges import Span, clamp, pages_of, runs
from cloudfs.errors import ProtocolError

log = logging.getLogger(__name__)

StreamFn = Callable[[Any, int, int], AsyncGenerator[bytes, None]]
#: ``fill(token, off, length, fd, progress)``: ``progress(upto)`` says the file holds every byte from ``off`` to ``upto``
FillFn = Callable[[Any, int, int, int, Callable[[int], None]], Awaitable[None]]

#: a read retries this many times when the downloads it waited for failed
READ_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Source:
    """One content version: its cache name, its size, and the token the
    stream function needs to download it (for cloudfs, the remote Entry)."""

    name: str
    size: int
    token: Any = field(compare=False, hash=False)


class _InFlight:
    __slots__ = ("done", "data", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.data: bytes | None = None
        self.error: BaseException | None = None


class Fetcher:
    def __init__(
        self,
        store: BlockStore,
        stream: StreamFn,
        nursery: trio.Nursery,
        *,
        part_size: int = 8 << 20,
        max_parallel: int = 4,
        fill: FillFn | None = None,
    ) -> None:
        self.store = store
        self._stream = stream
        self._fill = fill
        self._nursery = nursery
        self.page_size = store.page_size
        # a part is a whole number of pages
        self.part_size = max(part_size // self.page_size, 1) * self.page_size
        self._prefetch_limit = trio.CapacityLimiter(max_parallel)
        self._inflight: dict[tuple[str, int], _InFlight] = {}
        #: bytes downloaded, for statistics and tests
        self.bytes_fetched = 0

    @overload
    async def read(self, source: Source, span: Span) -> bytes: ...

    @overload
    async def read(self, source: Source, span: Span, *, mapped: bool) -> bytes | memoryview: ...

    async def read(self, source: Source, span: Span, *, mapped: bool = False) -> bytes | memoryview:
        """Bytes of ``span`` (short only at end of file).  ``mapped``: a
        view of the cache file's pages when they are all cached
        (:meth:`BlockStore.read`), good until the next await."""
        start, end = clamp(span, source.size)
        if start >= end:
            return b""
        store = self.store
        wanted = pages_of((start, end), self.page_size)
        #: pages that came from downloads the store could not keep
        kept: dict[int, bytes] = {}
        error: BaseException | None = None
        for _ in range(READ_ATTEMPTS):
            if not kept:
                data = store.read(source.name, (start, end), mapped=mapped)
                if data is not None:
                    return data  # the common case: one read from the cache file
            need = [p for p in wanted if p not in kept and not store.has_page(source.name, p)]
            if not need:
                return self._assemble(source, wanted, kept, start, end)
            self._start(source, [p for p in need if (source.name, p) not in self._inflight], limited=False)
            for page in need:
                flight = self._inflight.get((source.name, page))
                if flight is None:
                    continue
                await flight.done.wait()
                if flight.data is not None:
                    kept[page] = flight.data
                elif flight.error is not None:
                    error = flight.error
        raise error or ProtocolError("download failed")

    def _assemble(self, source: Source, wanted: range, kept: dict[int, bytes], start: int, end: int) -> bytes:
        pieces = []
        for page in wanted:
            data = kept.get(page)
            if data is None:
                data = self.store.read_page(source.name, page)
            if data is None:
                raise ProtocolError("a cached page vanished")  # pragma: no cover - eviction race
            pieces.append(data)
        first = wanted[0] * self.page_size
        return b"".join(pieces)[start - first : end - first]

    def prefetch(self, source: Source, span: Span) -> None:
        """Start background downloads of the missing pages of ``span``, and
        disk reads of the pages already cached."""
        span = clamp(span, source.size)
        store = self.store
        missing_pages = store.missing_pages(source.name, source.size, span)
        if len(missing_pages) * store.page_size < span[1] - span[0]:
            store.will_need(source.name, span)
        missing = [p for p in missing_pages if (source.name, p) not in self._inflight]
        self._start(source, missing, limited=True)

    def _start(self, source: Source, pages: list[int], *, limited: bool) -> None:
        """Register the pages as in flight (now, atomically) and download them
        as runs of at most ``part_size`` bytes."""
        per_part = self.part_size // self.page_size
        for run in runs(sorted(pages)):
            for i in range(0, len(run), per_part):
                part = run[i : i + per_part]
                flights = []
                for page in part:
                    flight = _InFlight()
                    self._inflight[(source.name, page)] = flight
                    flights.append(flight)
                self._nursery.start_soon(self._download, source, part, flights, limited)

    async def _download(self, source: Source, part: range, flights: list[_InFlight], limited: bool) -> None:
        off = part.start * self.page_size
        end = min(part.stop * self.page_size, source.size)
        try:
            if limited:
                async with self._prefetch_limit:
                    await self._fetch(source, off, end, part, flights)
            else:
                await self._fetch(source, off, end, part, flights)
        except Exception as exc:
            # waiters see the error and retry on their own; a read-ahead failure is not fatal
            log.debug("download of %s [%d, %d) failed: %r", source.name, off, end, exc)
            for flight in flights:
                flight.error = flight.error or exc
        except BaseException:
            for flight in flights:
                flight.error = flight.error or ProtocolError("download cancelled")
            raise
        finally:
            for i, flight in enumerate(flights):
                key = (source.name, part.start + i)
                if self._inflight.get(key) is flight:
                    del self._inflight[key]
                flight.done.set()

    async def _fetch(self, source: Source, off: int, end: int, part: range, flights: list[_InFlight]) -> None:
        fill = self._fill
        reservation = self.store.reserve(source.name, source.size, part) if fill is not None else None
        if fill is None or reservation is None:
            await self._stream_into(source, off, end, part, flights)
            return
        held = reservation  # (for the closure: reservation itself is set to None further down)

        def progress(upto: int) -> None:
            # whole pages (or the file's short last one) are given to waiters as they land
            self._publish(source, held, part, flights, part.stop if upto >= end else upto // self.page_size)

        try:
            try:
                await fill(source.token, off, end - off, reservation.fd, progress)
            except OSError as exc:
                # the cache file could not take them (a full cache disk): the
                # waiters get the bytes from a streamed download instead
                log.info("read cache: cannot store %s [%d, %d): %s", source.name, off, end, exc)
                self.store.release(reservation)
                reservation = None
                await self._stream_into(source, off, end, part, flights)
                return
            self.bytes_fetched += end - off
            self._publish(source, reservation, part, flights, part.stop)
        finally:
            if reservation is not None:
                self.store.release(reservation)

    def _publish(self, source: Source, reservation: Reservation, part: range, flights: list[_InFlight],
                 upto: int) -> None:
        """Pages of ``part`` below ``upto`` are in the file: commit them and wake their waiters."""
        first = reservation.next_page
        if upto <= first:
            return
        if not self.store.commit(reservation, upto):
            # the store dropped this version meanwhile: hand the bytes over
            for page in range(first, upto):
                page_off = page * self.page_size
                flights[page - part.start].data = os.pread(
                    reservation.fd, min(self.page_size, source.size - page_off), page_off)
        for page in range(first, upto):
            flight = flights[page - part.start]
            key = (source.name, page)
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            flight.done.set()

    async def _stream_into(
        self, source: Source, off: int, end: int, part: range, flights: list[_InFlight]
    ) -> None:
        """Stream one part, storing whole pages as soon as they are complete,
        in one write per received chunk (per-page work is what costs)."""
        page_size = self.page_size
        page = part.start
        # received bytes not yet stored: ``pending[used:]``
        pending = bytearray()
        used = 0
        async with aclosing(self._stream(source.token, off, end - off)) as chunks:
            async for chunk in chunks:
                self.bytes_fetched += len(chunk)
                if used:
                    del pending[:used]
                    used = 0
                pending += chunk
                # pages complete in ``pending`` (which starts at page ``page``);
                # the file's last page may be short
                base = page * page_size
                ready = 0
                while page + ready < part.stop and min((page + ready + 1) * page_size, source.size) <= base + len(pending):
                    ready += 1
                if not ready:
                    continue
                length = min((page + ready) * page_size, source.size) - base
                with memoryview(pending) as view:
                    block = view[:length]
                    stored = self.store.write_pages(source.name, source.size, page, block)
                    for i in range(ready):
                        flight = flights[page + i - part.start]
                        if not stored:
                            flight.data = bytes(block[i * page_size : (i + 1) * page_size])
                        flight.done.set()
                    block.release()
                used = length
                page += ready
        if page < part.stop:
            raise ProtocolError(f"download ended early: {page * page_size} of {end} bytes")
