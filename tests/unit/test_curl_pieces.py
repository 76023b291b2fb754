"""The download's pieces, as libcurl hands them over, written to the cache
file with pwritev(): every byte lands at its own offset, however many pieces
there are (more than the kernel takes in one call) and whatever their sizes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cloudfs.client.curl import MAX_IOV, write_pieces


def test_pieces_land_back_to_back_at_the_offset(tmp_path: Path) -> None:
    pieces = [os.urandom(n) for n in (16384, 1, 15854, 53, 16384)]
    expected = b"".join(pieces)
    fd = os.open(tmp_path / "cache", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        write_pieces(fd, pieces, 4096)
        assert pieces == []
        assert os.pread(fd, len(expected) + 10, 4096) == expected
        assert os.pread(fd, 4096, 0) == bytes(4096)  # nothing before the offset
    finally:
        os.close(fd)


def test_more_pieces_than_one_call_takes(tmp_path: Path) -> None:
    pieces = [bytes([i % 251]) * (1 + i % 7) for i in range(3 * MAX_IOV + 5)]
    expected = b"".join(pieces)
    fd = os.open(tmp_path / "cache", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        write_pieces(fd, pieces, 0)
        assert os.pread(fd, len(expected) + 1, 0) == expected
    finally:
        os.close(fd)


def test_a_failed_write_leaves_what_was_not_written(tmp_path: Path) -> None:
    read_only = os.open(tmp_path / "cache", os.O_RDONLY | os.O_CREAT, 0o600)
    pieces = [b"a" * 10, b"b" * 5]
    try:
        with pytest.raises(OSError) as raised:
            write_pieces(read_only, pieces, 0)
        assert raised.value.errno == errno.EBADF
        assert pieces == [b"a" * 10, b"b" * 5]
    finally:
        os.close(read_only)
