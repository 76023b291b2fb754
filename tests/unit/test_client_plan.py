"""Range and chunk planning (cloudfs.client.plan)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudfs.client.plan import ByteRange, Chunk, chunk_concurrency, clamp_read, plan_chunks, plan_ranges, split_last


def test_clamp_read_inside_and_at_eof():
    assert clamp_read(0, 10, 100) == ByteRange(0, 10)
    assert clamp_read(95, 10, 100) == ByteRange(95, 5)
    assert clamp_read(100, 10, 100) is None
    assert clamp_read(120, 10, 100) is None
    assert clamp_read(0, 0, 100) is None
    assert clamp_read(0, 10, 0) is None


def test_clamp_read_rejects_negative():
    with pytest.raises(ValueError):
        clamp_read(-1, 10, 100)


def test_range_header_is_inclusive():
    assert ByteRange(10, 5).header() == "bytes=10-14"
    assert ByteRange(0, 1).header() == "bytes=0-0"


def test_plan_ranges_aligned_parts():
    parts = plan_ranges(ByteRange(5, 20), 8)
    assert parts == [ByteRange(5, 3), ByteRange(8, 8), ByteRange(16, 8), ByteRange(24, 1)]


def test_plan_ranges_single_part():
    assert plan_ranges(ByteRange(0, 8), 8) == [ByteRange(0, 8)]


@given(start=st.integers(0, 10_000), length=st.integers(1, 10_000), part=st.integers(1, 3000))
def test_plan_ranges_cover_span_exactly(start, length, part):
    span = ByteRange(start, length)
    parts = plan_ranges(span, part)
    assert parts[0].start == start and parts[-1].end == span.end
    for a, b in zip(parts, parts[1:]):
        assert a.end == b.start
    assert all(0 < p.length <= part for p in parts)
    # every boundary but the ends is aligned
    assert all(p.start % part == 0 for p in parts[1:])


def test_plan_chunks_regular():
    assert plan_chunks(10, 4) == [Chunk(0, 0, 4), Chunk(1, 4, 4), Chunk(2, 8, 2)]
    assert plan_chunks(8, 4) == [Chunk(0, 0, 4), Chunk(1, 4, 4)]


def test_plan_chunks_zero_byte_file_is_one_empty_chunk():
    assert plan_chunks(0, 4) == [Chunk(0, 0, 0)]
    assert plan_chunks(0, 0) == [Chunk(0, 0, 0)]


def test_plan_chunks_chunk_size_zero_means_whole_file():
    assert plan_chunks(1000, 0) == [Chunk(0, 0, 1000)]


def test_plan_chunks_small_file():
    assert plan_chunks(3, 25 << 20) == [Chunk(0, 0, 3)]


@given(size=st.integers(0, 100_000), chunk=st.integers(0, 5000))
def test_plan_chunks_cover_file(size, chunk):
    chunks = plan_chunks(size, chunk)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert sum(c.length for c in chunks) == size
    pos = 0
    for c in chunks:
        assert c.offset == pos
        pos += c.length
    if chunk and size:
        assert all(c.length == chunk for c in chunks[:-1])
        assert 0 < chunks[-1].length <= chunk


def test_chunk_concurrency():
    assert chunk_concurrency(None, 4) == 1
    assert chunk_concurrency(0, 4) == 1
    assert chunk_concurrency(3, 4) == 3
    assert chunk_concurrency(10, 4) == 4
    assert chunk_concurrency(10, 0) == 1


def test_split_last():
    chunks = plan_chunks(10, 4)
    head, last = split_last(chunks)
    assert head == chunks[:2] and last == chunks[2]
    assert split_last([Chunk(0, 0, 0)]) == ([], Chunk(0, 0, 0))
    with pytest.raises(ValueError):
        split_last([])
