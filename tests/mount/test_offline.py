"""Offline files: ``cloudfs pin`` keeps files in the cache, and a mount whose
server stops answering keeps serving what it knows, at once, until the
server is back (then the writes made meanwhile go up)."""

from __future__ import annotations

import errno
import json
import os
import random
import time
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer
from tests.dialects import SLOW
from tests.mount.conftest import TEST_OPTIONS, Remote, mounted, run_cloudfs, wait_until

#: 40 s a dialect: KooDrive's run is a slow one
ON_KOODRIVE = SLOW

#: a short timeout, so finding the server gone costs the test little
OFFLINE_OPTIONS = TEST_OPTIONS + ",metadata_ttl=1,timeout=3"


def status_of(mnt: Path) -> dict:
    return json.loads(run_cloudfs("status", str(mnt), "--json", check=True).stdout)[0]


def test_pinned_files_stay_readable_while_the_server_is_down(fresh_server: RunningServer, tmp_path: Path):
    server = fresh_server
    remote = Remote(server)
    big = random.Random(5).randbytes(3 << 20)
    remote.put_many({"/keep/a.txt": b"alpha\n", "/keep/sub/b.bin": big, "/other/c.txt": b"read once\n",
                     "/other/never-read.bin": b"x" * 100_000})
    with mounted(server, tmp_path, options=OFFLINE_OPTIONS) as d:
        mnt = d.path
        result = run_cloudfs("pin", str(mnt / "keep"), check=True)
        assert "pinned" in result.stdout
        # fetched in the background, without anyone reading it
        wait_until(lambda: status_of(mnt)["pins"]["cached"] == len(big) + 6, timeout=30)
        pins = status_of(mnt)["pins"]
        assert pins["paths"] == ["/keep"] and pins["files"] == 2 and pins["error"] is None
        assert (mnt / "other" / "c.txt").read_bytes() == b"read once\n"  # cached by reading
        time.sleep(1.2)  # past the metadata TTL: everything below must come from the last known state

        server.stop()
        try:
            # the first request finds the server gone (bounded by the timeout option)...
            started = time.monotonic()
            assert sorted(os.listdir(mnt / "keep")) == ["a.txt", "sub"]
            assert time.monotonic() - started < 30
            # ...after that, answers come at once: no wait per call
            started = time.monotonic()
            for _ in range(3):
                assert (mnt / "keep" / "a.txt").read_bytes() == b"alpha\n"
                assert (mnt / "keep" / "sub" / "b.bin").read_bytes() == big
                assert os.stat(mnt / "keep" / "sub" / "b.bin").st_size == len(big)
                assert (mnt / "other" / "c.txt").read_bytes() == b"read once\n"
                assert sorted(os.listdir(mnt)) == ["keep", "other"]
                assert not (mnt / "keep" / "nothing-here").exists()
                time.sleep(1.1)  # the TTL passes again and again
            assert time.monotonic() - started < 3 * 1.1 + 5
            # content never fetched cannot be read, and says so in bounded time
            started = time.monotonic()
            with pytest.raises(OSError) as info:
                (mnt / "other" / "never-read.bin").read_bytes()
            assert info.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.ECONNREFUSED)
            assert time.monotonic() - started < 30
            assert status_of(mnt)["offline"] is True
            assert "offline" in run_cloudfs("status", str(mnt), check=True).stdout
            # writes are staged as ever
            with open(mnt / "keep" / "a.txt", "ab") as fp:
                fp.write(b"written offline\n")
            assert (mnt / "keep" / "a.txt").read_bytes() == b"alpha\nwritten offline\n"
        finally:
            server.start()
        wait_until(lambda: not status_of(mnt)["offline"], timeout=30)
        run_cloudfs("umount", str(mnt), check=True)
        d.mounted = False
    assert remote.get("/keep/a.txt") == b"alpha\nwritten offline\n"

    # pins outlive the mount; unpin lets them go
    with mounted(server, tmp_path, options=OFFLINE_OPTIONS) as d:
        assert status_of(d.path)["pins"]["paths"] == ["/keep"]
        # a new version on the server is fetched by the next pass (a pin asks for one now)
        remote.put("/keep/a.txt", b"changed on the server\n")
        run_cloudfs("pin", str(d.path / "keep"), check=True)
        wait_until(lambda: status_of(d.path)["pins"]["cached"] == len(big) + 22 == status_of(d.path)["pins"]["bytes"],
                   timeout=30)
        assert "unpinned" in run_cloudfs("unpin", str(d.path / "keep"), check=True).stdout
        wait_until(lambda: status_of(d.path)["pins"]["paths"] == [], timeout=10)
        # bad input: one clear line each
        for args, message in ((["pin", str(tmp_path)], "not inside a cloudfs mount"),
                              (["pin", str(d.path / "missing")], "no such file"),
                              (["unpin", str(d.path / "other")], "not pinned")):
            result = run_cloudfs(*args)
            assert result.returncode != 0 and message in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
