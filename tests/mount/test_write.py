"""Write side through a real mount: content, namespace operations, real tools."""

from __future__ import annotations

import ctypes
import errno
import os
import random
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfs.errors import CloudfsError
from cloudfs.server.testing import RunningServer, start_server
from tests.mount.conftest import Drive, Remote, mounted, run_cloudfs, sha256, synced, wait_until

#: also on the KooDrive emulator (tests/dialects.py); skips name what KooDrive lacks
ON_KOODRIVE = True

CHUNK = 1 << 20


@pytest.fixture(scope="module")
def server(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # small chunks, so a few MiB already make a multi-chunk upload
    with start_server(tmp_path_factory.mktemp("server"), faults=True, chunk_size=CHUNK, dialect=dialect) as srv:
        yield srv


def on_server(remote: Remote, drive: Drive, path: Path) -> bytes:
    return remote.get("/" + path.relative_to(drive.path).as_posix())


@pytest.mark.parametrize("size", [0, 1, 4095, CHUNK, CHUNK + 1, 5 * CHUNK + CHUNK // 2])
def test_write_round_trip_small_and_multi_chunk(drive: Drive, remote: Remote, size: int):
    data = random.Random(size).randbytes(size)
    target = drive / f"roundtrip-{size}.bin"
    with open(target, "wb") as fp:
        fp.write(data)
    assert target.stat().st_size == size  # local size at once
    assert target.read_bytes() == data
    synced(target)
    assert on_server(remote, drive, target) == data


def test_write_random_offsets_match_a_model(drive: Drive, remote: Remote, tmp_path: Path):
    rng = random.Random(7)
    base = rng.randbytes(3 * CHUNK + 77)
    remote.put("/model.bin", base)
    model = tmp_path / "model.bin"
    model.write_bytes(base)
    with open(drive / "model.bin", "r+b") as fp, open(model, "r+b") as ref:
        for _ in range(200):
            op = rng.random()
            if op < 0.6:
                off = rng.randrange(0, 4 * CHUNK)
                data = rng.randbytes(rng.randrange(1, 100_000))
                for f in (fp, ref):
                    f.seek(off)
                    f.write(data)
            elif op < 0.75:
                size = rng.randrange(0, 4 * CHUNK)
                fp.truncate(size)
                ref.truncate(size)
            else:
                off = rng.randrange(0, 4 * CHUNK)
                length = rng.randrange(1, 300_000)
                fp.flush()
                ref.flush()
                assert os.pread(fp.fileno(), length, off) == os.pread(ref.fileno(), length, off)
        fp.flush()
        os.fsync(fp.fileno())
    assert (drive / "model.bin").read_bytes() == model.read_bytes()
    assert on_server(remote, drive, drive / "model.bin") == model.read_bytes()


def test_write_truncate_grow_and_shrink(drive: Drive, remote: Remote):
    remote.put("/trunc.bin", b"a" * 5000)
    path = drive / "trunc.bin"
    os.truncate(path, 100)
    os.truncate(path, 3000)
    expected = b"a" * 100 + b"\0" * 2900
    assert path.read_bytes() == expected
    synced(path)
    assert on_server(remote, drive, path) == expected


def test_write_append_to_a_remote_file(drive: Drive, remote: Remote):
    head = random.Random(3).randbytes(2 * CHUNK + 5)
    remote.put("/append.log", head)
    with open(drive / "append.log", "ab") as fp:
        fp.write(b"tail line\n")
    synced(drive / "append.log")
    assert on_server(remote, drive, drive / "append.log") == head + b"tail line\n"


def test_write_editor_save_patterns(drive: Drive, remote: Remote):
    doc = drive / "doc.txt"
    doc.write_text("version 1\n")
    # write a temporary file, then rename it over the original
    tmp = drive / ".doc.txt.swp"
    tmp.write_text("version 2\n")
    os.rename(tmp, doc)
    assert doc.read_text() == "version 2\n" and not tmp.exists()
    # rewrite in place
    with open(doc, "w") as fp:
        fp.write("version 3, longer\n")
    synced(doc)
    assert on_server(remote, drive, doc) == b"version 3, longer\n"
    assert sorted(n for n in remote.names("/") if "doc" in n) == ["doc.txt"]


def test_write_rename_over_an_open_file(drive: Drive, remote: Remote):
    (drive / "target.txt").write_text("old content")
    synced(drive / "target.txt")
    with open(drive / "target.txt") as reader:
        (drive / "incoming.txt").write_text("new content")
        os.rename(drive / "incoming.txt", drive / "target.txt")
        assert reader.read() == "old content"  # the open file keeps its content
    assert (drive / "target.txt").read_text() == "new content"
    synced(drive / "target.txt")
    assert on_server(remote, drive, drive / "target.txt") == b"new content"


def test_write_unlink_of_an_open_file(drive: Drive, remote: Remote):
    path = drive / "unlinked.txt"
    with open(path, "w+") as fp:
        fp.write("still here")
        fp.flush()
        os.unlink(path)
        assert not path.exists()
        fp.write(", and more")
        fp.seek(0)
        assert fp.read() == "still here, and more"
    assert not remote.exists("/unlinked.txt")


def test_write_namespace_operations(drive: Drive, remote: Remote):
    base = drive / "ns"
    os.makedirs(base / "a" / "b")
    (base / "a" / "b" / "f.txt").write_text("f")
    with pytest.raises(OSError) as info:
        os.rmdir(base / "a")
    assert info.value.errno == errno.ENOTEMPTY
    with pytest.raises(FileExistsError):
        os.mkdir(base / "a")
    ino = os.stat(base / "a" / "b" / "f.txt").st_ino
    os.rename(base / "a", base / "renamed")  # a folder with contents
    assert os.stat(base / "renamed" / "b" / "f.txt").st_ino == ino  # a rename keeps the inode
    os.rename(base / "renamed" / "b" / "f.txt", base / "moved-and-renamed.txt")  # across folders, new name
    assert (base / "moved-and-renamed.txt").read_text() == "f"
    os.rmdir(base / "renamed" / "b")
    os.rmdir(base / "renamed")
    assert sorted(os.listdir(base)) == ["moved-and-renamed.txt"]
    synced(base / "moved-and-renamed.txt")  # a new file reaches the server with its upload
    assert remote.names("/ns") == ["moved-and-renamed.txt"]


def test_write_rename_edge_cases(drive: Drive):
    base = drive / "edges"
    os.makedirs(base / "dir" / "sub")
    (base / "file").write_text("x")
    os.makedirs(base / "full" / "inner")
    os.mkdir(base / "emptydir")
    cases = [
        (base / "dir", base / "dir" / "sub" / "inside", errno.EINVAL),
        (base / "file", base / "emptydir", errno.EISDIR),
        (base / "dir", base / "file", errno.ENOTDIR),
        (base / "emptydir", base / "full", errno.ENOTEMPTY),
    ]
    for src, dst, code in cases:
        with pytest.raises(OSError) as info:
            os.rename(src, dst)
        assert info.value.errno == code, (src, dst)
    os.rename(base / "file", base / "file")  # onto itself: nothing happens
    os.rename(base / "emptydir", base / "dir" / "sub")  # folder over an empty folder
    assert (base / "file").read_text() == "x"


def renameat2(src: Path, dst: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_write_rename_noreplace_and_exchange(drive: Drive, remote: Remote):
    (drive / "x1").write_text("one")
    (drive / "x2").write_text("two")
    with pytest.raises(FileExistsError):
        renameat2(drive / "x1", drive / "x2", 1)  # RENAME_NOREPLACE
    renameat2(drive / "x1", drive / "x2", 2)  # RENAME_EXCHANGE
    assert (drive / "x1").read_text() == "two" and (drive / "x2").read_text() == "one"
    synced(drive / "x1")
    synced(drive / "x2")
    assert remote.get("/x1") == b"two" and remote.get("/x2") == b"one"


@pytest.mark.v4_only("Cloudreve 3 has no metadata: modes and exact times do not reach the server")
@pytest.mark.koodrive_lacks("custom metadata: modes and exact times do not reach the server")
def test_write_modes_times_and_owners(drive: Drive, server: RunningServer, tmp_path: Path):
    path = drive / "attrs.txt"
    path.write_text("attrs")
    os.chmod(path, 0o751)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    with pytest.raises(PermissionError):
        os.chown(path, 12345, 12345)
    os.chown(path, os.getuid(), os.getgid())  # to the owner it already has: fine
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime_ns == 1_600_000_000_123_456_789
    synced(path)
    # a second mount (fresh caches) sees the same
    other = Drive(server, tmp_path / "other", tmp_path / "cache")
    other.mount()
    try:
        st2 = os.stat(other / "attrs.txt")
        assert stat.S_IMODE(st2.st_mode) == 0o751 and st2.st_mtime_ns == 1_600_000_000_123_456_789
    finally:
        other.umount()


def test_write_hard_links_and_devices_are_refused(drive: Drive):
    # (symbolic links work: test_links.py)
    (drive / "hard-source").write_bytes(b"x")
    for make in (lambda: os.mkfifo(drive / "fifo"), lambda: os.link(drive / "hard-source", drive / "hard")):
        with pytest.raises(OSError) as info:
            make()
        assert info.value.errno == errno.EPERM


def test_write_cp_r_rsync_and_tar(drive: Drive, remote: Remote, tmp_path: Path):
    source = tmp_path / "src"
    rng = random.Random(11)
    for i in range(60):
        f = source / f"d{i % 4}" / f"f{i}.dat"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randrange(0, 20_000)))
    subprocess.run(["cp", "-r", str(source), str(drive / "cp")], check=True)
    subprocess.run(["diff", "-r", str(source), str(drive / "cp")], check=True)

    subprocess.run(["rsync", "-a", f"{source}/", str(drive / "rs")], check=True)
    again = subprocess.run(["rsync", "-a", "--itemize-changes", f"{source}/", str(drive / "rs")],
                           check=True, capture_output=True, text=True)
    assert again.stdout.strip() == "", f"second rsync transferred:\n{again.stdout}"
    for f in list(source.rglob("*.dat"))[:5]:
        assert os.stat(drive / "rs" / f.relative_to(source)).st_mtime_ns // 10**9 == int(f.stat().st_mtime)

    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "cf", str(archive), "-C", str(source), "."], check=True)
    (drive / "untar").mkdir()
    subprocess.run(["tar", "xf", str(archive), "-C", str(drive / "untar")], check=True)
    subprocess.run(["diff", "-r", str(source), str(drive / "untar")], check=True)
    # everything lands on the server
    subprocess.run([*_cloudfs(), "umount", "--quiet", str(drive.path)], check=True)
    drive.mounted = False
    drive.mount()
    for f in list(source.rglob("*.dat"))[:10]:
        rel = f.relative_to(source).as_posix()
        assert remote.get(f"/untar/{rel}") == f.read_bytes()
        assert remote.get(f"/rs/{rel}") == f.read_bytes()
    # and the times are the server's too: a new mount's rsync finds no file to send
    # (on Cloudreve 3 a file created empty and then replaced took the time of its swap;
    # KooDrive keeps no folder times, which rsync sets again without sending anything)
    again = subprocess.run(["rsync", "-a", "--itemize-changes", f"{source}/", str(drive / "rs")],
                           check=True, capture_output=True, text=True)
    sent = [line for line in again.stdout.splitlines() if not line.startswith(".d..t")]
    assert sent == [], f"rsync after a remount transferred:\n{again.stdout[:2000]}"



#: each small file's content goes up in one request: Cloudreve 4's PUT /file/content, v3's one
#: chunk, KooDrive's one part (after its files/create)
CONTENT_ROUTES = r"/file/upload/|/file/content$|/obs/upload/"
#: what a rename or move on the server would be
RENAME_ROUTES = {"v4": r"/file/(rename|move)$", "v3": r"/object(/rename)?$",
                 "koodrive": r"/files/rename/|/jobs$"}


def test_rsync_uploads_each_file_once_under_its_final_name(server: RunningServer, remote: Remote, tmp_path: Path):
    """rsync writes each file as ``.name.XXXXXX``, sets its mode and times,
    and renames it over ``name``: a file not on the server yet goes up once,
    straight under its final name (no rename request, no upload of the
    temporary name), with the mode and times rsync set, so a second rsync
    from a fresh mount sends nothing."""
    source = tmp_path / "src"
    rng = random.Random(18)
    files = [source / f"d{i % 3}" / f"f{i}.bin" for i in range(24)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randrange(1, 30_000)))
    with mounted(server, tmp_path / "m", options="upload_delay=60,delete=permanent") as drive:
        server.faults.set(path_regex=RENAME_ROUTES[server.dialect], latency_s=0.0)  # counted, not failed
        try:
            subprocess.run(["rsync", "-a", f"{source}/", str(drive / "rsynced")], check=True)
            assert server.faults.stats()["matched"] == 0, "a rename reached the server"
            server.faults.set(path_regex=CONTENT_ROUTES, latency_s=0.0)
            drive.umount()  # uploads everything
            assert server.faults.stats()["matched"] == len(files)
        finally:
            server.faults.clear()
        for folder in ("d0", "d1", "d2"):
            assert sorted(remote.names(f"/rsynced/{folder}")) == sorted(
                f.name for f in files if f.parent.name == folder)  # no temporary name left behind
        assert remote.get("/rsynced/d1/f1.bin") == files[1].read_bytes()
        drive.mount()
        again = subprocess.run(["rsync", "-a", "--stats", f"{source}/", str(drive / "rsynced")],
                               check=True, capture_output=True, text=True).stdout
        assert "Number of regular files transferred: 0" in again, again


def _cloudfs() -> list[str]:
    import sys

    return [sys.executable, "-m", "cloudfs"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_write_git_clone_and_fsck(drive: Drive, tmp_path: Path):
    repo = tmp_path / "repo"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    for i in range(5):
        (repo / f"file{i}.txt").write_text(f"content {i}\n" * (i + 1))
        (repo / "script.sh").write_text(f"#!/bin/sh\necho {i}\n")
        os.chmod(repo / "script.sh", 0o755)
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"commit {i}"], check=True, env=env)
    clone = drive / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, env=env)
    fsck = subprocess.run(["git", "-C", str(clone), "fsck", "--full"], env=env, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr  # (exit 48 alone told nothing)
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, env=env,
                            capture_output=True, text=True)
    assert status.stdout == ""
    assert os.access(clone / "script.sh", os.X_OK)


def test_write_concurrent_writers(drive: Drive, remote: Remote):
    errors: list[BaseException] = []
    expected: dict[str, bytes] = {}

    def writer(i: int) -> None:
        try:
            data = random.Random(i).randbytes(200_000 + i)
            expected[f"/conc/w{i}.bin"] = data
            with open(drive / "conc" / f"w{i}.bin", "wb") as fp:
                for off in range(0, len(data), 7000):
                    fp.write(data[off : off + 7000])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    (drive / "conc").mkdir()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for path, data in expected.items():
        assert (drive.path / path.lstrip("/")).read_bytes() == data
    def landed(path: str, size: int) -> bool:
        try:
            return remote.stat(path).size == size
        except CloudfsError as exc:
            # absent, or for a moment on Cloudreve 3, which replaces a file by
            # deleting it and renaming the new content into place (more
            # often so when more small files upload at once)
            if exc.errno == errno.ENOENT:
                return False
            raise

    wait_until(lambda: all(landed(p, len(d)) for p, d in expected.items()), timeout=60)
    for path, data in expected.items():
        assert sha256(remote.get(path)) == sha256(data)


@pytest.mark.parametrize("size", [100_000, 6 * CHUNK + 5], ids=["small", "large"])
def test_write_an_uploaded_file_reads_back_from_the_cache(drive: Drive, size: int):
    """What this mount uploaded is kept as read cache (a large file copied
    there in a worker thread): read back after a remount (the kernel's pages
    gone, the block cache kept), nothing is downloaded."""
    data = random.Random(size).randbytes(size)
    target = drive / f"kept-{size}.bin"
    target.write_bytes(data)
    synced(target)
    wait_until(lambda: not status_of(drive)["uploads"], timeout=30)
    drive.remount()
    assert target.read_bytes() == data
    assert status_of(drive)["downloaded"] == 0


def status_of(d: Drive) -> dict:
    import json

    return dict(json.loads(run_cloudfs("status", str(d.path), "--json", check=True).stdout)[0])


def churn(root: Path, seed: int, stop: float, errors: list[OSError]) -> None:
    """Creates, rewrites, renames (over each other too), unlinks and fsyncs
    among a few names shared with the other threads, until ``stop``."""
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(6)]
    while time.monotonic() < stop:
        kind = rng.randrange(6)
        a, b = root / rng.choice(names), root / rng.choice(names)
        try:
            if kind == 0:
                with open(a, "wb") as fp:
                    fp.write(rng.randbytes(rng.randrange(1, 20_000)))
            elif kind == 1:
                fd = os.open(a, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    os.write(fd, rng.randbytes(rng.randrange(0, 3000)))
                finally:
                    os.close(fd)
            elif kind == 2:
                os.rename(a, b)
            elif kind == 3:
                os.unlink(a)
            elif kind == 4:
                with open(a, "r+b") as fp:
                    fp.seek(rng.randrange(10_000))
                    fp.write(b"x" * rng.randrange(1, 3000))
                    os.fsync(fp.fileno())
            else:
                a.read_bytes()
        except (FileNotFoundError, FileExistsError):
            pass
        except OSError as exc:
            errors.append(exc)


def test_write_churn_of_new_files_in_threads_makes_no_conflict_copies(server: RunningServer, tmp_path: Path):
    """Four threads create, rewrite, rename and unlink the same few names on
    one mount.  New files reach the server with their first upload, racing
    the renames and unlinks of their names: the server must end up with
    exactly what the mount showed, and the mount must never take its own
    earlier upload for someone else's (a conflict copy)."""
    d = Drive(server, tmp_path / "mnt", tmp_path / "cache")
    d.mount()
    try:
        root = d / "churn"
        root.mkdir()
        errors: list[OSError] = []
        stop = time.monotonic() + 10
        threads = [threading.Thread(target=churn, args=(root, seed, stop, errors)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, d.log()[-8000:]
        shown = {name: (root / name).read_bytes() for name in os.listdir(root)}
    finally:
        d.umount()
    log = d.log()
    assert "(conflict" not in log, log[max(log.find("(conflict") - 6000, 0):][:8000]
    remote = Remote(server)
    assert {name: remote.get(f"/churn/{name}") for name in remote.names("/churn")} == shown
