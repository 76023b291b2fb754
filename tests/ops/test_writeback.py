"""The write-back's outcomes, driven in-process."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pyfuse3
import pytest
import trio

from cloudfs.cli.serve import Mount
from cloudfs.server.testing import RunningServer
from tests.ops.conftest import Driver, ops_mount


async def remote_bytes(mount: Mount, path: str) -> bytes:
    """The content of ``path`` on the server."""
    entry = await mount.client.stat(path)
    return await mount.client.read(entry, 0, entry.size) if entry.size else b""


@pytest.fixture
def top() -> str:
    return f"/ops-{uuid.uuid4().hex[:8]}"


async def test_content_meant_for_a_new_name_that_got_taken_goes_beside_it(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A file the write-back creates anew (a file created here, a conflict
    copy, a file re-created after it vanished: no base version) found its
    name taken on the server.
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
        taken = tmp_path / "taken"
        taken.write_bytes(b"someone else's")
        await mount.client.upload(f"{top}/f", taken)  # the name is taken again, by another object
        local.base = None  # what a vanished base leaves: the content is to be created anew
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/f") == b"someone else's"
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
        assert await remote_bytes(mount, earlier_copy) == b"someone else's"


async def test_equal_content_under_the_name_is_not_taken_for_our_own_upload(
    server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A file to be created anew finds its name taken by another object whose
    content happens to equal its own (empty files, say).  That is not an
    upload of ours that landed unconfirmed (which only ever replaces our base
    object in place): before, the write-back uploaded over that object, took
    its id, and pushed out of the write-back the staged file that really was
    that object's, whose acknowledged content was then never uploaded
    (seen under injected failures: "was missing from the write-back")."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/a", b"")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/a", b"pending edit")  # staged, due in an hour
        await fs.write_file(f"{top}/b", b"")
        [other] = [local for local in mount.writeback.files.values() if local.remote_path == f"{top}/b"]
        other.remote_path, other.base = f"{top}/a", None  # to be created anew where "a" is
        await mount.writeback.sync(other)
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/a") == b"pending edit"


async def test_an_unlink_the_server_refuses_keeps_the_pending_content(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """unlink(2) fails (the server refuses the delete): the file is still
    there, so its acknowledged new content must still go up.  Before, the
    write-back forgot the upload before the delete was even sent."""
    delete_route = r"/api/v4/file$" if fresh_server.dialect == "v4" else r"/api/v3/object$"
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/f", b"first")
        assert await mount.writeback.drain() == []
        await fs.write_file(f"{top}/f", b"acknowledged edit")  # staged, due in an hour
        parent, name = await fs._parent(f"{top}/f")
        fresh_server.faults.set(error_rate=1.0, error_status=400, path_regex=delete_route)
        try:
            with pytest.raises(pyfuse3.FUSEError):
                await mount.ops.unlink(parent, name, None)  # type: ignore[arg-type]
        finally:
            fresh_server.faults.clear()
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/f") == b"acknowledged edit"


async def test_a_change_during_the_first_upload_of_an_empty_file_makes_no_conflict_copy(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """A new (empty) file's first upload, by session, gives it an empty
    content entity first (a new version: see V4Dialect._with_content); a
    truncation cancels that upload, and the next one goes in one request
    (PUT /file/content) based on the version before the entity.  That was
    refused as stale and the content went to a conflict copy, leaving the
    file empty: the mount took its own empty version for another client's
    edit.  fsync waited meanwhile and must return with the content up."""
    size = 30 << 20  # a first chunk (25 MiB) far beyond the socket buffers: read as it is sent
    chunk0 = r"/api/v4/file/upload/[^/]+/0$" if fresh_server.dialect == "v4" else r"/api/v3/file/upload/[^/]+/0$"
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=0.2) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        fresh_server.faults.set(path_regex=chunk0, latency_s=1.5, count=1)  # the server reads the chunk late
        fh = await fs.write_file(f"{top}/big", b"x" * size, close=False)
        ino = await fs.inode(f"{top}/big")
        local = mount.core.node(ino).local
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mount.ops.fsync, fh, False)
            await trio.sleep(0.7)  # the upload is sending chunk 0
            mount.ops.content.truncate(mount.core.node(ino), 1000)  # what ftruncate(2) comes to
        await fs.close(fh)
        assert local.error is None
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/big") == b"x" * 1000


@pytest.mark.parametrize("how", ["unlink", "rename over"])
async def test_a_write_while_a_removal_forgets_the_upload_does_not_bring_the_file_back(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """A process writes to an open file while another unlinks it (or renames
    a file over it).  The write-back forgot the staged upload, then awaited
    its journal while the inode was not yet marked removed: the write staged
    the file again, under the name that was just deleted.  That stale upload
    re-created the deleted file (or, its path dragged along by later renames,
    made conflict copies: seen as two staged files sharing one path)."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/f", b"v1")
        await fs.write_file(f"{top}/other", b"other")
        assert await mount.writeback.drain() == []
        ino = await fs.inode(f"{top}/f")
        info = await mount.ops.open(ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        await mount.ops.write(info.fh, 0, b"v2")
        journal = mount.writeback.journal
        forget = journal.forget
        entered, go_on = trio.Event(), trio.Event()

        async def held_forget(file_id: str) -> None:
            entered.set()
            await go_on.wait()
            await forget(file_id)

        monkeypatch.setattr(journal, "forget", held_forget)
        parent, name = await fs._parent(f"{top}/f")
        async with trio.open_nursery() as nursery:
            if how == "unlink":
                nursery.start_soon(mount.ops.unlink, parent, name, None)
            else:
                nursery.start_soon(fs.rename, f"{top}/other", f"{top}/f")
            with trio.fail_after(10):
                await entered.wait()
            await mount.ops.write(info.fh, 0, b"written while it was being removed")
            go_on.set()
        monkeypatch.setattr(journal, "forget", forget)
        await mount.ops.release(info.fh)
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        expected = ["other"] if how == "unlink" else ["f"]
        assert [c.name for c in children] == expected
        if how == "rename over":
            assert await remote_bytes(mount, f"{top}/f") == b"other"


async def test_an_fsync_waiting_while_the_file_is_unlinked_and_written_again_does_not_bring_it_back(
    server: RunningServer, tmp_path: Path, top: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """One process fsyncs a file, another unlinks it meanwhile, a third
    writes through a handle it opened before the unlink (all on shared
    names in tests/mount/test_hardening.py; once in a CI run, the journal
    slow under load).  The unlink dropped the staged upload, the write made
    that content dirty again, and the fsync, its journal record written
    only now, found a dirty file the write-back did not know: its safety
    net logged "was missing from the write-back" and uploaded the removed
    file, re-creating it; and the record, written after the unlink's
    forget, brought it back at the next mount.  A removed file's content is
    for the handles still open: never dirty, never journaled, never
    uploaded, dropped at the last close."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/f", b"v1")
        assert await mount.writeback.drain() == []
        ino = await fs.inode(f"{top}/f")
        syncing = await mount.ops.open(ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        writing = await mount.ops.open(ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        await mount.ops.write(syncing.fh, 0, b"v2")
        node = mount.core.table.get(ino)
        assert node is not None and node.local is not None
        parent, name = await fs._parent(f"{top}/f")
        journal_lock = mount.writeback.journal._lock
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                async with journal_lock:  # the journal is busy (a slow disk)
                    nursery.start_soon(mount.ops.fsync, syncing.fh, False)
                    while journal_lock.statistics().tasks_waiting < 1:
                        await trio.sleep(0.01)  # the fsync's record waits for the journal
                    nursery.start_soon(mount.ops.unlink, parent, name, None)
                    while not node.unlinked:
                        await trio.sleep(0.01)  # the server deleted it; its upload is dropped
                    await mount.ops.write(writing.fh, 0, b"written after the unlink")
        await mount.ops.release(syncing.fh)
        await mount.ops.release(writing.fh)
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert children == []
        assert "missing from the write-back" not in caplog.text
        staged = {p for p in (tmp_path / "cache" / "staging").rglob("*") if p.is_file()}
        with trio.fail_after(10):  # (a batch of spares appears on disk file by file, then is handed over)
            while len(mount.core.spares.ready()) <= mount.core.spares.keep // 2:
                await trio.sleep(0.01)
        assert not node.local and not staged - set(mount.core.spares.ready())  # (spares are made ahead)
    # nor at the next mount
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        assert await mount.writeback.drain() == []
        _, children = await mount.client.list_all(top)
        assert children == []


async def test_the_mount_ending_does_not_wait_for_a_landed_upload_to_be_copied_into_the_read_cache(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large file's landed upload is copied into the read cache afterwards,
    in a worker thread.  That copy ran inside the shield that records the
    landed upload: the end of the mount (cancelling its tasks, which
    ``cloudfs umount`` waits for) waited for all of it, ~0.15 s per 256 MiB
    on this machine, and longer on a slow disk.  Now it stops between pieces
    and nothing half-copied is cached."""
    import threading
    import time

    from cloudfs.cache.blocks import cache_name
    from cloudfs.upload import attempt as attempt_module

    real_copy = os.copy_file_range
    copying = threading.Event()

    def slow_copy(source: int, target: int, count: int, offset_src: int | None = None,
                  offset_dst: int | None = None) -> int:
        copying.set()
        time.sleep(0.05)  # a slow disk: 1 MiB per 50 ms
        return real_copy(source, target, min(count, 1 << 20), offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", slow_copy)
    monkeypatch.setattr(attempt_module, "CACHE_COPY_PIECE", 1 << 20)
    data = os.urandom(32 << 20)  # 1.6 s to copy at that pace
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/big", data)
        assert await mount.writeback.drain() == []
        while not copying.is_set():
            await trio.sleep(0.01)
        entry = await mount.client.stat(f"{top}/big")
        leaving = time.monotonic()
    assert time.monotonic() - leaving < 0.8
    assert not mount.fetcher.store.has_page(cache_name(entry.file_id, entry.version, entry.size), 0)


async def test_an_open_whose_staging_file_cannot_be_made_leaves_no_handle_open(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """open(O_WRONLY) fails where the staging file cannot be made (a full
    cache disk): nothing of it may stay open.  Before, the handle was
    registered first: it leaked with the node's open count, so the node was
    never let go of."""
    async with ops_mount(server, tmp_path, upload_delay_s=3600) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/f", b"on the server")
        assert await mount.writeback.drain() == []
        ino = await fs.inode(f"{top}/f")
        node = mount.core.node(ino)
        opens, handles = node.opens, len(mount.core.handles.files)

        def no_space(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(mount.ops.content, "stage", no_space)
        with pytest.raises((OSError, pyfuse3.FUSEError)):
            await mount.ops.open(ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        monkeypatch.undo()
        assert (node.opens, len(mount.core.handles.files)) == (opens, handles)


async def test_a_lookup_while_an_upload_lands_under_a_new_id_keeps_one_inode(
    fresh_server: RunningServer, tmp_path: Path, top: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Where a replace gives the file a new id (v3: upload beside, swap), the
    server shows the new object at the path a few round trips before the
    write-back hears of it (or until the next attempt, if the answer was
    lost: the upload failed).  A lookup or listing then (its
    metadata expired) made a second inode for the new id, showing the
    uploaded version, not the file as written since (the long model test's
    size mismatches on v3), and a write through it a second staged file for
    that id; when the upload landed, the first one was re-keyed to the new
    id and pushed the second out of the write-back: its acknowledged content
    was never uploaded (seen under injected failures in
    tests/mount/test_hardening.py: "was missing from the write-back", when
    the fsync's safety net found it).  Until the upload lands, the path's
    inode is the one whose upload is in flight."""
    rename = r"/api/v3/object/rename$"
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=3600) as mount:
        if not mount.client.capabilities.replace_gives_new_id:
            pytest.skip("a replace keeps the file's id")
        fs = Driver(mount)
        await fs.mkdir(top)
        path = f"{top}/f"
        await fs.write_file(path, b"first")
        assert await mount.writeback.drain() == []
        first_ino = await fs.inode(path)
        syncing = await mount.ops.open(first_ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        await mount.ops.write(syncing.fh, 0, b"second")
        expected = bytearray(b"second")
        # the swap's rename is done by the server, its answer held back
        fresh_server.faults.set(path_regex=rename, reply_delay_s=2.0, count=1)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mount.ops.fsync, syncing.fh, False)
                while (await trio.to_thread.run_sync(fresh_server.faults.stats))["reply_delay"] < 1:
                    await trio.sleep(0.05)
                # written on meanwhile: the landing version is not the file's content any more
                await mount.ops.write(syncing.fh, 0, b"SECOND, longer")
                expected[:] = b"SECOND, longer"
                mount.core.meta.invalidate(top)  # what was known of the folder expired
                mount.core.meta.invalidate(path)
                shown = await mount.core.listing(mount.core.node(await fs.inode(top)))  # (readdir)
                assert [c.file_id for c in shown] == [mount.core.node(first_ino).entry.file_id]
                ino = await fs.inode(path)  # (from that listing)
                assert ino == first_ino
                assert (await mount.ops.getattr(ino, None)).st_size == len(expected)  # type: ignore[arg-type]
                info = await mount.ops.open(ino, os.O_WRONLY, None)  # type: ignore[arg-type]
                await mount.ops.write(info.fh, 0, b"third!")
                expected[:6] = b"third!"
                await fs.close(info.fh)
                assert await mount.writeback.drain() == []  # (the fsync waits for it)
        await fs.close(syncing.fh)
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, path) == expected
        assert "missing from the write-back" not in caplog.text


async def test_a_close_the_write_back_did_not_hear_of_is_uploaded_anyway(
    server: RunningServer, tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """release(2) after the data was journaled (close acknowledged), and the
    call telling the write-back of the close fails (seen under injected
    failures in tests/mount/test_hardening.py).  The file is safe in the
    journal, but nothing made it due: it waited for an fsync or the umount.
    The write-back finds such a file itself and uploads it."""
    from cloudfs.upload import scheduler

    monkeypatch.setattr(scheduler, "UNHEARD_CLOSE_CHECK_S", 0.3)
    async with ops_mount(server, tmp_path) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        fh = await fs.write_file(f"{top}/f", b"acknowledged", close=False)
        await mount.ops.flush(fh)

        def unheard(local: object) -> None:
            raise RuntimeError("the write-back was not told")

        monkeypatch.setattr(mount.writeback, "closed", unheard)
        with pytest.raises(pyfuse3.FUSEError):
            await mount.ops.release(fh)  # (the kernel does not wait for a release's answer)
        monkeypatch.undo()
        with trio.fail_after(15):
            while mount.writeback.uploads_done == 0:
                await trio.sleep(0.1)
        assert await remote_bytes(mount, f"{top}/f") == b"acknowledged"
        assert "went unheard" in caplog.text


CAPACITY_ROUTES = r"/user/capacity$|/user/storage$|/space/"


async def test_a_close_after_an_unlink_asks_the_server_for_no_capacity(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """close() checks that a grown file fits the free space.  A delete made
    the cached figures stale for ``df``, and every close after it waited for
    the server's capacity (tar over existing files: one capacity request per
    file).  Space this mount freed only adds to the free space: the cached
    figure is enough for the check, ``df`` still asks the server."""
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=0.0) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        await fs.write_file(f"{top}/old", b"x" * 1000)  # (the capacity is known from here on)
        assert await mount.writeback.drain() == []
        parent, _ = await fs._parent(f"{top}/old")
        fresh_server.faults.set(path_regex=CAPACITY_ROUTES, latency_s=0.0)  # counted, not failed
        for i in range(3):
            await mount.ops.unlink(parent, b"old", None)  # type: ignore[arg-type]  (a delete on the server)
            await fs.write_file(f"{top}/old", b"y" * (1000 + i))
            assert await mount.writeback.drain() == []
        assert fresh_server.faults.stats()["matched"] == 0
        await mount.ops.unlink(parent, b"old", None)  # type: ignore[arg-type]
        await mount.ops.statfs(None)  # type: ignore[arg-type]
        assert fresh_server.faults.stats()["matched"] == 1  # df shows the freed space at once
        fresh_server.faults.clear()


async def test_a_close_that_fits_only_in_space_freed_since_asks_the_server(
    fresh_server: RunningServer, tmp_path: Path, top: str,
) -> None:
    """The cached figures say the file does not fit, but this mount freed
    space since: close asks the server before saying ENOSPC."""
    async with ops_mount(fresh_server, tmp_path, upload_delay_s=0.0) as mount:
        fs = Driver(mount)
        await fs.mkdir(top)
        used = (await mount.core.capacity(fresh=True)).used
        fresh_server.faults.set_capacity(used + 60_000)
        await fs.write_file(f"{top}/big", b"b" * 50_000)
        assert await mount.writeback.drain() == []
        assert (await mount.core.capacity(fresh=True)).free < 20_000
        parent, _ = await fs._parent(f"{top}/big")
        await mount.ops.unlink(parent, b"big", None)  # type: ignore[arg-type]
        await fs.write_file(f"{top}/next", b"n" * 40_000)  # fits once the delete counts
        assert await mount.writeback.drain() == []
        assert await remote_bytes(mount, f"{top}/next") == b"n" * 40_000
        fresh_server.faults.clear()
