"""KooDrive uploads against the emulator (real HTTP): parallel parts with
``hashCtx``, the SHA-256 handed in by the caller, and cancelled uploads."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import httpx
import pytest
import trio

from cloudfs.client.api import CloudreveClient
from cloudfs.client.dialect import UploadSession
from cloudfs.client.sha256state import STATES_AVAILABLE, HashStates
from cloudfs.errors import CloudfsError
from cloudfs.server.testing import RunningServer

from .conftest import FAST
from .test_koodrive import kclient, kd  # noqa: F401 (the KooDrive emulator and a client of it)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


MIB = 1 << 20
needs_states = pytest.mark.skipif(not STATES_AVAILABLE, reason="no libcrypto: no SHA-256 states, no parallel parts")


async def connect(kd: RunningServer, token_store, **settings: object) -> CloudreveClient:
    return await CloudreveClient.connect(kd.url, email=kd.email, password=kd.password, token_store=token_store,
                                         settings=dataclasses.replace(FAST, **settings))


def sessions_of(client: CloudreveClient) -> list[UploadSession]:
    """Every upload session the client's dialect opens from now on (observed, not changed)."""
    dialect = client._dialect
    opened: list[UploadSession] = []
    original = dialect.open_upload

    async def spy(*args, **kwargs):
        session = await original(*args, **kwargs)
        opened.append(session)
        return session

    dialect.open_upload = spy
    return opened


async def round_trip(client: CloudreveClient, path: str, data: bytes) -> None:
    entry = await client.stat(path)
    assert entry.size == len(data)
    assert hashlib.sha256(await client.read(entry, 0, entry.size)).digest() == hashlib.sha256(data).digest()


@needs_states
async def test_a_large_file_goes_up_in_parallel_parts_with_hash_ctx(kclient, tmp_path):
    data = os.urandom(40 * MIB + 1000)  # six parts: five of 8 MiB and 1000 bytes
    src = tmp_path / "p"
    src.write_bytes(data)
    opened = sessions_of(kclient)
    await kclient.upload("/par.bin", src)
    (session,) = opened
    plan = session.extra["plan"]
    assert session.concurrency > 1 and session.chunk_size == 8 * MIB
    assert [plan[n]["partSize"] for n in sorted(plan)] == [8 * MIB] * 5 + [1000]
    assert "hashCtx" not in plan[1] and all(len(plan[n]["hashCtx"]) == 64 for n in range(2, 7))
    await round_trip(kclient, "/par.bin", data)  # complete checked every hashCtx (verify_hash_ctx)


async def test_small_files_and_one_part_at_a_time_stay_sequential(kd, kclient, token_store, tmp_path):
    small = os.urandom(8 * MIB)  # one parallel part: not worth a plan of our own
    src = tmp_path / "s"
    src.write_bytes(small)
    opened = sessions_of(kclient)
    await kclient.upload("/seq-small.bin", src)
    assert opened[-1].concurrency == 1 and opened[-1].extra["plan"] == {}
    await round_trip(kclient, "/seq-small.bin", small)
    one_at_a_time = await connect(kd, token_store, upload_parallelism=1)
    try:
        big = os.urandom(20 * MIB)
        src.write_bytes(big)
        opened = sessions_of(one_at_a_time)
        await one_at_a_time.upload("/seq-big.bin", src)
        assert opened[-1].concurrency == 1 and opened[-1].extra["plan"] == {}
        assert opened[-1].chunk_size == 5 * MIB  # the server's plan
        await round_trip(one_at_a_time, "/seq-big.bin", big)
    finally:
        await one_at_a_time.aclose()


@needs_states
async def test_a_wrong_hash_state_is_refused_at_complete(kclient, tmp_path):
    """The server checks each hashCtx: a wrong one fails the upload (and nothing appears)."""
    data = os.urandom(17 * MIB)
    src = tmp_path / "w"
    src.write_bytes(data)
    good = HashStates(len(data), hashlib.sha256(data).hexdigest(), 8 * MIB, ("00" * 32,) * 3)
    with pytest.raises(CloudfsError):
        await kclient.upload("/wrong-ctx.bin", src, hashed=good)
    _, children = await kclient.list_all("/")
    assert "wrong-ctx.bin" not in [c.name for c in children]


@needs_states
async def test_expired_part_urls_are_renewed_with_their_hash_ctx(kd, kclient, tmp_path):
    data = os.urandom(33 * MIB)
    src = tmp_path / "e"
    src.write_bytes(data)
    expired = False

    def progress(n: int) -> None:
        nonlocal expired
        if not expired:  # after the first part: every URL handed out so far stops working
            expired = True
            httpx.post(kd.url + "/_cloudfs/koodrive/expire-urls").raise_for_status()

    await kclient.upload("/renewed.bin", src, progress=progress)
    await round_trip(kclient, "/renewed.bin", data)


async def test_cancelled_upload_leaves_nothing_and_the_name_free(kclient, tmp_path):
    """No cancel endpoint: a cancelled upload's task stays on the server,
    invisible; the next upload to the same path must still succeed."""
    data = os.urandom(12 << 20)
    src = tmp_path / "c"
    src.write_bytes(data)
    await kclient.mkdir("/cx")
    with trio.CancelScope() as scope:
        def progress(n: int) -> None:
            scope.cancel()
        await kclient.upload("/cx/f.bin", src, progress=progress)
    assert scope.cancelled_caught
    _, children = await kclient.list_all("/cx")
    assert children == []
    entry = await kclient.upload("/cx/f.bin", src)
    assert entry.path == "/cx/f.bin" and entry.size == len(data)
    assert hashlib.sha256(await kclient.read(entry, 0, entry.size)).digest() == hashlib.sha256(data).digest()


async def test_a_lost_complete_answer_is_not_a_failure(kd, kclient, tmp_path):
    """``files/complete`` acted but its answer was lost: the retry finds the
    task gone (13000401), yet the file is there, complete.  A replacing
    upload then still swaps, and leaves nothing beside."""
    old = tmp_path / "old"
    old.write_bytes(b"old content")
    await kclient.mkdir("/lost")
    entry = await kclient.upload("/lost/f.bin", old)
    data = os.urandom(6 * MIB)
    src = tmp_path / "l"
    src.write_bytes(data)
    kd.faults.set(drop_rate=1.0, drop_target="response", path_regex="/files/complete$", count=1)
    try:
        newer = await kclient.upload("/lost/f.bin", src, replace=entry)
    finally:
        kd.faults.clear()
    assert newer.size == len(data)
    _, children = await kclient.list_all("/lost")
    assert [c.name for c in children] == ["f.bin"]
    await round_trip(kclient, "/lost/f.bin", data)


async def test_an_upload_the_server_made_whole_at_open_is_finished_not_cancelled(kd, kclient, tmp_path):
    """A content the server knows makes the file whole at ``files/create``
    (``rapidUpload``): visible at its name at once.  Cancelled then, the
    caller would never hear of it (a new file renamed or unlinked meanwhile
    stayed on the server under the old name, and its next upload found its
    own content there, someone else's by all it knew): it is finished and
    its entry handed back, the cancellation taking effect after it."""
    data = os.urandom(64 << 10)
    src = tmp_path / "r"
    src.write_bytes(data)
    await kclient.mkdir("/rapid")
    await kclient.upload("/rapid/known.bin", src)  # the server knows the content from now on
    kd.faults.set(path_regex="/files/create$", latency_s=0.5, count=1)
    try:
        entry = None
        with trio.move_on_after(0.2) as scope:  # cancelled while files/create is on its way
            entry = await kclient.upload("/rapid/new.bin", src)
    finally:
        kd.faults.clear()
    _, children = await kclient.list_all("/rapid")
    assert not scope.cancelled_caught and entry is not None, sorted(c.name for c in children)
    assert entry.path == "/rapid/new.bin" and entry.size == len(data)
    assert sorted(c.name for c in children) == ["known.bin", "new.bin"]
    assert {c.file_id for c in children if c.name == "new.bin"} == {entry.file_id}


async def test_a_small_new_file_costs_three_requests_and_a_replace_nine(kd, kclient, tmp_path):
    """``files/create``, its part, ``files/complete``: the entry is known
    from what was sent and answered (no ``detail``).  A replace adds the
    check of the file replaced, the delete job (answered done at its third
    poll on the emulator) and the rename, whose entry is known too."""
    src = tmp_path / "s"
    src.write_bytes(os.urandom(4096))
    await kclient.mkdir("/counted")
    kd.faults.set(latency_s=0.0)  # counts every request, injects nothing
    try:
        entry = await kclient.upload("/counted/f.bin", src, mtime_ns=1_700_000_000_123_000_000)
        assert kd.faults.stats()["matched"] == 3
        src.write_bytes(os.urandom(5000))
        newer = await kclient.upload("/counted/f.bin", src, replace=entry, mtime_ns=1_700_000_001_000_000_000)
        assert kd.faults.stats()["matched"] == 3 + 9
    finally:
        kd.faults.clear()
    assert (entry.size, newer.size, newer.path) == (4096, 5000, "/counted/f.bin")
    assert newer.file_id != entry.file_id and newer.version == newer.file_id
    shown = await kclient.stat("/counted/f.bin")  # what the server shows, as the upload said
    assert abs(shown.ctime_ns - newer.ctime_ns) < 3_000_000_000  # (the server's: whole seconds)
    assert dataclasses.replace(shown, ctime_ns=newer.ctime_ns) == newer
