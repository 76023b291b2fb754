"""A file's inode number, mtime and ctime neither move when its upload lands
nor at the next mount (same cache dir): git's index, rsync and backup tools
would read the file again."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio

from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount

ON_KOODRIVE = True


async def shown(fs: Driver, path: str) -> tuple[int, int, int]:
    attrs = await fs.ops.getattr(await fs.inode(path), None)  # type: ignore[arg-type]
    return attrs.st_ino, attrs.st_mtime_ns, attrs.st_ctime_ns


async def test_an_upload_landing_and_a_remount_move_no_inode_number_and_no_time(
    server: RunningServer, tmp_path: Path,
) -> None:
    # before: the number came from a per-mount counter, and ctime (and on KooDrive mtime) went
    # from this mount's clock to the server's when the upload landed or at the next mount
    top = f"/times-{uuid.uuid4().hex[:8]}"
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/e", b"")  # (numbered first here, never looked up by the next mount)
        await fs.write_file(f"{top}/f", b"content\n" * 100)
        pending = await shown(fs, f"{top}/f")
        await trio.sleep(1.1)  # the server's time of the upload is a later second
        assert await mount.writeback.drain() == []
        assert await shown(fs, f"{top}/f") == pending
        await fs.rename(f"{top}/f", f"{top}/g")
        renamed = await shown(fs, f"{top}/g")
        assert renamed[:2] == pending[:2] and renamed[2] > pending[2]
    async with ops_mount(server, tmp_path) as mount:
        again = await shown(Driver(mount), f"{top}/g")
        # (Cloudreve 3 gives a renamed file a new time, so a new version: its times are the server's then)
        assert again == renamed if server.dialect != "v3" else again[0] == renamed[0]
