"""Renames and exchanges with uploads pending, driven in-process."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trio

from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount


@pytest.fixture
def top() -> str:
    return f"/ops-{uuid.uuid4().hex[:8]}"


async def test_two_exchanges_at_once_keep_each_pending_upload_on_its_own_path(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fsstress found this (seed 42, -p 4): two processes exchanged folders
    holding files with uploads pending, each exchange updated its paths in
    steps with journal writes between them, and the other exchange's files
    were carried along into the wrong tree (later uploaded there, or under a
    file, for good)."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:  # nothing uploads until drained
        fs = Driver(mount)
        await fs.mkdir(top)
        for tree in ("p0", "p1"):
            await fs.mkdir(f"{top}/{tree}")
            for folder in ("a", "b"):
                await fs.mkdir(f"{top}/{tree}/{folder}")
            await fs.write_file(f"{top}/{tree}/a/f-{tree}", f"content of {tree}".encode())

        # each exchange's first journal write waits until the other exchange
        # writes too: both are then between their path updates at once
        journal = mount.writeback.journal
        move = journal.move
        other_arrived = trio.Event()
        calls = 0

        async def held_move(file_id: str, path: str) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                with trio.move_on_after(5):
                    await other_arrived.wait()
            else:
                other_arrived.set()
            await move(file_id, path)

        monkeypatch.setattr(journal, "move", held_move)
        async with trio.open_nursery() as nursery:
            for tree in ("p0", "p1"):
                nursery.start_soon(fs.rename, f"{top}/{tree}/a", f"{top}/{tree}/b", True)
        assert calls >= 2

        pending = sorted(local.remote_path for local in mount.writeback.files.values() if local.dirty)
        assert pending == [f"{top}/p0/b/f-p0", f"{top}/p1/b/f-p1"]
        for local in mount.writeback.files.values():
            node = mount.core.table.by_file_id(local.file_id)
            assert node is not None and node.path == local.remote_path
        assert await mount.writeback.drain() == []
        for tree in ("p0", "p1"):
            entry = await mount.client.stat(f"{top}/{tree}/b/f-{tree}")
            assert await mount.client.read(entry, 0, entry.size) == f"content of {tree}".encode()
            assert await fs.read_file(f"{top}/{tree}/b/f-{tree}") == f"content of {tree}".encode()

