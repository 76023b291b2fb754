"""The KooDrive backend against the KooDrive emulator (real HTTP): detection,
the carrier login and its stored refresh, the app signature, listing with
short pages, stat, mkdir, rename, move and delete jobs, uploads (new and
replacing: the id changes), ranged and whole-file reads, capacity."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
import trio

from cloudfs.client.api import CloudreveClient
from cloudfs.errors import AlreadyExists, CloudfsError, NotFound
from cloudfs.server.testing import RunningServer, start_server

from .conftest import FAST

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("kd"), faults=True, dialect="koodrive", capacity=1 << 30) as srv:
        yield srv


def switches(srv: RunningServer, **values: object) -> None:
    httpx.post(srv.url + "/_cloudfs/koodrive/switches", json=values).raise_for_status()


@pytest.fixture
async def kclient(kd, token_store):
    client = await CloudreveClient.connect(kd.url, email=kd.email, password=kd.password, token_store=token_store,
                                           settings=FAST)
    try:
        yield client
    finally:
        httpx.delete(kd.url + "/_cloudfs/koodrive/switches")
        await client.aclose()


async def test_detected_and_logged_in(kclient, kd, token_store):
    assert kclient.info.dialect == "koodrive"
    caps = kclient.capabilities
    assert caps.addressing == "id" and caps.replace_gives_new_id and not caps.overwrite_in_place
    root = await kclient.stat("/")
    assert root.is_dir
    # the stored carrier login (this backend's own shape) logs in without a password
    again = await CloudreveClient.connect(kd.url, token_store=token_store, settings=FAST, backend="koodrive")
    try:
        assert (await again.stat("/")).is_dir
    finally:
        await again.aclose()


async def test_cloudreve_backend_refuses_koodrive(kd):
    from cloudfs.errors import UnsupportedServer
    with pytest.raises(UnsupportedServer):
        await CloudreveClient.connect(kd.url, email=kd.email, password=kd.password, settings=FAST,
                                      backend="cloudreve")


async def test_app_key_signature(kd, kclient, monkeypatch):
    user_id = kclient._dialect.user_id
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_ID", "cloudfs-demo-app")
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_SECRET", "cloudfs-demo-app-secret")
    app = await CloudreveClient.connect(kd.url, email=user_id, settings=FAST)
    try:
        await app.mkdir("/app-made")
        assert (await kclient.stat("/app-made")).is_dir
    finally:
        await app.aclose()
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_SECRET", "wrong")
    with pytest.raises(CloudfsError):
        await CloudreveClient.connect(kd.url, email=user_id, settings=FAST)


async def test_mkdir_list_short_pages_stat(kclient, kd):
    await kclient.mkdir("/many")
    for i in range(25):
        await kclient.create_file(f"/many/f{i:02d}")
    switches(kd, short_pages=True, max_page_size=4)
    import cloudfs.client.koodrive.dialect as kdd
    old, kdd.PAGE_SIZE = kdd.PAGE_SIZE, 4
    try:
        _, children = await kclient.list_all("/many")
    finally:
        kdd.PAGE_SIZE = old
    assert sorted(c.name for c in children) == [f"f{i:02d}" for i in range(25)]
    with pytest.raises(AlreadyExists):
        await kclient.mkdir("/many")
    with pytest.raises(NotFound) as info:
        await kclient.stat("/many/nope")
    assert info.value.errno == errno.ENOENT


async def test_rename_move_delete_jobs(kclient, kd):
    switches(kd, job_polls_per_step=2)
    await kclient.mkdir("/a")
    await kclient.mkdir("/b")
    f = await kclient.create_file("/a/x")
    renamed = await kclient.rename("/a/x", "y")
    assert renamed.path == "/a/y" and renamed.file_id == f.file_id
    await kclient.move(["/a/y"], "/b")
    moved = await kclient.stat("/b/y")
    assert moved.file_id == f.file_id
    with pytest.raises(NotFound):
        await kclient.stat("/a/y")
    await kclient.create_file("/a/y")
    with pytest.raises(AlreadyExists):  # a move never overwrites
        await kclient.move(["/a/y"], "/b")
    await kclient.delete(["/b/y"])
    with pytest.raises(NotFound):
        await kclient.stat("/b/y")
    trash = await kclient.trash()
    assert trash is not None and trash.items >= 1


async def test_upload_new_and_replace(kclient, kd, tmp_path):
    data = os.urandom((11 << 20) + 12345)  # three parts of 5 MiB
    src = tmp_path / "big"
    src.write_bytes(data)
    entry = await kclient.upload("/big.bin", src, mtime_ns=1_700_000_000_123_000_000)
    assert entry.size == len(data) and entry.path == "/big.bin"
    assert hashlib.sha256(await kclient.read(entry, 0, entry.size)).digest() == hashlib.sha256(data).digest()
    assert await kclient.read(entry, 5 << 20, 100) == data[5 << 20:(5 << 20) + 100]
    src.write_bytes(b"new content")
    newer = await kclient.upload("/big.bin", src, replace=entry)
    assert newer.path == "/big.bin" and newer.file_id != entry.file_id  # replace gives a new id
    assert await kclient.read(newer, 0, 100) == b"new content"
    _, children = await kclient.list_all("/")
    assert [c.name for c in children].count("big.bin") == 1
    assert not any(c.name.startswith(".big.bin.cloudfs-") for c in children)


async def test_whole_file_read_without_range(kclient, kd, tmp_path):
    src = tmp_path / "r"
    src.write_bytes(b"0123456789" * 1000)
    entry = await kclient.upload("/norange.txt", src)
    switches(kd, range=False)
    assert await kclient.read(entry, 500, 10) == b"0123456789"


async def test_expired_token_is_refreshed(kclient, kd):
    httpx.post(kd.url + "/_cloudfs/faults/expire-tokens").raise_for_status()
    assert (await kclient.stat("/")).is_dir
    assert kclient._debug_state()["token_renewals"] == 1


async def test_capacity_from_usage_by_user(kclient, tmp_path):
    before = await kclient.capacity()
    assert before.total == 1 << 30
    src = tmp_path / "c"
    src.write_bytes(os.urandom(300_000))
    await kclient.upload("/cap.bin", src)
    after = await kclient.capacity()
    assert after.used - before.used == pytest.approx(300_000, abs=1024)


async def test_replace_after_a_rename_lands_at_the_upload_path(kclient, tmp_path):
    """The entry being replaced may carry its path from before a rename: the
    new version lands at the upload's path and the old file is gone."""
    await kclient.mkdir("/rn")
    old = await kclient.create_file("/rn/f")
    await kclient.rename("/rn/f", "f3")
    src = tmp_path / "x"
    src.write_bytes(b"f")
    new = await kclient.upload("/rn/f3", src, replace=old)  # old.path is still /rn/f
    assert new.path == "/rn/f3" and new.size == 1
    _, children = await kclient.list_all("/rn")
    assert [c.name for c in children] == ["f3"]


async def test_upload_makes_missing_folders(kclient, tmp_path):
    src = tmp_path / "deep"
    src.write_bytes(b"deep")
    entry = await kclient.upload("/new1/new2/deep.txt", src)
    assert entry.path == "/new1/new2/deep.txt"
    assert (await kclient.stat("/new1/new2")).is_dir


async def test_usage_report_batches_users_and_pages_tiers(kclient):
    me = kclient._dialect.user_id
    report = await kclient.usage(users=[me] + [str(10**18 + i) for i in range(60)], by_quota=True)
    assert [u.user_id for u in report.users] == [me]  # 61 ids: two calls of at most 50; unknown ids left out
    assert report.users[0].quota == 1 << 30
    assert report.tiers is not None and report.tiers[0].quota == 1 << 30
    assert report.overview is not None and report.overview.capacity == 1 << 30


def test_quota_command_json_and_table(kd):
    import json
    import subprocess
    import sys
    env = {**os.environ, "CLOUDFS_PASSWORD": kd.password}
    base = [sys.executable, "-m", "cloudfs", "quota", kd.url, "--user", kd.email]
    out = subprocess.run([*base, "--json", "--by-quota"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["users"][0]["quota"] == 1 << 30 and report["tiers"][0]["capacity"] == 1 << 30
    out = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1.0 GiB" in out.stdout and "tenant:" in out.stdout


async def test_pasted_token_and_app_key_file(kd, kclient, monkeypatch, tmp_path, caplog):
    user_id = kclient._dialect.user_id
    monkeypatch.setenv("CLOUDFS_KOODRIVE_TOKEN", kclient._http.auth.tokens.access_token)
    with caplog.at_level("WARNING"):
        pasted = await CloudreveClient.connect(kd.url, email=user_id, settings=FAST)
    try:
        assert (await pasted.stat("/")).is_dir
        assert any("20 minutes" in r.getMessage() for r in caplog.records)
    finally:
        await pasted.aclose()
    monkeypatch.delenv("CLOUDFS_KOODRIVE_TOKEN")
    key = tmp_path / "app.toml"
    key.write_text(f'app_id = "cloudfs-demo-app"\napp_secret = "cloudfs-demo-app-secret"\nuser_id = "{user_id}"\n')
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_KEY_FILE", str(key))
    app = await CloudreveClient.connect(kd.url, settings=FAST)
    try:
        assert (await app.capacity()).total == 1 << 30
    finally:
        await app.aclose()


async def test_operations_on_an_entry_held_need_no_lookup(kclient, kd, token_store):
    """Object operations take the Entry the caller holds: an id-addressed
    backend renames, moves and deletes by its id, without listing a folder
    to find it again (here the client's path -> id cache forgot it)."""
    switches(kd, job_polls_per_step=0)
    await kclient.mkdir("/held")
    await kclient.mkdir("/held/to")
    made = await kclient.create_file("/held/f")
    file_id = made.file_id
    other = await CloudreveClient.connect(kd.url, email=kd.email, password=kd.password, token_store=token_store,
                                          settings=FAST)
    async with other:
        to = await other.stat("/held/to")  # lists /held: the folders' ids are known
        ids = other._dialect.ids
        listings = r"/koodrive/ose/v1/files/0$"
        for step in ("rename", "move", "delete"):
            ids.forget(made.path)
            kd.faults.clear()  # the counters too
            kd.faults.set(path_regex=listings)  # counts requests, injects nothing
            if step == "rename":
                made = await other.rename(made, "g")
                assert made.path == "/held/g" and made.file_id == file_id
            elif step == "move":
                await other.move([made], to.path)
                made = await kclient.stat("/held/to/g")
                assert made.file_id == file_id
                kd.faults.clear()
            else:
                await other.delete([made])
            assert kd.faults.stats().get("matched", 0) == 0, f"{step} listed a folder"
        with pytest.raises(NotFound):
            await kclient.stat("/held/to/g")


async def test_a_swap_whose_rename_failed_is_cleaned_up_by_the_next(kclient, kd, tmp_path):
    """The shared replace-beside strategy (client/replace.py) on KooDrive:
    when the rename into place fails (the old file already in the recycle
    bin), the new content stays at its temporary name; the next upload puts
    its content in place and deletes the stranded copies (two here: one per
    failed attempt)."""
    await kclient.mkdir("/strand")
    src = tmp_path / "s"
    src.write_bytes(b"version 1")
    first = await kclient.upload("/strand/f", src)
    kd.faults.set(path_regex=r"/files/rename/", error_rate=1.0, error_status=503, count=40)
    for attempt in (b"version 2, stranded", b"version 2b, stranded too"):
        src.write_bytes(attempt)
        with pytest.raises(CloudfsError):
            await kclient.upload("/strand/f", src, replace=first)
    kd.faults.clear()
    _, children = await kclient.list_all("/strand")
    assert [c.name for c in children if not c.name.startswith(".f.cloudfs-")] == []  # the old one is in the bin
    assert len(children) == 2
    src.write_bytes(b"version 3")
    placed = await kclient.upload("/strand/f", src, replace=first)
    assert await kclient.read(placed, 0, 100) == b"version 3"
    _, children = await kclient.list_all("/strand")
    assert [c.name for c in children] == ["f"]


async def test_a_cancelled_rapid_replace_leaves_no_copy_beside_the_file(kclient, tmp_path):
    """A replace whose content the server already has is whole at its
    temporary name from ``files/create`` on (rapid upload): cancelled before
    its swap (the write-back cancels an upload when the file changes again),
    that copy is deleted, not left beside the file for good."""
    await kclient.mkdir("/rapid")
    src = tmp_path / "r"
    src.write_bytes(b"content the server has")
    await kclient.upload("/rapid/known", src)
    src.write_bytes(b"version 1")
    first = await kclient.upload("/rapid/f", src)
    src.write_bytes(b"content the server has")
    with trio.CancelScope() as scope:
        async def cancel_now(_: str) -> None:
            scope.cancel()

        await kclient.upload("/rapid/f", src, replace=first, on_session=cancel_now)
    assert scope.cancelled_caught
    _, children = await kclient.list_all("/rapid")
    assert sorted(c.name for c in children) == ["f", "known"]
    assert await kclient.read(await kclient.stat("/rapid/f"), 0, 100) == b"version 1"


async def test_the_next_run_deletes_a_version_a_killed_one_left_beside_its_file(kclient, kd, tmp_path, token_store):
    """A run killed between an upload's completion and its swap leaves the
    new version whole at a temporary name (the process's memory of it is
    gone).  Its journal kept the upload's session; the next run cancels that
    session: the copy beside the file goes, and a session whose version did
    take the file's name (or a new file's) is left alone."""
    await kclient.mkdir("/killed")
    src = tmp_path / "k"
    src.write_bytes(b"version 1")
    first = await kclient.upload("/killed/f", src)
    sessions: list[str] = []

    async def record(session_id: str) -> None:
        sessions.append(session_id)

    kd.faults.set(path_regex=r"/files/rename/", error_rate=1.0, error_status=503, count=20)
    src.write_bytes(b"version 2, left beside")
    with pytest.raises(CloudfsError):
        await kclient.upload("/killed/f", src, replace=first, on_session=record)
    kd.faults.clear()
    _, children = await kclient.list_all("/killed")
    assert [c.name for c in children if c.name.startswith(".f.cloudfs-")] != []
    next_run = await CloudreveClient.connect(kd.url, token_store=token_store, settings=FAST, backend="koodrive")
    try:
        await next_run.cancel_upload("/killed/f", sessions[-1])
        _, children = await next_run.list_all("/killed")
        assert [c.name for c in children] == []  # the old version is in the recycle bin
        src.write_bytes(b"version 3")
        placed = await next_run.upload("/killed/f", src, on_session=record)
        await next_run.cancel_upload("/killed/f", sessions[-1])  # its version has the name: kept
        src.write_bytes(b"version 4")
        placed = await next_run.upload("/killed/f", src, replace=placed, on_session=record)
        await next_run.cancel_upload("/killed/f", sessions[-1])
        assert await next_run.read(await next_run.stat("/killed/f"), 0, 100) == b"version 4"
    finally:
        await next_run.aclose()


async def test_a_job_the_restarted_server_forgot_is_created_again(tmp_path, token_store):
    """A delete whose job the server forgot while it was polled (the
    emulator keeps jobs in memory: a restart between the job's creation and
    its end) is created again and done, not failed with "the task does not
    exist" (the fault soak's close failed with EIO so)."""
    with start_server(tmp_path / "srv", faults=True, dialect="koodrive") as srv:
        # polls that meet the restart are retried until the server is back
        patient = dataclasses.replace(FAST, max_attempts=1000, backoff_max_s=0.5)
        client = await CloudreveClient.connect(srv.url, email=srv.email, password=srv.password,
                                               token_store=token_store, settings=patient)
        async with client:
            await client.create_file("/doomed")
            switches(srv, job_seconds=60)  # the job stays pending until the restart
            srv.faults.set(path_regex=r"/koodrive/ose/v1/[0-9a-f]{32}$")  # counts the job's polls

            async def restart_while_polled() -> None:
                while srv.faults.stats().get("matched", 0) == 0:
                    await trio.sleep(0.05)
                await trio.to_thread.run_sync(srv.restart)  # forgets the job and the slow-job switch

            async with trio.open_nursery() as nursery:
                nursery.start_soon(restart_while_polled)
                await client.delete(["/doomed"])
            with pytest.raises(NotFound):
                await client.stat("/doomed")
            trash = await client.trash()
            assert trash is not None and trash.items == 1
