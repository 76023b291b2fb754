"""Fault injection against the real server: 5xx, latency, dropped
connections (mid-download, mid-chunk, lost answers of non-idempotent calls),
forced token expiry, low capacity, a dead server.  Every test checks the
outcome and that stored content is intact (sha256)."""

from __future__ import annotations

import errno
import os
import uuid
from dataclasses import replace
from hashlib import sha256 as sha

import pytest
import trio

from cloudfs.client.models import UPLOAD_TAG_KEY, stored_mtime_ns
from cloudfs.errors import (
    CloudfsError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from cloudfs.client.cloudreve_codes import CloudreveError

from .conftest import FAST, remote_sha256

ON_KOODRIVE = True

CHUNK = 128 << 10
#: KooDrive's parts are the server's, 5 MiB at least (whatever ``chunk_size``)
KOODRIVE_PART = 5 << 20

#: the server paths (fault regexes) of each client call, per dialect
ROUTES = {
    "v4": {
        "stat": r"/file/info$", "capacity": r"/user/capacity$", "mkdir": r"/file/create$",
        "rename": r"/file/rename$", "move": r"/file/move$", "delete": r"/api/v4/file$",
        "content": r"/api/v4/file/content/", "chunk": r"/api/v4/file/upload/[^/]+/{n}$",
        "session": r"/api/v4/file/upload$",
    },
    "v3": {
        # a stat lists the parent folder; mkdir is PUT /directory; delete and move share /object
        "stat": r"/api/v3/directory/", "capacity": r"/user/storage$", "mkdir": r"/api/v3/directory$",
        "rename": r"/object/rename$", "move": r"/api/v3/object$", "delete": r"/api/v3/object$",
        # content keys are 16 characters (signing, PUT /file/download/<hashid>, is not)
        "content": r"/api/v3/file/download/[A-Za-z0-9]{{16}}$", "chunk": r"/api/v3/file/upload/[^/]+/{n}$",
        "session": r"/api/v3/file/upload$",
    },
    "koodrive": {
        # a stat of a known id is its detail, else a listing of the parent; df falls back to GetSpace
        "stat": r"/files/([^/]+/detail|0)$", "capacity": r"/space/(usage/user|[^/]+)$",
        "mkdir": r"/koodrive/ose/v1/directory$", "rename": r"/files/rename/", "move": r"/koodrive/ose/v1/jobs$",
        "delete": r"/koodrive/ose/v1/jobs$", "content": r"/obs/koodrive-emulator/",
        # parts are numbered from 1 (``route`` turns a chunk index into a part number)
        "chunk": r"/obs/upload/[^/]+/{n}$", "session": r"/files/create$",
    },
}


@pytest.fixture
def route(dialect):
    """``route("stat")``: the fault regex of a call; ``route("chunk", n=2)`` for one chunk index."""

    def _route(call: str, n: str | int = r"\d+") -> str:
        if dialect == "koodrive" and isinstance(n, int):
            n += 1
        return ROUTES[dialect][call].format(n=n)

    return _route


def name(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def chunky(tmp_path_factory, dialect):
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("chunky-faults"), chunk_size=CHUNK, dialect=dialect) as srv:
        yield srv


@pytest.fixture(scope="module")
def part(dialect) -> int:
    """The size of one upload chunk (part) on the ``chunky`` server."""
    return KOODRIVE_PART if dialect == "koodrive" else CHUNK


@pytest.fixture(autouse=True)
def _clear_chunky_faults(request):
    yield
    if "chunky" in request.fixturenames:
        request.getfixturevalue("chunky").faults.clear()


@pytest.fixture
async def cclient(connect, chunky):
    return await connect(srv=chunky)


# ---- metadata calls ----------------------------------------------------------------------
async def test_5xx_is_retried(client, server, folder, route):
    server.faults.set(error_rate=1.0, error_status=503, path_regex=route("stat"), count=3)
    entry = await client.stat(folder)
    assert entry.is_dir
    assert server.faults.stats()["error"] == 3


async def test_persistent_5xx_gives_eio_within_deadline(connect, server, folder, route):
    client = await connect(settings=replace(FAST, max_attempts=3, deadline_s=5.0))
    server.faults.set(error_rate=1.0, error_status=502, path_regex=route("stat"))
    start = trio.current_time()
    with pytest.raises(ServerError) as info:
        await client.stat(folder)
    assert info.value.errno == errno.EIO and info.value.status == 502
    assert trio.current_time() - start < 5.0
    assert server.faults.stats()["error"] == 3  # max_attempts


async def test_slow_server_times_out(connect, server, folder, route):
    client = await connect(settings=replace(FAST, request_timeout_s=0.3, deadline_s=1.5))
    server.faults.set(latency_s=5.0, path_regex=route("stat"))
    start = trio.current_time()
    with pytest.raises(RequestTimeout) as info:
        await client.stat(folder)
    assert info.value.errno == errno.ETIMEDOUT
    assert trio.current_time() - start < 2.0


async def test_one_slow_answer_is_retried(connect, server, folder, route):
    client = await connect(settings=replace(FAST, request_timeout_s=0.5, deadline_s=5.0))
    server.faults.set(latency_s=2.0, path_regex=route("stat"), count=1)
    assert (await client.stat(folder)).is_dir


async def test_truncated_api_answer_is_retried(client, server, route):
    server.faults.set(drop_rate=1.0, drop_after_bytes=10, drop_target="response", path_regex=route("capacity"),
                      count=2)
    cap = await client.capacity()
    assert cap.total > 0
    assert server.faults.stats()["drop_response"] == 2


async def test_always_truncated_answer_is_eio(connect, server, route):
    client = await connect(settings=replace(FAST, max_attempts=2))
    server.faults.set(drop_rate=1.0, drop_after_bytes=5, drop_target="response", path_regex=route("capacity"))
    with pytest.raises(CloudfsError) as info:
        await client.capacity()
    assert info.value.errno == errno.EIO


async def test_non_json_answer_is_retried_then_protocol_error(connect, server, route):
    """HTTP 200 with a body that is not a Cloudreve envelope (a captive
    portal, a misconfigured proxy): ProtocolError (EIO), never a crash."""
    from cloudfs.errors import ProtocolError

    client = await connect(settings=replace(FAST, max_attempts=3))
    server.faults.set(error_rate=1.0, error_status=200, path_regex=route("capacity"), count=2)
    assert (await client.capacity()).total > 0  # two garbled answers, then a good one
    server.faults.set(error_rate=1.0, error_status=200, path_regex=route("capacity"))
    with pytest.raises(ProtocolError) as info:
        await client.capacity()
    assert info.value.errno == errno.EIO and "not JSON" in str(info.value)


async def test_non_content_download_answer_is_retried(cclient, chunky, local_file, route, download):
    src, digest = local_file(300_000, seed=15)
    entry = await cclient.upload(name("dl-garbled"), src)
    # 200 without an ETag and without an envelope: not content
    chunky.faults.set(error_rate=1.0, error_status=200, path_regex=route("content"), count=2)
    assert await fetched_sha256(cclient, entry.path, download) == digest


async def test_lost_mkdir_answer_is_reconciled(client, server, folder, route):
    server.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("mkdir"), count=1)
    entry = await client.mkdir(f"{folder}/made")  # created by the first try, answer lost
    assert entry.is_dir and entry.path == f"{folder}/made"
    assert server.faults.stats()["drop_response"] == 1
    with pytest.raises(CloudfsError) as info:  # a genuine clash still is EEXIST
        await client.mkdir(f"{folder}/made")
    assert info.value.errno == errno.EEXIST


async def test_lost_rename_and_move_and_delete_answers(client, server, folder, route):
    await client.create_file(f"{folder}/a")
    await client.mkdir(f"{folder}/d")
    server.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("rename"), count=1)
    renamed = await client.rename(f"{folder}/a", "b")
    assert renamed.path == f"{folder}/b"
    server.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("move"), count=1)
    await client.move([f"{folder}/b"], f"{folder}/d")
    assert (await client.stat(f"{folder}/d/b")).file_id == renamed.file_id
    server.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("delete"), count=1)
    await client.delete([f"{folder}/d"])
    with pytest.raises(CloudfsError) as info:
        await client.stat(f"{folder}/d")
    assert info.value.errno == errno.ENOENT
    assert server.faults.stats()["drop_response"] == 3


async def test_dead_server_fails_within_deadline(connect, fresh_server):
    client = await connect(srv=fresh_server, settings=replace(FAST, deadline_s=2.0, request_timeout_s=1.0))
    await client.stat("/")
    fresh_server.kill()
    start = trio.current_time()
    with pytest.raises(TransportError) as info:
        await client.stat("/")
    assert trio.current_time() - start < 2.5
    assert info.value.errno in (errno.EIO, errno.ETIMEDOUT)
    fresh_server.restart()
    assert (await client.stat("/")).is_dir  # the pool reconnects


# ---- downloads ------------------------------------------------------------------------------
# Each download test runs on both paths: ``stream`` (httpx, the bytes through
# Python) and ``fill`` (libcurl in a worker thread, the bytes written straight
# into a file at their offsets, as the mount's block cache takes them).
@pytest.fixture(params=["stream", "fill"])
def download(request, tmp_path):
    async def fetch(client, entry):
        if request.param == "stream":
            return await client.read(entry, 0, entry.size)
        target = tmp_path / f"fill-{uuid.uuid4().hex[:8]}"
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await client.fill(entry, 0, entry.size, fd)
            return os.pread(fd, entry.size + 1, 0)
        finally:
            os.close(fd)

    return fetch


async def fetched_sha256(client, path, download) -> str:
    entry = await client.stat(path)
    return sha(await download(client, entry)).hexdigest()


async def test_download_survives_dropped_connections(cclient, chunky, local_file, route, download):
    src, digest = local_file(3 << 20, seed=11)
    entry = await cclient.upload(name("dl-drop"), src)
    chunky.faults.set(drop_rate=1.0, drop_after_bytes=300_000, path_regex=route("content"), count=3)
    data = await download(cclient, entry)
    assert len(data) == entry.size
    assert sha(data).hexdigest() == digest
    assert chunky.faults.stats()["drop_response"] == 3


async def test_download_survives_5xx(cclient, chunky, local_file, route, download):
    src, digest = local_file(500_000, seed=12)
    entry = await cclient.upload(name("dl-5xx"), src)
    chunky.faults.set(error_rate=1.0, error_status=500, path_regex=route("content"), count=2)
    assert await fetched_sha256(cclient, entry.path, download) == digest


async def test_download_resumes_through_many_cuts(cclient, chunky, local_file, route, download):
    src, digest = local_file(400_000, seed=14)
    entry = await cclient.upload(name("dl-cuts"), src)
    chunky.faults.set(drop_rate=1.0, drop_after_bytes=50_000, path_regex=route("content"))
    # every answer is cut, but each brings 50 000 more bytes: the read resumes to the end
    assert await fetched_sha256(cclient, entry.path, download) == digest
    assert chunky.faults.stats()["drop_response"] >= 7


async def test_download_gives_up_without_progress(connect, chunky, local_file, route, download):
    client = await connect(srv=chunky, settings=replace(FAST, max_attempts=3))
    src, _ = local_file(400_000, seed=13)
    entry = await client.upload(name("dl-dead"), src)
    chunky.faults.set(drop_rate=1.0, drop_after_bytes=0, path_regex=route("content"))
    with pytest.raises(TransportError) as info:
        await download(client, entry)
    assert info.value.errno == errno.EIO
    assert chunky.faults.stats()["drop_response"] == 3


async def test_expired_url_is_renewed(connect, tmp_path_factory, local_file, dialect, download):
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("url-ttl"), extra_args=["--url-ttl", "2"], dialect=dialect) as srv:
        client = await connect(srv=srv)
        src, digest = local_file(200_000)
        entry = await client.upload(name("url"), src)
        assert await fetched_sha256(client, entry.path, download) == digest
        signed = client._debug_state()["urls_signed"]
        await trio.sleep(2.1)
        assert await fetched_sha256(client, entry.path, download) == digest
        assert client._debug_state()["urls_signed"] == signed + 1


@pytest.mark.parametrize("size", [100_000, 1_000_000], ids=["in-loop", "in-thread"])
async def test_cancelled_fill_ends_at_once_and_the_next_one_works(cclient, chunky, local_file, route, tmp_path,
                                                                   size):
    """A fill whose reader gives up (a cancelled FUSE read, an unmount)
    ends at once, whether the event loop or a worker thread receives it,
    and the client downloads on afterwards."""
    src, _ = local_file(size, seed=17)
    data = src.read_bytes()
    entry = await cclient.upload(name("dl-cancel"), src)
    fd = os.open(tmp_path / "fill", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        chunky.faults.set(latency_s=3.0, path_regex=route("content"), count=1)
        start = trio.current_time()
        with trio.move_on_after(0.3) as scope:
            await cclient.fill(entry, 0, size, fd)
        assert scope.cancelled_caught
        assert trio.current_time() - start < 1.5
        await cclient.fill(entry, 0, size, fd)
        assert os.pread(fd, size + 1, 0) == data
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [100_000, 1_000_000], ids=["in-loop", "in-thread"])
async def test_fill_from_a_silent_server_times_out(connect, chunky, local_file, route, tmp_path, size):
    client = await connect(srv=chunky, settings=replace(FAST, request_timeout_s=1.0, deadline_s=2.0,
                                                        max_attempts=2))
    src, _ = local_file(size, seed=18)
    entry = await client.upload(name("dl-silent"), src)
    fd = os.open(tmp_path / "fill", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await client.fill(entry, 0, 1, fd)  # the URL is signed: only the content waits
        chunky.faults.set(latency_s=30.0, path_regex=route("content"))
        start = trio.current_time()
        with pytest.raises(CloudfsError) as info:
            await client.fill(entry, 0, size, fd)
        assert info.value.errno in (errno.ETIMEDOUT, errno.EIO)
        assert trio.current_time() - start < 4.0
    finally:
        os.close(fd)


# ---- uploads ----------------------------------------------------------------------------------
async def test_upload_survives_dropped_chunks(cclient, chunky, local_file, route, part):
    src, digest = local_file(6 * part + 77, seed=21)
    chunky.faults.set(drop_rate=1.0, drop_after_bytes=50_000, path_regex=route("chunk"), count=3)
    entry = await cclient.upload(name("up-drop"), src)
    assert entry.size == 6 * part + 77
    assert await remote_sha256(cclient, entry.path) == digest
    assert chunky.faults.stats()["drop_request"] == 3


async def test_upload_survives_lost_chunk_answers(cclient, chunky, local_file, route, part):
    """The chunk was stored but its answer lost: re-sending it is safe, even
    for the last, completing chunk."""
    src, digest = local_file(3 * part + 5, seed=22)
    path = name("up-lost")
    chunky.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("chunk", 3),
                      count=1)
    entry = await cclient.upload(path, src)
    assert entry.size == 3 * part + 5 and not entry.uploading
    assert await remote_sha256(cclient, path) == digest


async def test_lost_session_answer_is_cleaned_up(cclient, chunky, local_file, route, part):
    src, digest = local_file(2 * part, seed=23)
    chunky.faults.set(drop_rate=1.0, drop_target="response", path_regex=route("session"), count=1)
    entry = await cclient.upload(name("up-session"), src)
    assert await remote_sha256(cclient, entry.path) == digest


async def test_upload_survives_5xx_chunks(cclient, chunky, local_file, route, part):
    src, digest = local_file(4 * part + 1, seed=24)
    chunky.faults.set(error_rate=0.5, error_status=503, path_regex=route("chunk"), seed=7, count=8)
    entry = await cclient.upload(name("up-5xx"), src)
    assert await remote_sha256(cclient, entry.path) == digest


async def test_token_expiry_mid_upload(cclient, chunky, local_file, part):
    src, digest = local_file(5 * part, seed=25)
    expired = []

    def progress(n: int) -> None:
        if not expired:
            chunky.faults.expire_tokens()
            expired.append(n)

    entry = await cclient.upload(name("up-token"), src, progress=progress)
    assert expired and cclient._debug_state()["token_renewals"] >= 1
    assert await remote_sha256(cclient, entry.path) == digest


@pytest.mark.parametrize("landing", ["session", "one-request"])
async def test_failed_overwrite_keeps_old_content(connect, chunky, local_file, route, dialect, landing, part):
    # by session, or (Cloudreve 4, a small file) by the one request PUT /file/content
    if landing == "one-request" and dialect != "v4":
        pytest.skip(f"no safe one-request overwrite on {dialect}: sessions only")
    whole_max = 0 if landing == "session" else 16 * part
    client = await connect(srv=chunky, settings=replace(FAST, max_attempts=2, whole_upload_max=whole_max))
    path = name("keep")
    v1_src, v1 = local_file(3 * part + 3, seed=31)
    v2_src, _ = local_file(4 * part, seed=32)
    old = await client.upload(path, v1_src)
    failing = route("chunk", 2) if landing == "session" else r"/api/v4/file/content$"
    chunky.faults.set(error_rate=1.0, error_status=500, path_regex=failing)
    with pytest.raises(ServerError):
        await client.upload(path, v2_src, replace=old)
    chunky.faults.clear()
    now = await client.stat(path)
    assert now.version == old.version and now.size == old.size and not now.uploading
    assert await remote_sha256(client, path) == v1
    # the cancelled session released the lock: a new overwrite works
    assert (await client.upload(path, v2_src, replace=now)).size == 4 * part


async def test_one_request_overwrite_keeps_time_and_tag_and_refuses_a_stale_base(connect, chunky, local_file,
                                                                                 dialect):
    if dialect != "v4":
        pytest.skip(f"no safe one-request overwrite on {dialect}: sessions only")
    client = await connect(srv=chunky, settings=FAST)
    path = name("one-request")
    v1_src, _ = local_file(3 * CHUNK + 3, seed=34)
    v2_src, v2 = local_file(2 * CHUNK, seed=35)
    old = await client.upload(path, v1_src)
    new = await client.upload(path, v2_src, replace=old, mtime_ns=1_234_567_891_234_567_891, tag="t9")
    assert new.size == 2 * CHUNK and new.version != old.version
    assert await remote_sha256(client, path) == v2
    # the time and tag went up with it (the request itself takes neither)
    after = await client.stat(path)
    assert stored_mtime_ns(after) == 1_234_567_891_234_567_891 and after.metadata[UPLOAD_TAG_KEY] == "t9"
    # an overwrite based on a version that is no longer current is refused as stale
    with pytest.raises(CloudreveError) as stale:
        await client.upload(path, v1_src, replace=old)
    assert stale.value.code == 40076


async def test_failed_new_upload_leaves_no_placeholder(connect, chunky, local_file, route, part):
    client = await connect(srv=chunky, settings=replace(FAST, max_attempts=2))
    path = name("gone")
    src, _ = local_file(3 * part, seed=33)
    before = await client.capacity()
    chunky.faults.set(drop_rate=1.0, drop_after_bytes=10, path_regex=route("chunk", 1))
    with pytest.raises(TransportError):
        await client.upload(path, src)
    chunky.faults.clear()
    with pytest.raises(CloudfsError) as info:
        await client.stat(path)
    assert info.value.errno == errno.ENOENT
    assert (await client.capacity()).used == before.used  # reservation refunded


async def test_low_capacity(cclient, chunky, local_file, part, dialect):
    path = name("full")
    small_src, small = local_file(1000, seed=41)
    big_src, _ = local_file(2 * part, seed=42)
    old = await cclient.upload(path, small_src)
    cap = await cclient.capacity()
    chunky.faults.set_capacity(cap.used + 10_000)
    with pytest.raises(CloudfsError) as info:
        await cclient.upload(name("new-full"), big_src)
    assert info.value.errno == errno.ENOSPC
    if dialect != "koodrive":
        assert isinstance(info.value, CloudreveError) and info.value.code == 40051
    with pytest.raises(CloudfsError) as info:
        await cclient.upload(path, big_src, replace=old)
    assert info.value.errno == errno.ENOSPC
    chunky.faults.set_capacity(None)
    assert (await cclient.stat(path)).version == old.version
    assert await remote_sha256(cclient, path) == small


@pytest.mark.cloudreve_only("upload sessions that expire (40011, restart); a KooDrive upload task has no "
                            "documented lifetime, its part URLs do: test_expired_part_url_is_renewed")
async def test_expired_session_restarts_upload(connect, tmp_path_factory, local_file, dialect, route):
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("short-session"), chunk_size=CHUNK, dialect=dialect,
                      extra_args=["--upload-session-ttl", "1.5"]) as srv:
        client = await connect(srv=srv)
        src, digest = local_file(3 * CHUNK, seed=51)
        # the second chunk arrives after the session expired: 40011, restart
        srv.faults.set(latency_s=2.0, path_regex=route("chunk", 1), count=1)
        seen: list[int] = []
        entry = await client.upload(name("restart"), src, progress=seen.append)
        assert await remote_sha256(client, entry.path) == digest
        assert sum(seen) == 3 * CHUNK  # progress counts each chunk once


async def test_expired_part_url_is_renewed(connect, tmp_path_factory, local_file, dialect):
    """KooDrive: a part URL that expired while earlier parts went up is
    refused by the object store (403) and renewed through
    ``files/multipart/uploadUrl``; the upload goes on (Cloudreve's
    counterpart: test_expired_session_restarts_upload)."""
    if dialect != "koodrive":
        pytest.skip("KooDrive's pre-signed part URLs")
    from cloudfs.server.testing import start_server

    with start_server(tmp_path_factory.mktemp("short-part-urls"), dialect=dialect,
                      extra_args=["--kd-switch", "upload_url_ttl=2"]) as srv:
        client = await connect(srv=srv)
        src, digest = local_file(2 * KOODRIVE_PART + 3, seed=52)
        # the first part's answer comes after the other parts' URLs ended
        srv.faults.set(reply_delay_s=2.5, path_regex=r"/obs/upload/[^/]+/1$", count=1)
        seen: list[int] = []
        entry = await client.upload(name("part-url"), src, progress=seen.append)
        assert await remote_sha256(client, entry.path) == digest
        assert sum(seen) == 2 * KOODRIVE_PART + 3
