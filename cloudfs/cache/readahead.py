"""Adaptive read-ahead, one per open file handle.  Pure logic, no I/O.

The window starts small (about 1 MiB) and doubles each time a sequential
reader comes within half a window of the prefetched edge, up to a cap.  A real
seek resets it, and a read after a seek fetches only what it asks for; only
when the next read continues from there does prefetching start again.

The kernel issues its own read-ahead requests concurrently, so they can arrive
slightly out of order: a read that lands a little behind the previous one, or
anywhere inside the already-prefetched region, still counts as sequential.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudfs.cache.ranges import Span

MiB = 1 << 20

#: how far behind the furthest read a read may land and still be "sequential"
BACKWARD_TOLERANCE = 1 * MiB


@dataclass
class ReadAhead:
    initial: int = 1 * MiB
    maximum: int = 64 * MiB
    #: current window size (what the next prefetch will ask for)
    window: int = 0
    #: furthest byte any read has reached; None before the first read
    furthest: int | None = None
    #: prefetch has been requested up to here (exclusive)
    ahead_to: int = 0

    def __post_init__(self) -> None:
        self.maximum = max(self.maximum, self.initial)
        self.window = self.window or self.initial

    def is_sequential(self, off: int) -> bool:
        if self.furthest is None:
            return off == 0
        return self.furthest - BACKWARD_TOLERANCE <= off <= max(self.ahead_to, self.furthest)

    def on_read(self, off: int, size: int, file_size: int) -> Span | None:
        """Account for a read of ``[off, off+size)``; return the span to prefetch
        now (beyond what is already requested), or None."""
        end = min(off + size, file_size)
        if not self.is_sequential(off):
            # a seek: fetch only what is asked; the next contiguous read restarts prefetching
            self.window = self.initial
            self.furthest = end
            self.ahead_to = end
            return None
        self.furthest = max(self.furthest or 0, end)
        self.ahead_to = max(self.ahead_to, self.furthest)
        if self.ahead_to >= file_size or self.ahead_to - self.furthest > self.window // 2:
            return None
        span = (self.ahead_to, min(self.ahead_to + self.window, file_size))
        self.ahead_to = span[1]
        self.window = min(self.window * 2, self.maximum)
        return span
