"""A content version survives what does not change content, driven in-process:
a renamed or moved file is read again from the block cache, not downloaded."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount

#: also on the KooDrive emulator (tests/dialects.py)
ON_KOODRIVE = True

#: every request that signs a download URL or fetches content, per dialect
DOWNLOADS = {
    "v4": r"^/api/v4/file/(url|content/)",
    "v3": r"^/api/v3/file/download/",
    "koodrive": r"(/files/download$|^/obs/(?!upload/))",
}
CONTENT = random.Random(15).randbytes(3 << 20 | 4321)


@pytest.fixture
def top() -> str:
    return f"/versions-{uuid.uuid4().hex[:8]}"


async def test_a_renamed_and_moved_file_is_read_from_the_cache_not_downloaded_again(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """Cloudreve 3 moves a file's time on every rename and move, and its
    content version was made of id, size and time: a rename dropped the
    file's block cache (and refused open handles' reads as stale)."""
    async with ops_mount(server, tmp_path, upload_delay_s=0.0) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.mkdir(f"{top}/sub")
        await fs.write_file(f"{top}/a.bin", CONTENT)
        assert await mount.writeback.drain() == []
        # the block cache holds what was written and uploaded
        assert await fs.read_file(f"{top}/a.bin") == CONTENT
        version = (await mount.client.stat(f"{top}/a.bin")).version

        server.faults.set(path_regex=DOWNLOADS[server.dialect])  # counts requests, injects nothing
        await fs.rename(f"{top}/a.bin", f"{top}/b.bin")
        assert await fs.read_file(f"{top}/b.bin") == CONTENT
        await fs.rename(f"{top}/b.bin", f"{top}/sub/c.bin")
        assert await fs.read_file(f"{top}/sub/c.bin") == CONTENT
        assert server.faults.stats()["matched"] == 0, "the renamed file was downloaded again"
        assert (await mount.client.stat(f"{top}/sub/c.bin")).version == version
