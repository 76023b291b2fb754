"""The filesystem core driven in-process, without the kernel.

``ops_mount`` builds a mount's parts exactly as ``cloudfs mount`` does
(``cloudfs.cli.serve.open_mount``) over a real client talking HTTP to a real
``cloudfs server`` subprocess, and runs its write-back; a :class:`Driver`
then calls the pyfuse3 handlers (``Operations``) the way the kernel would,
addressing files by path.  Nothing is mocked: only the kernel is left out, so
a test can interleave operations precisely (two renames at once, a journal
write held back) where a real mount leaves the order to chance.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyfuse3
import pytest

from cloudfs.cli.serve import Mount, open_mount
from cloudfs.client.api import CloudreveClient
from cloudfs.config import MountSettings
from cloudfs.fs.inodes import ROOT_INODE
from cloudfs.server.testing import RunningServer
from tests.dialects import *  # noqa: F403 (both dialects: dialect, server, fresh_server, v4_only)

@asynccontextmanager
async def ops_mount(server: RunningServer, base: Path, **settings: Any) -> AsyncIterator[Mount]:
    """A mount's parts with the write-back running (journal replayed first),
    for the block; ``settings`` override :class:`MountSettings` fields."""
    options: dict[str, Any] = {"upload_delay_s": 0.2, "delete_to_trash": False, "timeout_s": 10.0, **settings}
    mount_settings = MountSettings(url=server.url, mountpoint=base / "mnt", user=server.email,
                                   cache_dir=base / "cache", **options)
    assert mount_settings.cache_dir is not None
    mount_settings.cache_dir.mkdir(parents=True, exist_ok=True)
    client = await CloudreveClient.connect(server.url, email=server.email, password=server.password)
    async with client, open_mount(mount_settings, client) as (mount, pending):
        await mount.writeback.replay(pending)
        await mount.nursery.start(mount.core.spares.run, [rec.staging for rec in pending])
        await mount.nursery.start(mount.writeback.run)
        await mount.nursery.start(mount.core.connectivity.run)
        yield mount


class Driver:
    """Calls the handlers of ``mount.ops`` as the kernel would, by path."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self.ops = mount.ops

    async def inode(self, path: str) -> int:
        ino = ROOT_INODE
        for name in [p for p in path.split("/") if p]:
            attrs = await self.ops.lookup(ino, os.fsencode(name), None)  # type: ignore[arg-type]
            if attrs.st_ino == 0:  # the answer "no such name" (that the kernel may keep)
                raise pyfuse3.FUSEError(errno.ENOENT)
            ino = attrs.st_ino
        return ino

    async def _parent(self, path: str) -> tuple[int, bytes]:
        folder, name = os.path.split(path.rstrip("/"))
        return await self.inode(folder), os.fsencode(name)

    async def mkdir(self, path: str) -> None:
        parent, name = await self._parent(path)
        await self.ops.mkdir(parent, name, 0o755, None)  # type: ignore[arg-type]

    async def write_file(self, path: str, data: bytes, *, close: bool = True) -> int:
        """Create ``path`` with ``data``; returns the open handle if not ``close``d."""
        parent, name = await self._parent(path)
        info, _ = await self.ops.create(parent, name, 0o644, os.O_WRONLY | os.O_CREAT, None)  # type: ignore[arg-type]
        await self.ops.write(info.fh, 0, data)
        if close:
            await self.close(info.fh)
        return int(info.fh)

    async def close(self, fh: int) -> None:
        await self.ops.flush(fh)
        await self.ops.release(fh)

    async def read_file(self, path: str) -> bytes:
        ino = await self.inode(path)
        info = await self.ops.open(ino, os.O_RDONLY, None)  # type: ignore[arg-type]
        try:
            size = (await self.ops.getattr(ino, None)).st_size  # type: ignore[arg-type]
            return await self.ops.read(info.fh, 0, size) if size else b""
        finally:
            await self.ops.release(info.fh)

    async def rename(self, old: str, new: str, exchange: bool = False) -> None:
        old_parent, old_name = await self._parent(old)
        new_parent, new_name = await self._parent(new)
        flags = pyfuse3.RENAME_EXCHANGE if exchange else 0
        await self.ops.rename(old_parent, old_name, new_parent, new_name, flags, None)  # type: ignore[arg-type]
