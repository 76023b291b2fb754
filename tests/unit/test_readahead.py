from cloudfs.cache.readahead import MiB, ReadAhead

K128 = 128 * 1024
SIZE = 1 << 30


def test_readahead_starts_small_and_doubles_on_sequential_reads():
    ra = ReadAhead(initial=1 * MiB, maximum=8 * MiB)
    spans = []
    for off in range(0, 64 * MiB, K128):
        span = ra.on_read(off, K128, SIZE)
        if span:
            spans.append(span)
    sizes = [e - s for s, e in spans]
    assert sizes[0] == 1 * MiB
    assert sizes[:4] == [1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB]
    assert max(sizes) == 8 * MiB
    # contiguous, no gaps, no overlaps
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert spans[0][0] == K128


def test_readahead_resets_on_seek_and_random_reads_fetch_nothing_extra():
    ra = ReadAhead(initial=1 * MiB, maximum=8 * MiB)
    for off in range(0, 8 * MiB, K128):
        ra.on_read(off, K128, SIZE)
    assert ra.window > 1 * MiB
    assert ra.on_read(500 * MiB, 4096, SIZE) is None
    assert ra.window == 1 * MiB
    assert ra.on_read(300 * MiB, 4096, SIZE) is None
    # continuing right after the last read restarts prefetching with a small window
    span = ra.on_read(300 * MiB + 4096, 4096, SIZE)
    assert span is not None and span[1] - span[0] == 1 * MiB


def test_readahead_tolerates_slightly_out_of_order_kernel_reads():
    ra = ReadAhead(initial=1 * MiB, maximum=8 * MiB)
    ra.on_read(0, K128, SIZE)
    ra.on_read(2 * K128, K128, SIZE)
    before = ra.window
    assert ra.is_sequential(K128)
    ra.on_read(K128, K128, SIZE)
    assert ra.window >= before


def test_readahead_stops_at_end_of_file():
    ra = ReadAhead(initial=1 * MiB, maximum=8 * MiB)
    size = 3 * MiB
    spans = [ra.on_read(off, K128, size) for off in range(0, size, K128)]
    fetched = [s for s in spans if s]
    assert fetched[-1][1] == size
    assert all(e <= size for _, e in fetched)
