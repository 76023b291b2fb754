"""The write-back's bookkeeping of holds (a rename moving files) and its
scheduling, without uploads: nothing here reaches the client, the journal
or the block store."""

import trio

from cloudfs.client.models import Entry
from cloudfs.upload.staging import LocalFile
from cloudfs.upload.scheduler import BURST_MAX_WAIT_S, BURST_QUIET_S
from cloudfs.upload.writeback import WriteBack


def bookkeeping_only() -> WriteBack:
    return WriteBack(None, None, None, delay_s=0.1, max_parallel=1)  # type: ignore[arg-type]


async def test_a_hold_follows_the_file_when_a_landed_upload_changes_its_id(tmp_path):
    """Cloudreve 3 replaces a file with a new object: an upload landing while
    a rename's hold begins changes the file's id.  The hold must stay on the
    file and end with the rename.  Keyed by id, it was left behind for good
    on the old id, and the file itself was not held during the rename."""
    writeback = bookkeeping_only()
    entry = Entry(file_id="old", path="/f", is_dir=False, size=0, mtime_ns=0, ctime_ns=0, version="v1")
    local = LocalFile.create(tmp_path, entry)
    writeback.add(local)
    async with writeback.paused([local]):
        # what _landed does, as the rename waits for the upload to finish
        local.file_id = "new"
        writeback.rekey(local, "old")
        assert writeback.is_held(local)
    assert not writeback.is_held(local)
    assert "0 held" in writeback.describe()


def _dirty(tmp_path, name: str) -> LocalFile:
    entry = Entry(file_id=name, path=f"/{name}", is_dir=False, size=0, mtime_ns=0, ctime_ns=0, version="v1")
    local = LocalFile.create(tmp_path, entry)
    local.write(0, b"data")
    return local


async def test_ordinary_uploads_wait_out_a_burst_of_closes_and_urgent_ones_do_not(tmp_path, autojump_clock):
    """tar x, cp -r: while files keep being created and closed, uploads that
    nobody waits for leave the CPU and the server to the kernel's requests,
    until a pause (or BURST_MAX_WAIT_S past their time); fsync's and
    umount's (urgent) start at once."""
    writeback = bookkeeping_only()  # quiet delay 0.1 s
    started: dict[str, float] = {}

    async def record(local, active):
        started[local.remote_path] = trio.current_time()
        del writeback.scheduler._active[local.file_id]
        active.finished.set()

    writeback.scheduler._upload = record  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(writeback.run)
        a, b, c = (_dirty(tmp_path, name) for name in "abc")
        for local in (a, b, c):
            writeback.add(local)
        writeback.closed(a)  # due in 0.1 s
        burst_start = trio.current_time()
        for _ in range(20):  # a close every 0.1 s for 2 s
            await trio.sleep(0.1)
            writeback.note_activity()
        assert "/a" not in started
        writeback.schedule(b, 0)  # fsync: urgent
        await trio.sleep(0.01)
        assert "/b" in started and "/a" not in started
        await trio.sleep(BURST_QUIET_S + 0.1)
        assert burst_start + 2.0 + BURST_QUIET_S - 0.01 <= started["/a"] <= burst_start + 2.0 + BURST_QUIET_S + 0.02
        # a burst that does not end: waited out no longer than BURST_MAX_WAIT_S past the due time
        writeback.closed(c)
        due = trio.current_time() + 0.1
        for _ in range(150):
            await trio.sleep(0.1)
            writeback.note_activity()
        assert due + BURST_MAX_WAIT_S - 0.01 <= started["/c"] <= due + BURST_MAX_WAIT_S + 0.02
        nursery.cancel_scope.cancel()
