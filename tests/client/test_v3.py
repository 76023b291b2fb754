"""What only Cloudreve 3 does, against the real server in its v3 dialect:
cookie sessions kept in the token store, replacing a file = upload to a
temporary name then swap (a new id), strictly ordered chunks, no metadata,
``/user/storage``."""

from __future__ import annotations

import errno
import json
import re
import uuid
from dataclasses import replace

import pytest
import trio

from cloudfs.client.v3_shapes import COOKIE_NAME, cookie_from, is_temp_name
from cloudfs.errors import AuthenticationError, CloudfsError, TransportError
from cloudfs.server.testing import start_server

from .conftest import FAST, remote_sha256

CHUNK = 64 << 10


@pytest.fixture(scope="module")
def dialect() -> str:
    """This module is about v3 only (overrides the two-dialect parameter)."""
    return "v3"


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    """A v3 server with small chunks and an access log (to see chunk order)."""
    with start_server(tmp_path_factory.mktemp("v3"), dialect="v3", chunk_size=CHUNK,
                      extra_args=["--access-log"]) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clear_v3_faults(request):
    yield
    if "v3" in request.fixturenames:
        request.getfixturevalue("v3").faults.clear()


def name(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


# ---- the session cookie ---------------------------------------------------------------------
async def test_cookie_is_stored_never_the_password(connect, v3, token_store):
    client = await connect(srv=v3)
    assert client.info.dialect == "v3" and client.info.version.startswith("3.")
    raw = token_store.path.read_text()
    assert v3.password not in raw
    (record,) = json.loads(raw)["logins"].values()
    assert record["session_cookie"] and record["refresh_token"] == ""
    assert record["session_cookie"] == client._http.auth.cookie.value
    assert record["session_expires"] > record["saved_at"]


async def test_restarted_client_resumes_the_stored_cookie(connect, v3, token_store):
    first = await connect(srv=v3)
    await first.mkdir(name("resume"))
    # no password, not even the email: the stored session is enough
    resumed = await connect(srv=v3, email="", password="")
    assert (await resumed.stat("/")).is_dir
    # resuming re-issued the cookie (a fresh signature) and stored the new one
    stored = token_store.load(v3.url, v3.email)
    assert stored.session_cookie == resumed._http.auth.cookie.value


async def test_ended_session_falls_back_to_password(connect, v3, token_store):
    await connect(srv=v3)
    v3.faults.expire_tokens()  # v3: every login session ends
    with pytest.raises(AuthenticationError):
        await connect(srv=v3, email="", password="")
    client = await connect(srv=v3)  # with the password: a new session, stored
    assert (await client.stat("/")).is_dir
    # a live client whose session ends logs in again with its password
    v3.faults.expire_tokens()
    assert (await client.stat("/")).is_dir
    assert client._debug_state()["token_renewals"] == 1


async def test_logout_ends_the_session(connect, v3):
    client = await connect(srv=v3)
    await client.logout()
    with pytest.raises(AuthenticationError):
        await connect(srv=v3, email="", password="")


def test_cookie_parsing():
    now = 1000.0
    cookie = cookie_from(["other=x; Path=/", f"{COOKIE_NAME}=abc%3D; Path=/; Max-Age=5184000; HttpOnly"], now)
    assert cookie is not None and cookie.value == "abc%3D" and cookie.header == f"{COOKIE_NAME}=abc%3D"
    # the server keeps the session 60 days but refuses a cookie signed over 30 days ago
    assert cookie.expires_at == now + 30 * 86400
    assert cookie_from([f"{COOKIE_NAME}=; Max-Age=0"], now) is None
    assert cookie_from(["unrelated=1"], now) is None


# ---- uploads --------------------------------------------------------------------------------
async def test_chunks_go_in_order_one_at_a_time(connect, v3, local_file):
    client = await connect(srv=v3, settings=replace(FAST, upload_parallelism=8))
    src, digest = local_file(7 * CHUNK + 3, seed=1)
    entry = await client.upload(name("order"), src)
    assert await remote_sha256(client, entry.path) == digest
    pattern = re.compile(r"POST /api/v3/file/upload/([^/ ]+)/(\d+)")
    sessions: dict[str, list[int]] = {}
    for m in map(pattern.search, v3.stderr().splitlines()):
        if m:
            sessions.setdefault(m.group(1), []).append(int(m.group(2)))
    assert list(range(8)) in sessions.values()


async def test_uploads_landing_at_once_in_one_folder_share_its_listing(connect, v3, local_file):
    """Cloudreve 3's completing chunk answers nothing: an upload learns its
    new file's id from the folder's listing.  Uploads landing at about the
    same time in one folder (``tar x``: several at once) share a listing
    sent after all of them landed, not one each (a folder of n new files
    was listed n times, n² entries).  Each still gets its own file, with the
    time it asked for."""
    client = await connect(srv=v3)
    folder = name("landing")
    await client.mkdir(folder)
    sources = [local_file(100 + i, seed=50 + i)[0] for i in range(6)]
    await client.upload(f"{folder}/first", sources[0])  # (the storage policy is known from here on)
    stamp = 1_600_000_000_000_000_000
    v3.faults.set(latency_s=0.5, path_regex=r"/api/v3/directory/")  # slow listings: the landings meet
    landed = {}
    async with trio.open_nursery() as nursery:
        for i, src in enumerate(sources):
            async def upload(i: int = i, src=src) -> None:
                landed[i] = await client.upload(f"{folder}/f{i}", src, mtime_ns=stamp + i * 1_000_000_000)
            nursery.start_soon(upload)
    listings = v3.faults.stats()["matched"]
    v3.faults.clear()
    assert listings <= 2, f"{listings} listings of the folder for 6 uploads"
    assert [landed[i].path for i in range(6)] == [f"{folder}/f{i}" for i in range(6)]
    assert [landed[i].size for i in range(6)] == [100 + i for i in range(6)]
    assert [landed[i].mtime_ns for i in range(6)] == [stamp + i * 1_000_000_000 for i in range(6)]
    assert len({landed[i].file_id for i in range(6)}) == 6


async def test_replace_gives_a_new_id(connect, v3, local_file):
    client = await connect(srv=v3)
    path = name("replace")
    v1_src, _ = local_file(3 * CHUNK + 1, seed=2)
    v2_src, v2 = local_file(2 * CHUNK + 7, seed=3)
    first = await client.upload(path, v1_src)
    with pytest.raises(CloudfsError) as info:
        await client.upload(path, v2_src)  # replace=None: must not exist
    assert info.value.errno == errno.EEXIST
    second = await client.upload(path, v2_src, replace=first)
    assert second.path == path and second.file_id != first.file_id and second.version != first.version
    assert second.size == 2 * CHUNK + 7
    assert await remote_sha256(client, path) == v2
    # the temporary name is gone, the old file too: one object of that name
    _, children = await client.list_all("/")
    assert [c.file_id for c in children if c.path == path] == [second.file_id]
    assert not any(is_temp_name(c.name) for c in children)
    # replacing an entry that is no longer there (someone replaced it): ESTALE, content untouched
    with pytest.raises(CloudfsError) as info:
        await client.upload(path, v1_src, replace=first)
    assert info.value.errno == errno.ESTALE
    assert await remote_sha256(client, path) == v2


async def test_failed_replace_keeps_the_old_file(connect, v3, local_file):
    client = await connect(srv=v3, settings=replace(FAST, max_attempts=2))
    path = name("keep")
    v1_src, v1 = local_file(2 * CHUNK, seed=4)
    v2_src, _ = local_file(4 * CHUNK, seed=5)
    old = await client.upload(path, v1_src)
    used = (await client.capacity()).used
    v3.faults.set(error_rate=1.0, error_status=500, path_regex=r"/api/v3/file/upload/[^/]+/2$")
    with pytest.raises(CloudfsError):
        await client.upload(path, v2_src, replace=old)
    v3.faults.clear()
    now = await client.stat(path)
    assert now.file_id == old.file_id and now.version == old.version
    assert await remote_sha256(client, path) == v1
    assert (await client.capacity()).used == used  # the temporary upload was cancelled


async def test_every_swap_whose_rename_failed_is_cleaned_up_by_the_next(connect, v3, local_file):
    """Two replaces in a row whose rename into place fails leave two copies
    at temporary names (hidden, but counted against the quota); the next
    replace that lands deletes both (client/replace.py keeps every stranded
    upload of a target, not only the last)."""
    client = await connect(srv=v3, settings=replace(FAST, max_attempts=2))
    path = name("strand")
    before = (await client.capacity()).used
    v1_src, _ = local_file(CHUNK, seed=10)
    first = await client.upload(path, v1_src)
    v3.faults.set(error_rate=1.0, error_status=500, path_regex=r"/api/v3/object/rename$")
    for seed in (11, 12):
        src, _ = local_file(CHUNK + seed, seed=seed)
        with pytest.raises(CloudfsError):
            await client.upload(path, src, replace=first)
    v3.faults.clear()
    assert (await client.capacity()).used == before + 2 * CHUNK + 11 + 12  # both stranded copies
    # the folder's listings (a rule that only counts): a replace with nothing
    # stranded, then this one, whose one more listing finds both copies
    other = await client.upload(name("other"), v1_src)
    v3.faults.set(path_regex=r"^/api/v3/directory")
    await client.upload(other.path, v1_src, replace=other)
    clean = v3.faults.stats()["matched"]
    v4_src, v4 = local_file(CHUNK + 3, seed=13)
    placed = await client.upload(path, v4_src, replace=first)
    assert v3.faults.stats()["matched"] - clean == clean + 1
    v3.faults.clear()
    assert await remote_sha256(client, placed.path) == v4
    assert (await client.capacity()).used == before + CHUNK + 3 + CHUNK


async def test_the_next_run_deletes_a_version_a_killed_one_left_beside_its_file(connect, v3, local_file):
    """A run killed between a replacing upload's last chunk and its swap
    leaves the new version whole at a temporary name (hidden from our
    listings, not from the quota).  The journal keeps the session's
    reference, which names that file: the next run's cancel deletes it."""
    client = await connect(srv=v3, settings=replace(FAST, max_attempts=2))
    path = name("killed")
    v1_src, _ = local_file(2 * CHUNK, seed=14)
    v2_src, _ = local_file(3 * CHUNK, seed=15)
    old = await client.upload(path, v1_src)
    refs: list[str] = []

    async def record(ref: str) -> None:
        refs.append(ref)

    v3.faults.set(error_rate=1.0, error_status=500, path_regex=r"/api/v3/object/rename$")
    with pytest.raises(CloudfsError):
        await client.upload(path, v2_src, replace=old, on_session=record)
    v3.faults.clear()
    used = (await client.capacity()).used
    next_run = await connect(srv=v3)
    await next_run.cancel_upload(path, refs[-1])
    assert (await next_run.capacity()).used == used - 3 * CHUNK
    # a new file's session names no temporary file: its cancel leaves the file alone
    new = await next_run.upload(path, v1_src, on_session=record)
    await next_run.cancel_upload(path, refs[-1])
    assert (await next_run.stat(path)).file_id == new.file_id


async def test_an_upload_waits_for_the_cancel_of_its_unanswered_previous_session(connect, v3, local_file):
    """An upload failed and its session's cancel went unanswered: the next
    upload of the file cancels it first, and while that is still unanswered
    opens no session of its own (which would meet the old one's placeholder
    holding the name, as if another client had taken it): it fails as the
    server's absence does, and a later one goes through."""
    client = await connect(srv=v3, settings=replace(FAST, max_attempts=2))
    path = name("uncancelled")
    src, digest = local_file(3 * CHUNK, seed=21)
    v3.faults.set(error_rate=1.0, error_status=503, path_regex=r"/api/v3/file/upload/[^/]+(/\d+)?$")
    with pytest.raises(TransportError):
        await client.upload(path, src)  # its chunks and then its cancel unanswered
    with pytest.raises(TransportError):
        await client.upload(path, src)  # the old session's cancel still unanswered
    v3.faults.clear()
    entry = await client.upload(path, src)
    assert await remote_sha256(client, entry.path) == digest


async def test_lost_session_answer_of_a_new_file(connect, v3, local_file):
    """The placeholder left by a lost answer is hidden from listings and
    holds the name (40054): the client clears it and goes on."""
    client = await connect(srv=v3)
    src, digest = local_file(CHUNK + 5, seed=6)
    v3.faults.set(drop_rate=1.0, drop_target="response", path_regex=r"/api/v3/file/upload$", count=1)
    entry = await client.upload(name("lost"), src)
    assert await remote_sha256(client, entry.path) == digest


async def test_capacity_is_user_storage(connect, v3, local_file):
    client = await connect(srv=v3)
    before = await client.capacity()
    src, _ = local_file(100_000, seed=7)
    entry = await client.upload(name("cap"), src)
    after = await client.capacity()
    assert after.total == before.total and after.used == before.used + 100_000
    assert after.free == after.total - after.used
    await client.delete([entry.path])  # no recycle bin: freed at once
    assert (await client.capacity()).used == before.used


async def test_rename_and_move_keep_the_content_version(connect, v3, local_file):
    """3.8 sets a file's time to now on every rename and move, and the time
    is part of the content version (nothing else shows an edit in place):
    the client's own rename or move must not look like new content, while
    an edit by someone else afterwards still does."""
    client = await connect(srv=v3)
    top = name("version")
    await client.mkdir(top)
    await client.mkdir(f"{top}/sub")
    src, _ = local_file(CHUNK + 9, seed=8)
    first = await client.upload(f"{top}/a", src)
    renamed = await client.rename(first.path, "b")
    assert renamed.file_id == first.file_id and renamed.mtime_ns != first.mtime_ns
    assert renamed.version == first.version
    await client.move([renamed.path], f"{top}/sub")
    moved = await client.stat(f"{top}/sub/b")
    assert moved.version == first.version
    assert [c.version for c in (await client.list_all(f"{top}/sub"))[1]] == [first.version]
    # someone else writes new content of the same size in place (PUT /file/update)
    other = await connect(srv=v3)
    await other._dialect.api.call("PUT", f"/file/update/{moved.file_id}", idempotent=False,
                                  what="edit in place", content=b"x" * (CHUNK + 9))
    edited = await client.stat(moved.path)
    assert edited.file_id == first.file_id and edited.size == first.size
    assert edited.version != first.version
