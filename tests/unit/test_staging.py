"""LocalFile against a base version held in memory (its fetch function is the only I/O seam)."""

import os

import pytest

from cloudfs.client.models import Entry
from cloudfs.upload.journal import Journal
from cloudfs.upload.staging import LocalFile

BASE = bytes(range(256)) * 40  # 10240 bytes


def base_entry(size: int = len(BASE)) -> Entry:
    return Entry(file_id="f1", path="/f", is_dir=False, size=size, mtime_ns=0, ctime_ns=0, version="v1")


class Base:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fetched: list[tuple[int, int]] = []

    async def fetch(self, entry, span):
        self.fetched.append(span)
        return self.data[span[0] : span[1]]


def model_apply(model: bytearray, op) -> None:
    kind, *args = op
    if kind == "write":
        off, data = args
        if off > len(model):
            model.extend(b"\0" * (off - len(model)))
        model[off : off + len(data)] = data
    else:
        (size,) = args
        del model[size:]
        model.extend(b"\0" * (size - len(model)))


OPS = [
    [("write", 100, b"hello")],
    [("write", 10000, b"x" * 1000)],
    [("truncate", 50), ("truncate", 5000)],
    [("write", 0, b"abc"), ("truncate", 20000), ("write", 15000, b"tail")],
    [("truncate", 0), ("write", 3, b"new")],
    [("write", 5000, b"m" * 10), ("truncate", 4000), ("truncate", 9000), ("write", 8000, b"z")],
]


@pytest.mark.parametrize("ops", OPS)
async def test_staging_content_matches_a_model(tmp_path, ops):
    base = Base(BASE)
    local = LocalFile.create(tmp_path, base_entry())
    model = bytearray(BASE)
    for op in ops:
        if op[0] == "write":
            local.write(op[1], op[2])
        else:
            local.truncate(op[1])
        model_apply(model, op)
    assert local.size == len(model)
    # reads in odd pieces
    for off in (0, 1, 99, 4000, 9999, len(model) - 1):
        assert await local.read(off, 777, base.fetch) == bytes(model[off : off + 777])
    await local.fill(base.fetch)
    assert local.complete
    with open(local.staging, "rb") as fp:
        assert fp.read() == bytes(model)


async def test_staging_append_downloads_nothing_until_needed(tmp_path):
    base = Base(BASE)
    local = LocalFile.create(tmp_path, base_entry())
    local.write(len(BASE), b"appended")
    assert base.fetched == []
    assert await local.read(len(BASE), 8, base.fetch) == b"appended"
    assert base.fetched == []
    await local.fill(base.fetch)
    assert base.fetched == [(0, len(BASE))]
    assert local.dirty and local.generation == 1


async def test_an_older_version_landing_does_not_bring_back_truncated_bytes(tmp_path):
    """Truncated to 0 and extended while generation 1 was uploading: when that
    upload lands (the new base), the extended part still reads as zeros, not
    as the landed version's bytes (found by the long model run on v3)."""
    base = Base(BASE)
    local = LocalFile.create(tmp_path, base_entry())
    local.write(0, b"generation one")
    await local.fill(base.fetch)
    uploading = local.generation
    local.truncate(0)
    local.truncate(5000)
    landed = Entry(file_id="f2", path="/f", is_dir=False, size=len(BASE), mtime_ns=0, ctime_ns=0, version="v2")
    local.uploaded(landed, uploading)
    assert local.dirty
    newer = Base(b"generation one" + BASE[14:])  # what the landed version holds
    assert await local.read(0, 5000, newer.fetch) == bytes(5000)
    assert newer.fetched == []


async def test_journal_records_survive_reopen(tmp_path):
    local = LocalFile.create(tmp_path, base_entry())
    local.write(5, b"data")
    journal = Journal(tmp_path / "journal.db")
    assert journal.open() == []
    await journal.record(local)
    await journal.move("f1", "/moved")
    journal.close()
    again = Journal(tmp_path / "journal.db")
    (rec,) = again.open()
    assert rec.file_id == "f1" and rec.path == "/moved" and rec.size == len(BASE)
    assert rec.base_version == "v1" and list(rec.present) == [(5, 9)]
    await again.forget("f1")
    assert again.open() == []
    again.close()
    assert os.path.exists(local.staging)


async def test_journal_full_disk_is_enospc(tmp_path):
    # a full cache disk must reach callers as ENOSPC (an OSError, like the
    # staging files' own), not as a sqlite3 error that nothing expects
    import errno

    journal = Journal(tmp_path / "journal.db")
    journal.open()
    page_count = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {page_count}")  # the database may not grow
    with pytest.raises(OSError) as failure:
        for i in range(200):  # records until the database would have to grow
            await journal.record(LocalFile.create(tmp_path, Entry(
                file_id=f"f{i}", path=f"/{'n' * 200}{i}", is_dir=False, size=10, mtime_ns=0, ctime_ns=0,
                version="v1")))
    assert failure.value.errno == errno.ENOSPC
    journal.close()


async def test_journal_writes_the_records_of_uploads_landing_together_in_one_commit(tmp_path, monkeypatch):
    """Many uploads landing at once (a drain of small files) each delete
    their record: one commit (one fsync of the journal) for all of those
    waiting, not one each, and every forget returns once its delete is
    durable.  A record written after a forget of the same file stays."""
    import trio

    journal = Journal(tmp_path / "journal.db")
    journal.open()
    files = [LocalFile.create(tmp_path, Entry(file_id=f"f{i}", path=f"/f{i}", is_dir=False, size=10,
                                              mtime_ns=0, ctime_ns=0, version="v1")) for i in range(20)]
    for local in files:
        await journal.record(local)
    commits = []
    real_run = journal._run
    monkeypatch.setattr(journal, "_run", lambda *args, **kw: (commits.append(args), real_run(*args, **kw))[1])
    async with trio.open_nursery() as nursery:
        for local in files[1:]:
            nursery.start_soon(journal.forget, local.file_id)
        nursery.start_soon(journal.forget, "f0")
        await trio.sleep(0)  # f0's forget is asked for before its record is written again
        nursery.start_soon(journal.record, files[0])
    assert len(commits) <= 3
    (rec,) = journal.open()
    assert rec.file_id == "f0"
    journal.close()



async def test_journal_writes_records_asked_for_together_in_one_commit(tmp_path, monkeypatch):
    """The uploads that start together after a burst each record their file
    first: those waiting share one commit (one fsync), each returns once its
    record is durable, a file removed meanwhile is not recorded, and a
    failed commit fails every caller whose record it carried."""
    import errno

    import pytest
    import trio

    journal = Journal(tmp_path / "journal.db")
    journal.open()
    files = [LocalFile.create(tmp_path, Entry(file_id=f"r{i}", path=f"/r{i}", is_dir=False, size=10,
                                              mtime_ns=0, ctime_ns=0, version="v1")) for i in range(20)]
    commits = []
    real_run = journal._run
    monkeypatch.setattr(journal, "_run", lambda *args, **kw: (commits.append(args), real_run(*args, **kw))[1])
    files[5].removed = True  # unlinked before its record could be written
    async with trio.open_nursery() as nursery:
        for local in files:
            nursery.start_soon(journal.record, local)
    assert len(commits) <= 2
    assert sorted(rec.file_id for rec in journal.open()) == sorted(f"r{i}" for i in range(20) if i != 5)

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(journal, "_run", full)
    failed = []

    async def record(local):
        try:
            await journal.record(local)
        except OSError as exc:
            failed.append(exc.errno)

    async with trio.open_nursery() as nursery:
        for local in files[:4]:
            nursery.start_soon(record, local)
    assert failed == [errno.ENOSPC] * 4
    journal.close()


async def test_a_small_file_is_journaled_with_its_content_instead_of_syncing_its_staging_file(tmp_path, monkeypatch):
    """close(2) of a small file costs one fsync (the journal's commit, which
    now carries the content), not two (the staging file's, then the
    journal's): tar x of small files is bound by them.  After a crash the
    staging file, never synced, may be short: the replay rewrites it."""
    empty = Entry(file_id="n1", path="/n", is_dir=False, size=0, mtime_ns=0, ctime_ns=0, version="v0")
    local = LocalFile.create(tmp_path, empty)
    local.write(0, b"small content")
    synced = []
    monkeypatch.setattr(local, "sync", lambda: synced.append(True))
    journal = Journal(tmp_path / "journal.db")
    journal.open()
    await journal.record(local, sync_first=True)
    assert synced == []
    journal.close()
    os.truncate(local.staging, 3)  # what a crash may leave of a file never synced
    again = Journal(tmp_path / "journal.db")
    (rec,) = again.open()
    rec.restore()
    assert local.staging.read_bytes() == b"small content"
    again.close()
    # a large file, or one whose content is partly still on the server, is synced as before
    big = LocalFile.create(tmp_path, base_entry())
    big.write(0, b"x")
    monkeypatch.setattr(big, "sync", lambda: synced.append(True))
    again.open()
    await again.record(big, sync_first=True)
    assert synced == [True]
    again.close()


# ---- the SHA-256 computed while a file is written (capability whole_file_hash) ----------
def new_entry() -> Entry:
    return Entry(file_id="n1", path="/n", is_dir=False, size=0, mtime_ns=0, ctime_ns=0, version="")


def staged_sha256(local: LocalFile) -> str:
    import hashlib
    with open(local.staging, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


def test_a_file_written_front_to_back_is_hashed_as_written(tmp_path):
    from cloudfs.client.sha256state import STATES_AVAILABLE, STEP, hash_file
    local = LocalFile.create(tmp_path, new_entry(), hash_content=True)
    piece = os.urandom(1 << 20)
    for _ in range(2 * (STEP >> 20) + 3):  # past two state steps
        local.write(local.size, piece)
    hashed = local.hashed()
    assert hashed is not None and hashed.size == local.size and hashed.hexdigest == staged_sha256(local)
    fd = os.open(local.staging, os.O_RDONLY)
    try:
        assert hashed == hash_file(fd, local.size)  # the same states as reading it back
    finally:
        os.close(fd)
    assert len(hashed.states) == (3 if STATES_AVAILABLE else 0)
    local.write(local.size, b"more")  # the hash goes on after a result
    assert local.hashed().hexdigest == staged_sha256(local)


@pytest.mark.parametrize("break_it", [
    lambda f: f.write(0, b"rewrite"),          # a seek back
    lambda f: f.write(f.size + 10, b"gap"),     # a hole
    lambda f: f.truncate(f.size - 1),           # shorter
    lambda f: f.truncate(f.size + 100),         # longer (zeros not written)
])
def test_anything_but_appending_ends_the_hash(tmp_path, break_it):
    local = LocalFile.create(tmp_path, new_entry(), hash_content=True)
    local.write(0, b"x" * 1000)
    break_it(local)
    local.write(local.size, b"appended after")
    assert local.hashed() is None  # the upload reads the file back
    local.truncate(local.size)  # to the same size: still none
    assert local.hashed() is None


def test_rewritten_from_zero_is_hashed_again(tmp_path):
    base = Base(BASE)
    local = LocalFile.create(tmp_path, base_entry(), hash_content=True)
    local.write(len(BASE), b"append to a remote file")  # its base content was never hashed
    assert local.hashed() is None
    local.truncate(0)  # O_TRUNC: written afresh
    assert local.hashed() is not None
    local.write(0, b"fresh")
    assert local.hashed().hexdigest == staged_sha256(local)
    assert base.fetched == []


def test_no_hash_where_the_backend_wants_none(tmp_path):
    local = LocalFile.create(tmp_path, new_entry())
    local.write(0, b"abc")
    assert local.hashed() is None


def test_the_hash_is_none_or_right_whatever_the_writes(tmp_path):
    import random
    rng = random.Random(7)
    for run in range(40):
        local = LocalFile.create(tmp_path, new_entry(), hash_content=True)
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            if roll < 0.7:
                local.write(local.size if rng.random() < 0.8 else rng.randint(0, local.size + 5),
                            os.urandom(rng.randint(0, 300)))
            else:
                local.truncate(rng.choice([0, local.size, max(0, local.size - 3), local.size + 7]))
            hashed = local.hashed()
            assert hashed is None or (hashed.size, hashed.hexdigest) == (local.size, staged_sha256(local))
        local.discard()


def test_staging_a_file_remakes_the_staging_folder_if_it_went(tmp_path):
    # the folder is made when the mount starts, not checked for every file
    # created; one removed since is made again, not an error
    from cloudfs.upload.staging import unsent_entry

    staging_dir = tmp_path / "cache" / "staging"
    local = LocalFile.create(staging_dir, unsent_entry("/new"))
    assert local.staging.parent == staging_dir and os.path.getsize(local.staging) == 0
    assert local.dirty and local.size == 0
    local.close()
    existing = LocalFile.create(staging_dir, base_entry())
    assert os.path.getsize(existing.staging) == len(BASE)  # sparse, the base's size
    existing.close()
