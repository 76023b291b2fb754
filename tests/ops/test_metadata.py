"""Mode and times through the fs core, on every backend, with or without
custom metadata on the server (client/overlay.py keeps it where the server
keeps none)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from cloudfs.fs.attrs import AttrChanges
from cloudfs.server.testing import RunningServer
from tests.dialects import keeps_metadata
from tests.ops.conftest import Driver, ops_mount

ON_KOODRIVE = True


@pytest.fixture
def top() -> str:
    return f"/ops-{uuid.uuid4().hex[:8]}"


async def forgotten(fs: Driver, path: str) -> int:
    """``path``'s inode forgotten by the kernel and what the mount knew of
    it timed out (its entry, its folder's listing): the next lookup builds
    it from the server's word."""
    ino = await fs.inode(path)
    mount = fs.mount
    node = mount.core.node(ino)
    await mount.ops.forget([(ino, node.lookups)])
    mount.core.meta.invalidate(path)
    mount.core.meta.invalidate(path.rsplit("/", 1)[0] or "/")
    assert mount.core.table.get(ino) is None
    return await fs.inode(path)


async def test_an_exact_mtime_and_a_mode_set_while_writing_outlive_the_inode(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A time finer than the server's milliseconds and a mode, set while the
    file is written (``cp -p``, ``rsync -a``), go up with its upload.  Where
    the server keeps no metadata the exact time lived on the fs node only
    (the write-back's attempt to record it was refused): once the kernel
    forgot the inode, a fresh lookup showed the upload's millisecond time,
    and ``rsync -a`` saw the file changed."""
    stamp = 1_234_567_890_123_456_789
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        fh = await fs.write_file(f"{top}/f", b"content", close=False)
        node = mount.core.node(await fs.inode(f"{top}/f"))
        await mount.ops.namespace.setattr(node, AttrChanges(mtime_ns=stamp, mode=stat.S_IFREG | 0o751))
        await fs.close(fh)
        assert await mount.writeback.drain() == []
        again = await forgotten(fs, f"{top}/f")
        attrs = await mount.ops.getattr(again, None)  # type: ignore[arg-type]
        assert attrs.st_mtime_ns == stamp and stat.S_IMODE(attrs.st_mode) == 0o751


async def test_the_times_of_small_new_files_outlive_a_remount(
    server: RunningServer, tmp_path: Path, top: str, dialect: str,
) -> None:
    """Small new files, their times set after close (``tar x``, ``cp -p``),
    uploaded together the way each backend does it (Cloudreve 4: the content
    in one request, the time in a metadata patch): a new mount shows each
    the time the first one showed.  Cloudreve 4 keeps any time in metadata,
    the epoch and earlier ones too: an upload's time of 0 means "now" to
    Cloudreve, and files of an archive made with no times (the tar bench's)
    showed their upload's time after a remount.  Servers without metadata
    keep what their own times can hold (KooDrive: whole seconds)."""
    times = {"seconds": 1_600_000_000 * 10**9, "later": 1_600_000_001 * 10**9}
    if keeps_metadata(dialect):
        times.update(epoch=0, before=-5 * 10**9, exact=1_600_000_000_123_456_789)
    async with ops_mount(server, tmp_path / "first") as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        for name, mtime_ns in times.items():
            await fs.write_file(f"{top}/{name}", name.encode() * 100)
            node = mount.core.node(await fs.inode(f"{top}/{name}"))
            await mount.ops.namespace.setattr(node, AttrChanges(mtime_ns=mtime_ns))
        assert await mount.writeback.drain() == []
    async with ops_mount(server, tmp_path / "second") as mount:
        fs = Driver(mount)
        shown = {name: (await mount.ops.getattr(await fs.inode(f"{top}/{name}"), None)).st_mtime_ns  # type: ignore[arg-type]
                 for name in times}
        assert shown == times


async def test_a_chmod_of_a_stored_file_outlives_the_inode_and_its_next_upload(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A chmod of a file already on the server, then new content (a replace,
    which on some backends gives the file a new object id)."""
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/script.sh", b"#!/bin/sh\n")
        assert await mount.writeback.drain() == []
        ino = await forgotten(fs, f"{top}/script.sh")
        await mount.ops.namespace.setattr(mount.core.node(ino), AttrChanges(mode=stat.S_IFREG | 0o755))
        ino = await forgotten(fs, f"{top}/script.sh")
        assert stat.S_IMODE((await mount.ops.getattr(ino, None)).st_mode) == 0o755  # type: ignore[arg-type]
        info = await mount.ops.open(ino, 1, None)  # type: ignore[arg-type]  (O_WRONLY)
        await mount.ops.write(info.fh, 0, b"#!/bin/bash")
        await fs.close(info.fh)
        assert await mount.writeback.drain() == []
        ino = await forgotten(fs, f"{top}/script.sh")
        assert stat.S_IMODE((await mount.ops.getattr(ino, None)).st_mode) == 0o755  # type: ignore[arg-type]
        assert await fs.read_file(f"{top}/script.sh") == b"#!/bin/bash"


async def test_a_chmod_of_a_stored_file_shows_at_once_after_its_next_upload(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A chmod of a clean file (on the server), then a small edit: the
    landed version shows the mode at once, not only once the entry expires
    (the upload replaces the file as it is after the chmod)."""
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/script.sh", b"#!/bin/sh\n")
        assert await mount.writeback.drain() == []
        ino = await fs.inode(f"{top}/script.sh")
        await mount.ops.namespace.setattr(mount.core.node(ino), AttrChanges(mode=stat.S_IFREG | 0o755))
        info = await mount.ops.open(ino, 1, None)  # type: ignore[arg-type]  (O_WRONLY)
        await mount.ops.write(info.fh, 0, b"#!/bin/bash")
        await fs.close(info.fh)
        assert await mount.writeback.drain() == []
        assert stat.S_IMODE((await mount.ops.getattr(ino, None)).st_mode) == 0o755  # type: ignore[arg-type]
        node = mount.core.node(ino)
        await mount.ops.forget([(ino, node.lookups)])  # the folder's listing is still held
        ino = await fs.inode(f"{top}/script.sh")
        assert stat.S_IMODE((await mount.ops.getattr(ino, None)).st_mode) == 0o755  # type: ignore[arg-type]
