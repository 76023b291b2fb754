"""Large transfers stream: the server's memory stays flat whatever the file size."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cloudfs.server.testing import start_server

from .helpers import Api

CHUNK = 25 << 20
RSS_LIMIT = 150 << 20


def _rss_peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _piece(i: int) -> bytes:
    # cheap deterministic, incompressible-enough content
    return hashlib.sha512(str(i).encode()).digest() * (CHUNK // 64)


def _roundtrip(tmp_path, size: int) -> None:
    with start_server(tmp_path, capacity=4 << 30) as srv, Api(srv, timeout=300) as api:
        sess = api.session("/big.bin", size)
        assert sess["chunk_size"] == CHUNK
        sent = hashlib.sha256()
        count = -(-size // CHUNK)
        for i in range(count):
            data = _piece(i)[: min(CHUNK, size - i * CHUNK)]
            sent.update(data)
            assert api.chunk(sess["session_id"], i, data)["code"] == 0
        assert api.info("/big.bin")["data"]["size"] == size
        got = hashlib.sha256()
        total = 0
        with api.http.stream("GET", api.url("/big.bin")) as resp:
            assert resp.status_code == 200
            for block in resp.iter_bytes(1 << 20):
                got.update(block)
                total += len(block)
        assert total == size and got.hexdigest() == sent.hexdigest()
        # a ranged read in the middle streams too
        with api.http.stream("GET", api.url("/big.bin"), headers={"Range": f"bytes={size // 2}-"}) as resp:
            assert resp.status_code == 206
            assert sum(len(b) for b in resp.iter_bytes(1 << 20)) == size - size // 2
        peak = _rss_peak(srv.pid)
        print(f"server peak RSS {peak / 2**20:.1f} MiB for {size} bytes")
        assert peak < RSS_LIMIT, f"server peak RSS {peak >> 20} MiB"
        assert os.path.getsize(next(p for p in (srv.data_dir / "blobs").rglob("*") if p.is_file())) == size


def test_256mib_streams_with_flat_memory(tmp_path):
    _roundtrip(tmp_path, (256 << 20) + 12345)


@pytest.mark.slow
def test_2gib_streams_under_150mib_rss(tmp_path):
    _roundtrip(tmp_path, (2 << 30) + 1)
