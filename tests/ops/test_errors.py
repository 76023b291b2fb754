"""The fs core answers with its own error type (FsError, an errno); only the
pyfuse3 adapter (fs/ops.py) turns it into FUSEError.  Driven in-process."""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pyfuse3
import pytest

from cloudfs.fs.errors import FsError
from cloudfs.fs.inodes import ROOT_INODE
from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount


async def test_core_raises_fs_errors_and_ops_turns_them_into_fuse_errors(server: RunningServer,
                                                                         tmp_path: Path) -> None:
    top = f"ops-{uuid.uuid4().hex[:8]}"
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(f"/{top}")
        await fs.mkdir(f"/{top}/sub")
        core, namespace = mount.core, mount.ops.namespace
        root = core.node(ROOT_INODE)
        # below ops.py: the core's own error, never pyfuse3's
        with pytest.raises(FsError) as missing:
            await core.child(root, f"no-such-{top}")
        assert missing.value.errno == errno.ENOENT and not isinstance(missing.value, pyfuse3.FUSEError)
        folder = core.remember(await core.child(root, top))
        sub = core.remember(await core.child(folder, "sub"))
        with pytest.raises(FsError) as into_itself:  # a folder into its own subtree
            await namespace.rename(root, top, sub, "x", 0)
        assert into_itself.value.errno == errno.EINVAL
        # through the adapter: the same errno as the kernel's FUSEError
        with pytest.raises(pyfuse3.FUSEError) as adapted:
            await mount.ops.unlink(ROOT_INODE, f"no-such-{top}".encode(), None)  # type: ignore[arg-type]
        assert adapted.value.errno == errno.ENOENT
        # a lookup says "no such name" as an entry the kernel may keep (inode 0)
        missing_entry = await mount.ops.lookup(ROOT_INODE, f"no-such-{top}".encode(), None)  # type: ignore[arg-type]
        assert missing_entry.st_ino == 0 and missing_entry.entry_timeout == mount.core.settings.negative_ttl_s
