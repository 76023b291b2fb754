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



def failing(what: str):  # type: ignore[no-untyped-def]
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{what} failed (as under injected failures)")
    return fail


async def test_a_failure_mid_rename_never_leaves_an_inode_and_its_upload_at_different_paths(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the server renamed a file with an upload pending, the inode and
    the staged upload took their new paths in two calls into two layers; one
    failing between them (tests/mount/test_hardening.py's injected failures)
    left the upload aimed at the old name, which it re-created (or made a
    conflict copy beside).  Now both move in one step that calls no other
    layer."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/a", b"pending content")
        monkeypatch.setattr(mount.writeback, "relocate", failing("the write-back's relocate"))
        try:
            await fs.rename(f"{top}/a", f"{top}/b")
        except Exception:
            pass  # the rename may fail; it must not split the file
        node = mount.core.table.by_file_id(next(iter(mount.writeback.files)))
        [local] = mount.writeback.files.values()
        assert node is not None and node.path == local.remote_path == f"{top}/b"
        monkeypatch.undo()
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert [c.name for c in children] == ["b"]


async def test_a_failure_mid_unlink_never_brings_the_removed_file_back(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """unlink(2) of a file with an upload pending: once the server deleted
    it, its inode was marked removed and then, in another call into another
    layer, its upload was dropped; that call failing left the upload due,
    and it re-created the file.  Now both happen in one step."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/gone", b"first")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/gone", b"pending edit")
        monkeypatch.setattr(mount.writeback, "forget", failing("the write-back's forget"))
        parent, name = await fs._parent(f"{top}/gone")
        try:
            await mount.ops.unlink(parent, name, None)  # type: ignore[arg-type]
        except Exception:
            pass
        monkeypatch.undo()
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert children == []
    # nor at the next mount: its journal record went too
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert children == []
