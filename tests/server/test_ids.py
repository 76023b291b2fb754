"""Opaque ids (common/ids.py): decoding answers the same, remembered or not."""

from __future__ import annotations

from hashids import Hashids

from cloudfs.server.common.ids import DECODE_MEMO, ENTITY, FILE, IdCodec


def test_decode_round_trips_and_refuses_the_wrong_kind_every_time():
    codec = IdCodec("a salt")
    for _ in range(2):  # the second round answers from the memo
        for value in (0, 1, 12345, 2**40):
            raw = codec.entity(value)
            assert raw == Hashids(salt="a salt").encode(value, ENTITY)
            assert codec.decode(raw, ENTITY) == value
            assert codec.decode(raw, FILE) is None
        assert codec.decode("", ENTITY) is None
        assert codec.decode("not a hashid!", ENTITY) is None
        assert codec.decode(Hashids(salt="a salt").encode(7, ENTITY, 1), ENTITY) is None  # three numbers


def test_the_memo_stays_bounded():
    codec = IdCodec("a salt")
    for value in range(DECODE_MEMO + 10):
        assert codec.decode(codec.file(value), FILE) == value
    assert len(codec._decoded) <= DECODE_MEMO
    assert codec.decode(codec.file(3), FILE) == 3
