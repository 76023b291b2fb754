"""Uploads and downloads against the real server, content checked by sha256.

On KooDrive (``ON_KOODRIVE``) the parts are the server's (5 MiB at least,
whatever ``chunk_size``), so the multi-part cases use larger files there;
the checks of Cloudreve's own codes and chunk rules are Cloudreve only."""

from __future__ import annotations

import errno
import os
import re
import uuid
from contextlib import aclosing
from dataclasses import replace

import pytest
import trio

from cloudfs.client.models import UPLOAD_TAG_KEY, stored_mtime_ns
from cloudfs.errors import AlreadyExists, CloudfsError
from cloudfs.client.cloudreve_codes import CloudreveError

from .conftest import FAST, remote_sha256, sha256

ON_KOODRIVE = True

CHUNK = 256 << 10
#: KooDrive's smallest part (the emulator plans parts of this size)
KOODRIVE_PART = 5 << 20


@pytest.fixture(scope="module")
def part(dialect) -> int:
    """The size of one upload chunk (part) on the ``chunky`` server."""
    return KOODRIVE_PART if dialect == "koodrive" else CHUNK


@pytest.fixture(scope="module")
def chunky(tmp_path_factory, dialect):
    """A server with small chunks, so small files make many chunks."""
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("chunky"), chunk_size=CHUNK, dialect=dialect) as srv:
        yield srv


@pytest.fixture
async def cclient(connect, chunky):
    return await connect(srv=chunky, settings=replace(FAST, read_part_size=100_000))


async def test_multi_chunk_roundtrip(cclient, local_file, part, dialect):
    chunks = 3 if dialect == "koodrive" else 6
    size = (chunks - 1) * part + 12345
    src, digest = local_file(size)
    seen: list[int] = []
    mtime_ns = 1_600_000_000_123_456_789
    entry = await cclient.upload(f"/rt-{uuid.uuid4().hex[:8]}/deep/file.bin", src, mtime_ns=mtime_ns,
                                 progress=seen.append)
    assert entry.size == size and entry.version and not entry.uploading and not entry.is_dir
    assert sum(seen) == size
    # KooDrive's parts follow the client's parallel plan (8 MiB) or the server's (5 MiB)
    assert len(seen) >= 2 if dialect == "koodrive" else len(seen) == chunks
    # kept to the millisecond (KooDrive's item times are whole seconds; its upload's entry shows
    # the time asked for, as this client's overlay shows it on the server's entries)
    unit = 1_000_000_000 if dialect == "koodrive" else 1_000_000
    assert entry.mtime_ns // unit == mtime_ns // unit
    assert await remote_sha256(cclient, entry.path) == digest
    pieces = []
    async with aclosing(cclient.stream(entry, 0, size)) as it:
        async for piece in it:
            pieces.append(piece)
    assert sha256(b"".join(pieces)) == digest


async def test_ranges_and_eof(cclient, local_file):
    size = 3 * CHUNK + 7
    src, _ = local_file(size, seed=3)
    data = src.read_bytes()
    entry = await cclient.upload(f"/ranges-{uuid.uuid4().hex[:8]}", src)
    for off, length in ((0, 1), (1, 10), (CHUNK - 3, 6), (size - 5, 5), (size - 5, 100), (123, 550_000)):
        assert await cclient.read(entry, off, length) == data[off:off + length]
    assert await cclient.read(entry, size, 10) == b""
    assert await cclient.read(entry, size + 100, 10) == b""
    assert await cclient.read(entry, 0, 0) == b""
    # one large read fetched as several parallel ranges (read_part_size 100 000)
    assert await cclient.read(entry, 50, size) == data[50:]


async def test_zero_byte_file(cclient, tmp_path):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    entry = await cclient.upload(f"/zero-{uuid.uuid4().hex[:8]}", src)
    assert entry.size == 0 and not entry.uploading
    signed = cclient._debug_state()["urls_signed"]
    assert await cclient.read(entry, 0, 100) == b""
    assert [p async for p in cclient.stream(entry, 0, 100)] == []
    assert cclient._debug_state()["urls_signed"] == signed  # no download at all
    created = await cclient.create_file(f"/zero-created-{uuid.uuid4().hex[:8]}")
    assert await cclient.read(created, 0, 10) == b""


@pytest.mark.v4_only("Cloudreve 3 has no versions: test_v3.py::test_replace_gives_a_new_id")
async def test_overwrite_is_a_new_version(cclient, local_file, dialect):
    path = f"/ow-{uuid.uuid4().hex[:8]}"
    v1_src, v1 = local_file(2 * CHUNK + 1, seed=1)
    v2_src, v2 = local_file(CHUNK + 99, seed=2)
    first = await cclient.upload(path, v1_src)
    with pytest.raises(CloudfsError) as info:
        await cclient.upload(path, v2_src)  # replace=None: must not exist
    assert info.value.errno == errno.EEXIST
    second = await cclient.upload(path, v2_src, replace=first)
    # KooDrive uploads beside and swaps: the file id changes (its capability says so)
    assert (second.file_id != first.file_id) == cclient.capabilities.replace_gives_new_id
    assert second.version != first.version
    assert second.size == CHUNK + 99
    assert await remote_sha256(cclient, path) == v2
    # replacing a version that is no longer current: ESTALE, content untouched
    with pytest.raises(CloudfsError) as info:
        await cclient.upload(path, v1_src, replace=first)
    assert info.value.errno == errno.ESTALE
    if dialect == "v4":
        assert isinstance(info.value, CloudreveError) and info.value.code == 40076
    assert await remote_sha256(cclient, path) == v2
    assert (await cclient.stat(path)).file_id == second.file_id
    assert v1 != v2
    if dialect == "koodrive":  # the refused upload beside was dropped
        assert [e.name for e in (await cclient.list_all("/"))[1] if e.name.startswith(f".{path[1:]}")] == []


async def test_reading_a_replaced_version_says_it_is_gone(cclient, local_file, dialect):
    """A reader holding an old version (an open file, a staged file's base)
    is told the version is gone, never given another version's bytes:
    Cloudreve 4 keeps the file, so ESTALE (not the EISDIR that its "entity
    does not exist" maps to); Cloudreve 3 and KooDrive replaced the object,
    so ENOENT."""
    path = f"/gone-version-{uuid.uuid4().hex[:8]}"
    v1_src, _ = local_file(1000, seed=3)
    v2_src, _ = local_file(500, seed=4)
    first = await cclient.upload(path, v1_src)
    await cclient.upload(path, v2_src, replace=first)
    with pytest.raises(CloudfsError) as info:
        await cclient.read(first, 0, 100)
    assert info.value.errno == (errno.ESTALE if dialect == "v4" else errno.ENOENT)


async def test_replacing_an_empty_created_file(cclient, local_file):
    path = f"/fill-{uuid.uuid4().hex[:8]}"
    empty = await cclient.create_file(path)
    src, digest = local_file(1000)
    filled = await cclient.upload(path, src, replace=empty)
    assert filled.size == 1000 and await remote_sha256(cclient, path) == digest


async def test_parallel_chunks(connect, chunky, local_file, part):
    client = await connect(srv=chunky, settings=replace(FAST, upload_parallelism=4))
    src, digest = local_file(3 * part + 5, seed=9)
    entry = await client.upload(f"/par-{uuid.uuid4().hex[:8]}", src)
    assert await remote_sha256(client, entry.path) == digest


def forged(url: str) -> str:
    """``url`` with a wrong signature (Cloudreve's ``sign``, KooDrive's
    object store's ``X-Amz-Signature``): the server refuses it (Cloudreve
    with 200 + 40071, the object store with 403)."""
    match = re.search(r"[?&](?:sign|X-Amz-Signature)=", url)
    assert match is not None, url
    start = match.end()
    return url[:start] + "AAAA" + url[start + 4:]


async def test_refused_url_is_signed_again(cclient, local_file):
    src, digest = local_file(CHUNK + 10)
    entry = await cclient.upload(f"/resign-{uuid.uuid4().hex[:8]}", src)
    assert await remote_sha256(cclient, entry.path) == digest
    cache = cclient._downloads.urls
    bad = forged(cache.cached(entry))
    cache._urls[cache.key(entry)] = (bad, float("inf"))  # the server will refuse it
    signed = cache.signed
    assert sha256(await cclient.read(entry, 0, entry.size)) == digest
    assert cache.signed == signed + 1 and cache.cached(entry) != bad


async def test_cancelled_upload_leaves_nothing(cclient, local_file, part):
    src, _ = local_file(4 * part)
    path = f"/cancel-{uuid.uuid4().hex[:8]}"
    before = await cclient.capacity()
    with trio.CancelScope() as scope:
        # cancelled once the first chunk is in: the session must be cancelled too
        await cclient.upload(path, src, progress=lambda n: scope.cancel())
    assert scope.cancelled_caught
    with pytest.raises(CloudfsError) as info:
        await cclient.stat(path)
    assert info.value.errno == errno.ENOENT
    assert (await cclient.capacity()).used == before.used
    assert path[1:] not in [e.name for e in (await cclient.list_all("/"))[1]]


async def test_missing_source_file(cclient, tmp_path):
    with pytest.raises(CloudfsError) as info:
        await cclient.upload("/never", tmp_path / "does-not-exist")
    assert info.value.errno == errno.ENOENT


async def test_upload_respects_name_limit(cclient, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(CloudfsError) as info:
        await cclient.upload("/" + "n" * 256, src)
    assert info.value.errno == errno.ENAMETOOLONG


async def test_large_file_parallel_read_matches(cclient, tmp_path):
    size = 6 << 20
    src = tmp_path / "big"
    src.write_bytes(os.urandom(size))
    entry = await cclient.upload(f"/big-{uuid.uuid4().hex[:8]}", src)
    assert sha256(await cclient.read(entry, 0, size)) == sha256(src.read_bytes())


@pytest.mark.cloudreve_only("Cloudreve < 4.18's rule for the completing chunk; KooDrive completes with "
                            "files/complete, a call of its own")
async def test_last_chunk_goes_last(connect, tmp_path_factory, local_file, dialect):
    """Portability with Cloudreve < 4.18: the completing chunk is sent only
    after every other chunk succeeded (checked in the server's access log).
    On v3 every chunk goes in order, one at a time."""
    import re

    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("order"), chunk_size=64 << 10, dialect=dialect,
                      extra_args=["--access-log", "--chunk-concurrency", "3"]) as srv:
        client = await connect(srv=srv, settings=replace(FAST, upload_parallelism=8))
        src, digest = local_file(10 * (64 << 10) + 3, seed=77)
        entry = await client.upload("/ordered.bin", src)
        assert await remote_sha256(client, entry.path) == digest
        pattern = re.compile(r"POST " + srv.api + r"/file/upload/[^/ ]+/(\d+)")
        for _ in range(50):
            indexes = [int(m.group(1)) for m in map(pattern.search, srv.stderr().splitlines()) if m]
            if len(indexes) >= 11:
                break
            await trio.sleep(0.05)
        assert sorted(indexes) == list(range(11))
        assert indexes[-1] == 10
        if dialect == "v3":
            assert indexes == list(range(11))


async def test_upload_tag_is_stored_with_the_version(cclient, local_file):
    """The tag lets a caller whose answers were lost recognise its own version
    (Cloudreve 3 and KooDrive have no metadata: their dialects show the tags
    of this client's own uploads, which they remember by object id)."""
    from cloudfs.client.models import UPLOAD_TAG_KEY

    path = f"/tag-{uuid.uuid4().hex[:8]}"
    v1_src, _ = local_file(CHUNK + 1, seed=1)
    v2_src, _ = local_file(10, seed=2)
    first = await cclient.upload(path, v1_src, tag="first")
    assert (await cclient.stat(path)).metadata[UPLOAD_TAG_KEY] == "first"
    await cclient.upload(path, v2_src, replace=first, tag="second")
    assert (await cclient.stat(path)).metadata[UPLOAD_TAG_KEY] == "second"


@pytest.mark.parametrize("size", [CHUNK // 2, 3 * CHUNK], ids=["small", "session"])
async def test_replacing_an_empty_file_that_another_took_the_place_of_is_stale(cclient, local_file, size,
                                                                               dialect):
    """Every file made by create and never written has the same version
    token on Cloudreve 4 (no content entity: hashid 0), so "previous" alone
    cannot tell it from another such file renamed over its path meanwhile:
    an upload based on the first must not land in the second (found by the
    hardening test as one staged file taking another's place in the
    write-back)."""
    base = f"/taken-{uuid.uuid4().hex[:8]}"
    await cclient.mkdir(base)
    mine = await cclient.create_file(f"{base}/f")
    await cclient.rename(f"{base}/f", "moved")
    theirs = await cclient.create_file(f"{base}/f")
    assert theirs.file_id != mine.file_id and theirs.size == mine.size == 0
    src, _ = local_file(size, seed=41)
    with pytest.raises(CloudfsError) as info:
        await cclient.upload(f"{base}/f", src, replace=mine)
    assert info.value.errno == errno.ESTALE  # stale: as if its version had changed
    if dialect != "koodrive":
        assert isinstance(info.value, CloudreveError) and info.value.code == 40076
    now = await cclient.stat(f"{base}/f")
    assert now.file_id == theirs.file_id and now.size == 0  # untouched


async def test_a_small_new_file_goes_up_in_one_request(connect, chunky, local_file, dialect):
    """Cloudreve 4 makes a small new file with the one request that replaces
    a small file's content (PUT /file/content, then its time in a metadata
    patch), and only makes it: whatever took the name first stays as it was
    (AlreadyExists).  The others open a session."""
    client = await connect(srv=chunky, settings=replace(FAST, whole_create_max=1 << 20))
    path = f"/one-{uuid.uuid4().hex[:8]}"
    src, digest = local_file(3 * CHUNK, seed=41)
    chunky.faults.set(path_regex=r"/file/upload|/file/create$|/file/content$")  # counted, not failed
    entry = await client.upload(path, src, mtime_ns=1_600_000_000_123_456_789, tag="t1")
    made_by = chunky.faults.stats()["matched"]
    chunky.faults.clear()
    assert await remote_sha256(client, path) == digest
    after = await client.stat(path)
    assert entry.file_id == after.file_id
    unit = 1_000_000_000 if dialect == "koodrive" else 1_000_000  # v3: to the ms; KooDrive: whole seconds
    assert (stored_mtime_ns(after) or after.mtime_ns) // unit == 1_600_000_000_123_456_789 // unit
    if dialect == "v4":
        assert made_by == 1
        assert stored_mtime_ns(after) == 1_600_000_000_123_456_789 and after.metadata[UPLOAD_TAG_KEY] == "t1"
    other, _ = local_file(100, seed=42)
    with pytest.raises(AlreadyExists):
        await client.upload(path, other)
    assert await remote_sha256(client, path) == digest and (await client.stat(path)).version == after.version


#: requests to the server of one small upload with an exact time: (a new file, a replace)
SMALL_UPLOAD_REQUESTS = {
    # PUT /file/content, then PATCH /file/metadata (the time, bound to the new version, and the
    # tag): Cloudreve 4 has no request that takes content and metadata at once (PUT /file/content
    # takes uri and previous only, and sets the time to now; an upload session takes a time to
    # the ms and metadata, but is two requests too: its creation and its one chunk)
    "v4": (2, 2),
    # a session, its chunk, the folder's listing (the chunk's answer has no id); a replace
    # uploads beside the file, then lists both, deletes the old one and renames the new one in
    "v3": (3, 6),
    # files/create, the part's PUT, files/complete (the entry is known from what was sent and
    # answered); a replace uploads beside the file and swaps: the detail of the file replaced
    # (is it still the one?), the old one to the recycle bin (a job, polled: done at the third
    # poll on the emulator), the rename (the entry is the upload's, renamed)
    "koodrive": (3, 9),
}


async def test_the_requests_of_a_small_upload_with_an_exact_time(connect, chunky, local_file, dialect):
    """Counted, per backend, with the time and the content checked: the
    request count of the path every small file of ``tar x``, ``git clone``
    and ``rsync -a`` takes (they share the event loop with FUSE)."""
    client = await connect(srv=chunky, settings=replace(FAST, whole_create_max=1 << 20))
    path = f"/counted-{uuid.uuid4().hex[:8]}"
    first, _ = local_file(3000, seed=61)
    second, digest = local_file(4000, seed=62)
    stamp = 1_600_000_000_123_456_789
    # what a client learns once (v3: the storage policy); other content (KooDrive knows content it has)
    await client.upload(f"{path}-warm", local_file(2000, seed=63)[0])
    chunky.faults.clear()
    chunky.faults.set()  # every request counted, none failed
    made = await client.upload(path, first, mtime_ns=stamp, tag="c1")
    new_requests = chunky.faults.stats()["matched"]
    replaced = await client.upload(path, second, mtime_ns=stamp + 1_000_000_000, replace=made, tag="c2")
    replace_requests = chunky.faults.stats()["matched"] - new_requests
    chunky.faults.clear()
    assert (new_requests, replace_requests) == SMALL_UPLOAD_REQUESTS[dialect]
    assert await remote_sha256(client, path) == digest
    after = await client.stat(path)
    assert after.version == replaced.version and after.size == 4000
    unit = 1_000_000_000 if dialect == "koodrive" else 1_000_000  # v3: to the ms; KooDrive: whole seconds
    if dialect == "v4":
        assert stored_mtime_ns(after) == stamp + 1_000_000_000  # exact, and the next mount sees it too
    else:  # (this client's overlay shows the exact time; the server keeps what its own times hold)
        assert (stored_mtime_ns(after) or after.mtime_ns) // unit == (stamp + 1_000_000_000) // unit


@pytest.mark.parametrize("piece", [CHUNK, 2 * CHUNK], ids=["in-loop", "in-thread"])
async def test_ranges_filled_one_after_another_share_one_connection(cclient, local_file, tmp_path, piece):
    """libcurl keeps a connection alive for the next range only when the
    range's body was taken to its end: a write callback that said "stop" on
    the last byte cost a new connection per range (a cold random read paid
    the connect and the server's accept each time).  Small ranges are
    received by the event loop (curl_loop), larger ones in worker threads:
    each keeps its connection."""
    size = 8 * CHUNK
    src, _ = local_file(size, seed=31)
    data = src.read_bytes()
    entry = await cclient.upload(f"/keep-{uuid.uuid4().hex[:8]}", src)
    fd = os.open(tmp_path / "fill", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        before = cclient._debug_state()["download_connections"]
        spans = [(5 * CHUNK, piece), (CHUNK, 4096), (6 * CHUNK + 11, piece - 11), (0, 1), (3 * CHUNK, piece)]
        for off, length in spans:
            await cclient.fill(entry, off, length, fd)
            assert os.pread(fd, length, off) == data[off:off + length]
        # the in-thread case: the ranges of 4096 and 1 byte take the other path's one connection
        assert cclient._debug_state()["download_connections"] - before == (1 if piece == CHUNK else 2)
    finally:
        os.close(fd)


async def test_fill_tells_progress_per_mib_and_only_of_bytes_in_the_file(cclient, local_file, tmp_path):
    """A range filled in a worker thread tells its progress as it lands:
    once per MiB (not once per write: each report wakes the event loop),
    always of bytes already in the file, and its end last."""
    from cloudfs.client.curl import REPORT_EVERY

    size = 3 * REPORT_EVERY + 12345
    src, _ = local_file(size, seed=32)
    data = src.read_bytes()
    entry = await cclient.upload(f"/progress-{uuid.uuid4().hex[:8]}", src)
    fd = os.open(tmp_path / "fill", os.O_RDWR | os.O_CREAT, 0o600)
    off = 777
    told: list[int] = []

    def progress(upto: int) -> None:
        assert os.pread(fd, upto - off, off) == data[off:upto]  # in the file when told
        told.append(upto)

    try:
        await cclient.fill(entry, off, size - off, fd, progress)
        assert os.pread(fd, size - off, off) == data[off:]
    finally:
        os.close(fd)
    assert told == sorted(told) and (not told or told[-1] <= size)
    # one report per MiB crossed before the end (the end itself is told by fill returning)
    assert 1 <= len(told) <= (size - off) // REPORT_EVERY
    assert all(b - a >= REPORT_EVERY // 2 for a, b in zip([off, *told], told))
