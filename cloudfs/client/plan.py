"""Pure arithmetic of transfers: which HTTP ranges a read becomes, which
chunks an upload becomes, and in what order the chunks may be sent.

No I/O here, so all of it is unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``length`` bytes from ``start``: one HTTP ``Range`` request."""

    start: int
    length: int

    @property
    def end(self) -> int:
        """Exclusive end."""
        return self.start + self.length

    def header(self) -> str:
        """The ``Range`` header value (HTTP ranges are inclusive)."""
        return f"bytes={self.start}-{self.end - 1}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Upload chunk ``index``: ``length`` bytes of the source from ``offset``."""

    index: int
    offset: int
    length: int


def clamp_read(off: int, length: int, size: int) -> ByteRange | None:
    """The part of [off, off+length) inside a file of ``size`` bytes, or None
    when nothing is left to read (past EOF, empty request, empty file)."""
    if off < 0 or length < 0:
        raise ValueError(f"negative offset or length ({off}, {length})")
    end = min(off + length, size)
    if off >= end:
        return None
    return ByteRange(off, end - off)


def plan_ranges(span: ByteRange, part_size: int) -> list[ByteRange]:
    """Split ``span`` into ranges of ``part_size`` bytes (the last may be
    shorter) to be fetched in parallel.  Parts are aligned on multiples of
    ``part_size`` from the start of the file, so that overlapping reads ask
    for the same ranges (friendlier to caches in front of the server)."""
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    out: list[ByteRange] = []
    pos = span.start
    while pos < span.end:
        boundary = (pos // part_size + 1) * part_size
        stop = min(boundary, span.end)
        out.append(ByteRange(pos, stop - pos))
        pos = stop
    return out


def plan_chunks(size: int, chunk_size: int) -> list[Chunk]:
    """The chunks of an upload of ``size`` bytes with the server's
    ``chunk_size``.  ``chunk_size`` 0 means the whole file as chunk 0; a
    zero-byte file is still one empty chunk 0 (without it Cloudreve never
    completes the session)."""
    if size < 0 or chunk_size < 0:
        raise ValueError(f"negative size or chunk size ({size}, {chunk_size})")
    if size == 0 or chunk_size == 0 or chunk_size >= size:
        return [Chunk(0, 0, size)]
    count = -(-size // chunk_size)
    return [Chunk(i, i * chunk_size, min(chunk_size, size - i * chunk_size)) for i in range(count)]


def chunk_concurrency(server_allows: int | None, client_cap: int) -> int:
    """Chunks in flight at once: what the storage policy allows (absent or 0
    means one at a time, as Cloudreve's own uploader assumes), capped by the
    client's setting, never below one."""
    allowed = server_allows if server_allows and server_allows > 0 else 1
    return max(1, min(allowed, client_cap))


def split_last(chunks: list[Chunk]) -> tuple[list[Chunk], Chunk]:
    """(all chunks but the last, the last).  The last chunk goes alone,
    after every other one succeeded: Cloudreve before 4.18 completes the
    upload as soon as the last index arrives, whatever else is missing."""
    if not chunks:
        raise ValueError("an upload has at least one chunk")
    return chunks[:-1], chunks[-1]
