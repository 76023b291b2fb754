from hypothesis import given
from hypothesis import strategies as st

from cloudfs.cache.ranges import SpanSet, align_out, clamp, pages_of, runs, split

spans = st.tuples(st.integers(0, 200), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1]))


def as_bytes(spans_: list[tuple[int, int]]) -> set[int]:
    return {i for s, e in spans_ for i in range(s, e)}


def test_ranges_helpers():
    assert clamp((5, 50), 20) == (5, 20)
    assert clamp((30, 50), 20) == (20, 20)
    assert align_out((5, 17), 8) == (0, 24)
    assert list(pages_of((0, 1), 4)) == [0]
    assert list(pages_of((3, 9), 4)) == [0, 1, 2]
    assert list(pages_of((4, 4), 4)) == []
    assert split((3, 20), 8) == [(3, 8), (8, 16), (16, 20)]
    assert [list(r) for r in runs([1, 2, 3, 7, 9, 10])] == [[1, 2, 3], [7], [9, 10]]


@given(st.lists(st.tuples(st.booleans(), spans), max_size=30), spans)
def test_spanset_matches_a_set_of_bytes(ops, probe):
    model: set[int] = set()
    spanset = SpanSet()
    for add, span in ops:
        if add:
            spanset.add(span)
            model |= as_bytes([span])
        else:
            spanset.remove(span)
            model -= as_bytes([span])
    assert as_bytes(list(spanset)) == model
    assert spanset.total == len(model)
    # stored spans are sorted, disjoint and never touching
    items = list(spanset)
    assert all(a[1] < b[0] for a, b in zip(items, items[1:]))
    probe_bytes = as_bytes([probe])
    assert as_bytes(spanset.missing(probe)) == probe_bytes - model
    assert spanset.covers(probe) == probe_bytes.issubset(model)
    assert SpanSet.from_list(spanset.to_list()) == spanset


def test_spanset_truncate():
    s = SpanSet([(0, 10), (20, 30)])
    s.truncate(25)
    assert list(s) == [(0, 10), (20, 25)]
    s.truncate(5)
    assert list(s) == [(0, 5)]
