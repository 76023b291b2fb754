"""Pure range arithmetic: half-open byte spans, sets of them, page alignment.

No I/O and no trio here, so everything can be tested exhaustively.
Spans are ``(start, end)`` tuples with ``start <= end``; ``end`` is exclusive.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

Span = tuple[int, int]


def clamp(span: Span, size: int) -> Span:
    """``span`` cut to ``[0, size)``; an empty span stays empty."""
    start, end = span
    start = min(max(start, 0), size)
    end = min(max(end, start), size)
    return (start, end)


def align_out(span: Span, unit: int) -> Span:
    """The smallest ``unit``-aligned span containing ``span``."""
    start, end = span
    if start >= end:
        return (start, start)
    return (start - start % unit, -(-end // unit) * unit)


def pages_of(span: Span, page_size: int) -> range:
    """Indexes of the pages a span touches."""
    start, end = span
    if start >= end:
        return range(0)
    return range(start // page_size, (end - 1) // page_size + 1)


def split(span: Span, part: int) -> list[Span]:
    """``span`` cut into consecutive pieces of at most ``part`` bytes, aligned to ``part``."""
    start, end = span
    out = []
    while start < end:
        stop = min((start // part + 1) * part, end)
        out.append((start, stop))
        start = stop
    return out


def runs(indexes: Iterable[int]) -> Iterator[range]:
    """Group sorted integers into runs of consecutive values."""
    first: int | None = None
    prev = 0
    for i in indexes:
        if first is None:
            first = prev = i
        elif i == prev + 1:
            prev = i
        else:
            yield range(first, prev + 1)
            first = prev = i
    if first is not None:
        yield range(first, prev + 1)


class SpanSet:
    """A set of bytes kept as sorted, disjoint, non-adjacent half-open spans."""

    __slots__ = ("_starts", "_ends")

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for span in spans:
            self.add(span)

    def __iter__(self) -> Iterator[Span]:
        return iter(zip(self._starts, self._ends))

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpanSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"SpanSet({list(self)!r})"

    @property
    def total(self) -> int:
        return sum(e - s for s, e in self)

    def add(self, span: Span) -> None:
        start, end = span
        if start >= end:
            return
        # every stored span that overlaps or touches [start, end) merges into it
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, span: Span) -> None:
        start, end = span
        if start >= end:
            return
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_left(self._starts, end)
        keep_s: list[int] = []
        keep_e: list[int] = []
        if lo < hi:
            if self._starts[lo] < start:
                keep_s.append(self._starts[lo])
                keep_e.append(start)
            if self._ends[hi - 1] > end:
                keep_s.append(end)
                keep_e.append(self._ends[hi - 1])
        self._starts[lo:hi] = keep_s
        self._ends[lo:hi] = keep_e

    def truncate(self, size: int) -> None:
        """Forget everything at or beyond ``size``."""
        self.remove((size, max(size, self._ends[-1] if self._ends else size)))

    def covers(self, span: Span) -> bool:
        start, end = span
        if start >= end:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def missing(self, span: Span) -> list[Span]:
        """Parts of ``span`` not in the set, in order."""
        start, end = span
        out: list[Span] = []
        if start >= end:
            return out
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        pos = start
        while i < len(self._starts) and self._starts[i] < end:
            s, e = self._starts[i], self._ends[i]
            if e > pos:
                if s > pos:
                    out.append((pos, s))
                pos = max(pos, e)
            i += 1
        if pos < end:
            out.append((pos, end))
        return out

    def to_list(self) -> list[list[int]]:
        return [[s, e] for s, e in self]

    @classmethod
    def from_list(cls, items: Iterable[Iterable[int]]) -> "SpanSet":
        out = cls()
        for item in items:
            s, e = item
            out.add((int(s), int(e)))
        return out
