"""KooDrive uploads through a real mount (the KooDrive emulator only): a big
file written front to back is hashed as it is written and goes up in
parallel parts; one changed in place is hashed at upload; uploads cancelled
by a rewrite, a removal or a killed mount leave nothing on the server and
never block the next upload of the same name; the old version a rewrite
replaces goes where the mount's deletes go."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfs.client.sha256state import STATES_AVAILABLE
from cloudfs.server.testing import RunningServer, start_server
from tests.mount.conftest import Drive, Remote, file_sha256, force_unmount, mounted, sha256, synced, wait_until

MIB = 1 << 20


@pytest.fixture(scope="module")
def dialect() -> str:
    return "koodrive"  # this module is about KooDrive's upload only


@pytest.fixture(scope="module")
def drive(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    base = tmp_path_factory.mktemp("drive")
    d = Drive(server, base / "mnt", base / "cache", extra=("-vv",))  # the log says where each hash came from
    d.mount()
    try:
        yield d
    finally:
        d.umount()


@pytest.fixture
def slow_parts(server: RunningServer) -> Iterator[None]:
    """Each part PUT takes 3 s: an upload is surely in flight a second after it started."""
    server.faults.set(latency_s=3.0, path_regex="^/obs/upload/")
    try:
        yield
    finally:
        server.faults.clear()


def source(tmp_path: Path, size: int, seed: int) -> Path:
    path = tmp_path / f"src-{seed}"
    with open(path, "wb") as fp:
        for i in range(0, size, MIB):
            fp.write(bytes([seed]) * 64 + os.urandom(min(MIB, size - i) - 64))
    return path


def test_a_big_copy_is_hashed_as_written_and_reads_back(drive: Drive, remote: Remote, tmp_path: Path):
    src = source(tmp_path, 40 * MIB + 12345, 1)
    target = drive / "big-copy.bin"
    shutil.copyfile(src, target)  # cp: front to back
    synced(target)
    assert sha256(remote.get("/big-copy.bin")) == file_sha256(src)
    log = drive.log()
    assert "SHA-256 of /big-copy.bin: hashed as it was written" in log
    assert "SHA-256 of /big-copy.bin: read back" not in log
    drive.remount()  # read back through a fresh mount (nothing staged)
    assert file_sha256(drive / "big-copy.bin") == file_sha256(src)


def test_a_file_changed_in_place_is_hashed_at_upload(drive: Drive, remote: Remote, tmp_path: Path):
    src = source(tmp_path, 20 * MIB, 2)
    target = drive / "edited.bin"
    shutil.copyfile(src, target)
    with open(target, "r+b") as fp:  # a seek back: the hash of the copy is of no use
        fp.seek(MIB + 3)
        fp.write(b"edited in place")
    expected = bytearray(src.read_bytes())
    expected[MIB + 3:MIB + 3 + 15] = b"edited in place"
    synced(target)
    assert sha256(remote.get("/edited.bin")) == sha256(bytes(expected))
    assert "SHA-256 of /edited.bin: read back from the file" in drive.log()


@pytest.mark.skipif(not STATES_AVAILABLE, reason="no libcrypto: sequential parts only")
def test_big_uploads_go_in_parallel_parts(drive: Drive, remote: Remote, server: RunningServer, tmp_path: Path):
    """Four parts at once: with each part PUT taking 1 s, 6 parts of 8 MiB take
    about 2 s (10 sequential parts of the server's 5 MiB would take 10 s)."""
    server.faults.set(latency_s=1.0, path_regex="^/obs/upload/")
    try:
        src = source(tmp_path, 48 * MIB, 3)
        target = drive / "parallel.bin"
        shutil.copyfile(src, target)
        start = time.monotonic()
        synced(target)
        took = time.monotonic() - start
    finally:
        server.faults.clear()
    assert sha256(remote.get("/parallel.bin")) == file_sha256(src)
    assert took < 6.0, took


def test_a_rewrite_mid_upload_cancels_it_and_leaves_one_file(drive: Drive, remote: Remote, slow_parts: None,
                                                             tmp_path: Path):
    (drive / "rw").mkdir()
    first, second = source(tmp_path, 30 * MIB, 4), source(tmp_path, 30 * MIB, 5)
    target = drive / "rw" / "f.bin"
    shutil.copyfile(first, target)  # closed: its upload starts at once (a big sequential file)
    time.sleep(1.0)  # parts in flight
    shutil.copyfile(second, target)  # O_TRUNC and new content: the upload in flight is cancelled
    synced(target)
    assert remote.names("/rw") == ["f.bin"]  # no conflict copy, no upload beside left visible
    assert sha256(remote.get("/rw/f.bin")) == file_sha256(second)


def test_a_removal_mid_upload_leaves_nothing_and_frees_the_name(drive: Drive, remote: Remote,
                                                                slow_parts: None, tmp_path: Path):
    (drive / "rm").mkdir()
    src = source(tmp_path, 30 * MIB, 6)
    target = drive / "rm" / "f.bin"
    shutil.copyfile(src, target)
    time.sleep(1.0)
    target.unlink()
    used = remote.used()
    time.sleep(1.0)
    assert remote.names("/rm") == [] and remote.used() == used  # nothing landed meanwhile
    (target).write_bytes(b"again")  # the same name, at once
    synced(target)
    assert remote.names("/rm") == ["f.bin"] and remote.get("/rm/f.bin") == b"again"


def test_a_mount_killed_mid_upload_uploads_again_at_the_next_mount(drive: Drive, remote: Remote,
                                                                     slow_parts: None, tmp_path: Path):
    (drive / "kill").mkdir()
    src = source(tmp_path, 30 * MIB, 7)
    target = drive / "kill" / "f.bin"
    pid = drive.pid()
    shutil.copyfile(src, target)  # closed: journaled
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    force_unmount(drive.path)
    drive.mounted = False
    # the task left behind is invisible (the file is made by its first upload: nothing is there)
    assert remote.names("/kill") == []
    drive.mount()  # replays the journal: the same name uploads again
    wait_until(lambda: "f.bin" in remote.names("/kill") and remote.stat("/kill/f.bin").size == 30 * MIB, timeout=60)
    assert remote.names("/kill") == ["f.bin"]
    assert sha256(remote.get("/kill/f.bin")) == file_sha256(src)


@pytest.mark.parametrize("delete", ["permanent", "trash"])
def test_a_rewrite_sends_the_old_version_where_deletes_go(tmp_path: Path, delete: str):
    # KooDrive has no overwrite: each rewrite uploads the new version beside
    # the file and deletes the old one.  Before, that old one always went to
    # the recycle bin, which counts against the quota: with delete=permanent
    # a file rewritten all day filled the drive (the soak test's 'Insufficient space')
    size = 100_000
    with start_server(tmp_path / "server", faults=False, dialect="koodrive") as server:
        remote = Remote(server)
        with mounted(server, tmp_path, options=f"upload_delay=0.2,delete={delete}") as drive:
            for i in range(3):
                (drive / "f").write_bytes(bytes([i]) * size)  # (each version its own content: no dedup)
                synced(drive / "f")
        trash = remote._run(lambda client: client.trash())
        assert remote.get("/f") == bytes([2]) * size
        if delete == "permanent":
            assert (trash.items, trash.size) == (0, 0)
            assert remote.used() == size  # the live bytes alone
        else:  # the default: the old versions can be restored from the bin (and count until it is emptied)
            # (a file is made by its first upload: no empty one before it)
            assert (trash.items, trash.size) == (2, 2 * size)
            assert remote.used() == 3 * size
