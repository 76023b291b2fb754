"""The write-back's outcomes, driven in-process."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount


@pytest.fixture
def top() -> str:
    return f"/ops-{uuid.uuid4().hex[:8]}"


async def test_content_meant_for_a_new_name_that_got_taken_goes_beside_it(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A file the write-back creates anew (a conflict copy, a file re-created
    after it vanished: no base version) found its name taken on the server.
    The upload failed with EEXIST for good (seen on v3 under injected
    failures: umount then named a conflict copy still pending); now the
    content goes beside what is there, which stays untouched."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        fh = await fs.write_file(f"{top}/f", b"local content", close=False)
        local = mount.writeback.files[next(iter(k for k, v in mount.writeback.files.items()
                                               if v.remote_path == f"{top}/f"))]
        await fs.close(fh)
        await mount.client.delete([f"{top}/f"], permanent=True)
        taken = tmp_path / "taken"
        taken.write_bytes(b"someone else's")
        await mount.client.upload(f"{top}/f", taken)  # the name is taken again, by another object
        local.base = None  # what a vanished base leaves: the content is to be created anew
        assert await mount.writeback.drain() == []
        entry = await mount.client.stat(f"{top}/f")
        assert await mount.client.read(entry, 0, entry.size) == b"someone else's"
        _, children = await mount.client.list_all(top)
        copies = [c for c in children if "(conflict" in c.name]
        assert len(copies) == 1
        assert await mount.client.read(copies[0], 0, copies[0].size) == b"local content"


async def test_files_losing_their_place_at_once_get_a_conflict_name_each(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """Several staged files whose name is taken when they upload at the same
    time (seen under injected failures: renames half done) pick conflict
    names concurrently: each gets its own, and a conflict copy that conflicts
    again is named after the original, not "(conflict …) (conflict …)".  Before,
    they picked the same name, refused each other, and nested deeper on
    every retry until umount gave up."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        contents = {f"{top}/f{i}": f"local content {i}".encode() for i in range(3)}
        for path, data in contents.items():
            await fs.write_file(path, data)
        taken = tmp_path / "taken"
        taken.write_bytes(b"someone else's")
        earlier_copy = f"{top}/f (conflict 2026-01-01 000000)"
        await mount.client.upload(earlier_copy, taken)
        for local in mount.writeback.files.values():
            local.remote_path, local.base = earlier_copy, None
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        copies = {c.name: c for c in children if c.name != "f (conflict 2026-01-01 000000)"
                  and c.name.startswith("f (conflict")}
        assert len(copies) == 3 and not any(name.count("(conflict") > 1 for name in copies), sorted(copies)
        got = {await mount.client.read(c, 0, c.size) for c in copies.values()}
        assert got == set(contents.values())
        entry = await mount.client.stat(earlier_copy)
        assert await mount.client.read(entry, 0, entry.size) == b"someone else's"
