"""Files created here reach the server with their first upload.

``create`` asks the server nothing when the folder's listing is known (a new
folder, a listed one): ``tar x`` and builds create at the speed of the local
disk.  What must stay true: O_EXCL against what the mount knows, the
server's name rules at once, rename and unlink before the upload, a name
another client takes first (a conflict copy, theirs untouched).
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pyfuse3
import pytest
import trio

from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount
from tests.ops.test_writeback import remote_bytes

ON_KOODRIVE = True
CREATE_ROUTES = r"/file/create$|/file/upload$|/api/v3/file/upload|/koodrive/ose/v1/files/create$"


@pytest.fixture
def top() -> str:
    return f"/new-{uuid.uuid4().hex[:8]}"


async def test_create_asks_the_server_nothing_and_the_upload_makes_the_file(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        # counted, not failed: every request that could make a file
        fresh_server.faults.set(path_regex=CREATE_ROUTES, latency_s=0.0)
        for i in range(5):
            await fs.write_file(f"{top}/f{i}", f"content {i}".encode())
        assert fresh_server.faults.stats()["matched"] == 0
        folder = mount.core.node(await fs.inode(top))
        mount.core.meta.invalidate(top)  # listed again: the server does not show them yet, the mount does
        assert sorted(entry.name for entry in await mount.core.listing(folder)) == [f"f{i}" for i in range(5)]
        assert await fs.read_file(f"{top}/f3") == b"content 3"
        fresh_server.faults.clear()
        assert await mount.writeback.drain() == []
        for i in range(5):
            assert await remote_bytes(mount, f"{top}/f{i}") == f"content {i}".encode()


async def test_exclusive_create_of_a_known_name_and_names_the_server_refuses(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/taken", b"first")
        parent = await fs.inode(top)
        with pytest.raises(pyfuse3.FUSEError) as info:
            await mount.ops.create(parent, b"taken", 0o644, os.O_WRONLY | os.O_CREAT | os.O_EXCL, None)  # type: ignore[arg-type]
        assert info.value.errno == errno.EEXIST
        for bad in (b"a:b", b"what?", b"pipe|d"):
            with pytest.raises(pyfuse3.FUSEError) as info:
                await mount.ops.create(parent, bad, 0o644, os.O_WRONLY | os.O_CREAT, None)  # type: ignore[arg-type]
            assert info.value.errno == errno.EINVAL, bad
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert [c.name for c in children] == ["taken"]


async def test_rename_and_unlink_before_the_first_upload(server: RunningServer, tmp_path: Path, top: str) -> None:
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.mkdir(f"{top}/sub")
        await fs.write_file(f"{top}/moved", b"moved before it was uploaded")
        await fs.rename(f"{top}/moved", f"{top}/sub/arrived")
        await fs.write_file(f"{top}/gone", b"deleted before it was uploaded")
        parent, name = await fs._parent(f"{top}/gone")
        await mount.ops.unlink(parent, name, None)  # type: ignore[arg-type]
        # over a file on the server, and a file on the server over a new one
        await fs.write_file(f"{top}/old", b"old")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/new", b"new over old")
        await fs.rename(f"{top}/new", f"{top}/old")
        await fs.write_file(f"{top}/newer", b"newer")
        await fs.rename(f"{top}/old", f"{top}/newer")
        # two new files exchanged
        await fs.write_file(f"{top}/x", b"x")
        await fs.write_file(f"{top}/y", b"y")
        await fs.rename(f"{top}/x", f"{top}/y", exchange=True)
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert sorted(c.name for c in children) == ["newer", "sub", "x", "y"]
        assert await remote_bytes(mount, f"{top}/sub/arrived") == b"moved before it was uploaded"
        assert await remote_bytes(mount, f"{top}/newer") == b"new over old"
        assert await remote_bytes(mount, f"{top}/x") == b"y"
        assert await remote_bytes(mount, f"{top}/y") == b"x"


async def test_a_name_another_client_takes_first_gets_a_conflict_copy(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/doc", b"ours")
        theirs = tmp_path / "theirs"
        theirs.write_bytes(b"theirs")
        await mount.client.upload(f"{top}/doc", theirs)
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        names = sorted(c.name for c in children)
        assert len(names) == 2 and names[0] == "doc" and names[1].startswith("doc (conflict"), names
        assert await remote_bytes(mount, f"{top}/doc") == b"theirs"
        assert await remote_bytes(mount, f"{top}/{names[1]}") == b"ours"


@pytest.mark.parametrize("how", ["unlink", "rename", "rename over it", "exchange"])
async def test_a_first_upload_landing_while_a_namespace_change_waits_is_acted_on(
    server: RunningServer, tmp_path: Path, top: str, how: str,
) -> None:
    """A file created here gets its server object from its first upload.  An
    unlink or rename that read the file's entry (no object yet) and then
    waited, for the inode's lock (a chmod, a truncate, another rename),
    while that upload landed must act on the object that is now there.
    Acting on the entry it read, the unlink deleted nothing and the rename
    moved nothing on the server: the file came back under its old name, and
    creating that name again made a conflict copy of the mount's own file
    (the 4-thread hammer's self-conflict copies)."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/other", b"other")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/f", b"made here")
        ino = await fs.inode(f"{top}/f")
        parent, name = await fs._parent(f"{top}/f")
        async with trio.open_nursery() as nursery:
            async with mount.core.locks.hold(ino):
                if how == "unlink":
                    nursery.start_soon(mount.ops.unlink, parent, name, None)
                elif how == "rename":
                    nursery.start_soon(fs.rename, f"{top}/f", f"{top}/g")
                elif how == "rename over it":
                    nursery.start_soon(fs.rename, f"{top}/other", f"{top}/f")
                else:
                    nursery.start_soon(fs.rename, f"{top}/f", f"{top}/other", True)
                await trio.sleep(0.2)  # it waits for the lock
                assert await mount.writeback.drain() == []  # meanwhile the upload lands,
                # and a reader's close lets go of its staged copy (clean now)
                assert await fs.read_file(f"{top}/f") == b"made here"
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        got = {c.name: await remote_bytes(mount, c.path) for c in children}
        expected = {
            "unlink": {"other": b"other"},
            "rename": {"other": b"other", "g": b"made here"},
            "rename over it": {"f": b"other"},
            "exchange": {"f": b"other", "other": b"made here"},
        }[how]
        assert got == expected
        # and the name is free again where it should be: made anew, no conflict copy
        if how in ("unlink", "rename"):
            await fs.write_file(f"{top}/f", b"again")
            assert await mount.writeback.drain() == []
            assert await remote_bytes(mount, f"{top}/f") == b"again"
            assert not [c for c in (await mount.client.list_all(top))[1] if "conflict" in c.name]


async def test_a_rename_before_the_first_upload_is_journaled_with_the_next_sync(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """rsync writes every file under a temporary name and renames it: that
    rename asks the server nothing, and costs no journal commit of its own
    (a sync of the drive's disk per file); as on a local filesystem it is
    durable with the next sync: a close, an fsync of the folder, an upload
    starting (which must create the file at its new name, and a replay
    after it landed must not upload it again at the old one)."""
    journal_paths: dict[str, str] = {}

    def recorded() -> dict[str, str]:
        journal_paths.clear()
        journal_paths.update({rec.file_id: rec.path for rec in mount.writeback.journal.open()})
        return journal_paths

    async with ops_mount(fresh_server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        fresh_server.faults.set(path_regex=r"/file/|/object/|/files/|/obs/", latency_s=0.0)  # counted, not failed
        await fs.write_file(f"{top}/.a.tmp", b"first")
        await fs.rename(f"{top}/.a.tmp", f"{top}/a")
        assert sorted(recorded().values()) == [f"{top}/.a.tmp"]  # not yet: no commit of its own
        await fs.write_file(f"{top}/.b.tmp", b"second")  # the next close writes it
        assert sorted(recorded().values()) == sorted([f"{top}/a", f"{top}/.b.tmp"])
        await fs.rename(f"{top}/.b.tmp", f"{top}/b")
        folder = await fs.inode(top)
        await mount.ops.fsyncdir(folder, False)  # type: ignore[arg-type]
        assert sorted(recorded().values()) == sorted([f"{top}/a", f"{top}/b"])
        await fs.write_file(f"{top}/.c.tmp", b"third")
        await fs.rename(f"{top}/.c.tmp", f"{top}/c")
        assert fresh_server.faults.stats()["matched"] == 0
        # an upload starting writes the new path first (were it to land and
        # the mount die before its record went, a replay would upload it again)
        fresh_server.faults.set(path_regex=r"/file/upload/|/file/content$|/obs/upload/", latency_s=3.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mount.writeback.drain)
            with trio.fail_after(60):
                while fresh_server.faults.stats()["matched"] < 3:  # all three sending their content
                    await trio.sleep(0.02)
            assert sorted(recorded().values()) == sorted([f"{top}/a", f"{top}/b", f"{top}/c"])
        fresh_server.faults.clear()
        assert await mount.writeback.drain() == []
        # (a landed upload's record goes just after the drain hears of it landing)
        with trio.move_on_after(10):
            while recorded():
                await trio.sleep(0.05)
        assert recorded() == {}
        _, children = await mount.client.list_all(top)
        assert sorted(c.name for c in children) == ["a", "b", "c"]
        assert await remote_bytes(mount, f"{top}/c") == b"third"


async def test_a_folder_another_client_made_is_found_after_mkdir_says_it_exists(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """mkdir(2) of a name the cached listing does not show, but another
    client made meanwhile: the server says EEXIST, and the cache, now known
    stale, must not go on saying ENOENT until its listing expires (mkdir -p,
    os.makedirs(exist_ok=True) look after an EEXIST, and failed for a minute:
    seen under injected failures in tests/mount/test_hardening.py, where a
    mkdir failed after the server made the folder)."""
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        assert await mount.core.listing(mount.core.node(await fs.inode(top))) == []  # (readdir)
        await mount.client.mkdir(f"{top}/d")  # another client
        parent, name = await fs._parent(f"{top}/d")
        with pytest.raises(pyfuse3.FUSEError) as raised:
            await mount.ops.mkdir(parent, name, 0o755, None)  # type: ignore[arg-type]
        assert raised.value.errno == errno.EEXIST
        assert mount.core.node(await fs.inode(f"{top}/d")).is_dir


async def test_a_new_files_staging_file_is_a_spare_made_ahead(server: RunningServer, tmp_path: Path, top: str) -> None:
    """create(2) makes no file on the event loop: a new file's staging file
    is a spare made ahead in a worker thread (making one cost a busy ext4
    0.2-0.4 ms per create, which rsync and tar x waited for); the file is
    then uploaded from it, which is removed once the upload landed."""
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        with trio.fail_after(10):  # (made in the background once the mount is up)
            while not mount.core.spares.ready():
                await trio.sleep(0.01)
        ready = set(mount.core.spares.ready())
        fh = await fs.write_file(f"{top}/f", b"content", close=False)
        node = mount.core.table.get(await fs.inode(f"{top}/f"))
        assert node is not None and node.local is not None
        staging = node.local.staging
        assert staging in ready and staging not in mount.core.spares.ready()
        await fs.close(fh)
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/f") == b"content"
        mount.core.settle(node)
        assert not staging.exists()


async def test_a_first_upload_the_server_made_whole_at_open_ends_under_the_files_last_name(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """KooDrive makes a file whose content it knows whole at ``files/create``
    (``rapidUpload``), at its name.  A rename meanwhile (rsync's temporary
    name to the final one) waits for that upload rather than cut it short,
    and renames the file on the server: nothing stays at the old name."""
    if fresh_server.dialect != "koodrive":
        pytest.skip("KooDrive's rapidUpload")
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/known", b"a content the server knows")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/.final.tmp", b"a content the server knows")
        fresh_server.faults.set(path_regex=r"/files/create$", latency_s=1.0, count=1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mount.writeback.drain)
            with trio.fail_after(30):
                while fresh_server.faults.stats()["matched"] < 1:
                    await trio.sleep(0.02)
            await fs.rename(f"{top}/.final.tmp", f"{top}/final")
        fresh_server.faults.clear()
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert sorted(c.name for c in children) == ["final", "known"]
        assert await remote_bytes(mount, f"{top}/final") == b"a content the server knows"
