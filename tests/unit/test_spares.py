"""Spare staging files: made ahead in a worker thread, taken by new files,
made again when fewer than half are left; a killed run's unused ones go at
the next start, the journaled ones stay."""

from pathlib import Path

import trio

from cloudfs.client.models import Entry
from cloudfs.upload.spares import SpareFiles
from cloudfs.upload.staging import LocalFile, unsent_entry


async def wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


async def test_spares_are_made_ahead_taken_and_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "spare"
    spares = SpareFiles(folder, keep=8)
    assert spares.take() is None  # none made yet: the caller makes its own
    async with trio.open_nursery() as nursery:
        await nursery.start(spares.run)
        # (ready once the worker thread's batch is handed over, not when its files appear one by one)
        await wait_for(lambda: len(spares.ready()) == 8)
        assert len(list(folder.iterdir())) == 8
        taken = [spares.take() for _ in range(5)]
        for path in taken:
            assert path is not None and path.parent == folder and path.stat().st_size == 0
            path.write_bytes(b"mine")  # the caller's now
        # fewer than half left: made again, off the event loop
        await wait_for(lambda: len(spares.ready()) == 8)
        assert len(list(folder.iterdir())) == 5 + 8
        nursery.cancel_scope.cancel()
    # the untaken ones are removed when it stops; the taken ones are the callers'
    assert sorted(folder.iterdir()) == sorted(taken)  # type: ignore[type-var]
    assert all(path.read_bytes() == b"mine" for path in taken)  # type: ignore[union-attr]


async def test_a_killed_runs_unused_spares_go_at_the_next_start_the_journaled_stay(tmp_path: Path) -> None:
    folder = tmp_path / "spare"
    folder.mkdir()
    journaled = folder / "journaled"
    journaled.write_bytes(b"closed before the kill")
    (folder / "unused").write_bytes(b"")
    spares = SpareFiles(folder, keep=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(spares.run, [journaled])
        assert not (folder / "unused").exists()
        assert journaled.read_bytes() == b"closed before the kill"
        nursery.cancel_scope.cancel()


def test_a_staged_file_takes_a_spare_instead_of_making_a_file(tmp_path: Path) -> None:
    spare_path = tmp_path / "spare-file"
    spare_path.write_bytes(b"")
    local = LocalFile.create(tmp_path / "staging", unsent_entry("/new"), spare=spare_path)
    assert local.staging == spare_path
    assert not (tmp_path / "staging").exists()  # nothing made there
    local.write(0, b"data")
    assert spare_path.read_bytes() == b"data"
    # an existing file staged on a spare: sparse at the base's size, as without one
    spare2 = tmp_path / "spare-2"
    spare2.write_bytes(b"")
    base = Entry(file_id="f1", path="/f", is_dir=False, size=100, mtime_ns=0, ctime_ns=0, version="v1")
    staged = LocalFile.create(tmp_path / "staging", base, spare=spare2)
    assert spare2.stat().st_size == 100 and staged.base == base
    # a spare removed meanwhile (by hand): a staging file is made now instead
    gone = LocalFile.create(tmp_path / "staging", unsent_entry("/other"), spare=tmp_path / "removed")
    assert gone.staging.parent == tmp_path / "staging" and gone.staging.exists()
    for each in (local, staged, gone):
        each.discard()
    assert not spare_path.exists() and not spare2.exists() and not gone.staging.exists()
