"""The write-back's bookkeeping of holds (a rename moving files), without
uploads: nothing here reaches the client, the journal or the block store."""

from cloudfs.client.models import Entry
from cloudfs.upload.staging import LocalFile
from cloudfs.upload.writeback import WriteBack


def bookkeeping_only() -> WriteBack:
    async def no_fetch(entry, span):  # pragma: no cover - never called
        raise AssertionError("no downloads here")

    return WriteBack(None, None, None, no_fetch, delay_s=0.1, max_parallel=1,  # type: ignore[arg-type]
                     on_uploaded=lambda *args: None)


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
