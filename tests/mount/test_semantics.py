"""docs/semantics.md, claim by claim, on a real mount.

Each test names the section of the document it checks.  Most share one
module-scoped mount (each test works in a folder of its own); the owner and
permission options need mounts of their own.  Whatever a bad input does, the
mount must still answer afterwards (``assert_alive``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudfs.fs import attrs
from cloudfs.server.testing import RunningServer
from tests.dialects import keeps_metadata
from tests.mount.conftest import TEST_OPTIONS, Drive, Remote, mounted, synced, wait_until

#: also on the KooDrive emulator (tests/dialects.py); skips name what KooDrive lacks
ON_KOODRIVE = True

LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FORBIDDEN = '\\:*?"<>|'
NOBODY = 65534
STATFS_BLOCK = 4096


# ---- helpers ---------------------------------------------------------------------
def errno_of(fn: Callable[..., object], *args: object) -> int:
    """The errno ``fn(*args)`` fails with (the test fails if it succeeds)."""
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno or 0
    raise AssertionError("expected an OSError, the call succeeded")


def assert_alive(drive: Drive) -> None:
    """The mount still answers (a bad input must never take it down)."""
    assert isinstance(os.listdir(drive.path), list)
    assert os.path.ismount(drive.path)


def create(path: str | bytes | Path, data: bytes = b"", mode: int = 0o644) -> None:
    """A new file with ``data``, on the server when this returns (a new
    file otherwise reaches it with its first upload, after the quiet delay)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def renameat2(src: Path | bytes, dst: Path | bytes, flags: int) -> None:
    if LIBC.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path: Path, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    """utimensat(2) itself: os.utime cannot pass UTIME_OMIT or UTIME_NOW for one time only."""
    times = (Timespec * 2)(Timespec(*atime), Timespec(*mtime))
    if LIBC.utimensat(AT_FDCWD, os.fsencode(path), times, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def fallocate(fd: int, offset: int, length: int) -> None:
    """fallocate(2) mode 0, without glibc's posix_fallocate fallback."""
    LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if LIBC.fallocate(fd, 0, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def remote_path(drive: Drive, path: Path) -> str:
    return "/" + path.relative_to(drive.path).as_posix()


@pytest.fixture(scope="module", autouse=True)
def tests_root(server: RunningServer) -> str:
    """Made on the server before the mount lists its root, and never listed
    through the mount: the mount has no cached listing of it, so folders
    made in it on the server show at once (no metadata_ttl wait)."""
    Remote(server).mkdir("/t")
    return "/t"


@pytest.fixture
def here(drive: Drive, remote: Remote, tests_root: str, request: pytest.FixtureRequest) -> Path:
    """A folder of the test's own on the shared mount, made on the server so
    the mount has not cached it as empty: files other tests put there from
    the server are visible at once."""
    name = request.node.name.replace("[", "-").replace("]", "")
    remote.mkdir(f"{tests_root}/{name}")
    return drive / tests_root.lstrip("/") / name


# ---- names and paths -------------------------------------------------------------
@pytest.mark.parametrize("name", ["n" * 255, "日" * 85, "é" * 127 + "x"], ids=["ascii", "cjk", "latin"])
def test_names_of_255_bytes_work(drive: Drive, remote: Remote, here: Path, name: str):
    assert len(name.encode()) == 255
    if drive.server.dialect == "koodrive" and len(name) > 250:
        pytest.skip("KooDrive names are at most 250 characters (fileName <= 250)")
    create(here / name, b"255")
    os.mkdir(here / ("d" + name[1:]))
    create(here / "src")
    os.rename(here / "src", here / ("r" + name[1:]))
    assert (here / name).read_bytes() == b"255"
    assert sorted(os.listdir(here)) == sorted([name, "d" + name[1:], "r" + name[1:]])
    synced(here / name)
    assert remote.get(remote_path(drive, here / name)) == b"255"


@pytest.mark.parametrize("name", ["n" * 256, "日" * 85 + "x", "é" * 128], ids=["ascii", "cjk", "latin"])
def test_names_over_255_bytes_are_enametoolong(drive: Drive, remote: Remote, here: Path, name: str):
    # the limit is in bytes: 86 CJK characters are too long although 85 fit
    assert len(name.encode()) > 255
    create(here / "src")
    os.mkdir(here / "dir")
    attempts: list[Callable[[], object]] = [
        lambda: create(here / name),
        lambda: os.mkdir(here / name),
        lambda: os.rename(here / "src", here / name),
        lambda: os.rename(here / "dir", here / name),
        lambda: os.stat(here / name),
    ]
    for attempt in attempts:
        assert errno_of(attempt) == errno.ENAMETOOLONG
        assert_alive(drive)
    assert sorted(os.listdir(here)) == ["dir", "src"]
    assert remote.names(remote_path(drive, here)) == ["dir", "src"]


def test_paths_over_4095_bytes_are_enametoolong(drive: Drive, here: Path):
    create(here / "f", b"deep")
    # repeated slashes pad a real path to exactly PATH_MAX - 1 bytes, then one more
    prefix = str(here) + "/"
    longest = prefix + "/" * (4095 - len(prefix) - 1) + "f"
    assert len(longest.encode()) == 4095
    with open(longest, "rb") as fp:
        assert fp.read() == b"deep"
    too_long = prefix + "/" * (4096 - len(prefix) - 1) + "f"
    assert errno_of(lambda: os.stat(too_long)) == errno.ENAMETOOLONG
    assert errno_of(lambda: create(prefix + "a/" * 2048 + "g")) == errno.ENAMETOOLONG
    assert_alive(drive)


NON_UTF8 = [b"\xff\xfe.txt", b"caf\xe9", b"\xc3\x28", b"\xed\xa0\x80surrogate"]


def test_non_utf8_names_are_einval(drive: Drive, remote: Remote, here: Path):
    folder = os.fsencode(here)
    create(here / "src")
    for raw in NON_UTF8:  # bad start bytes, Latin-1, a broken sequence, an encoded surrogate
        attempts: list[Callable[[], object]] = [
            lambda: os.open(folder + b"/" + raw, os.O_CREAT | os.O_WRONLY, 0o644),  # noqa: B023
            lambda: os.mkdir(folder + b"/" + raw),  # noqa: B023
            lambda: os.rename(here / "src", folder + b"/" + raw),  # noqa: B023
            lambda: os.stat(folder + b"/" + raw),  # noqa: B023
        ]
        for attempt in attempts:
            assert errno_of(attempt) == errno.EINVAL, raw
            assert_alive(drive)
    assert os.listdir(here) == ["src"]
    assert remote.names(remote_path(drive, here)) == ["src"]


def test_names_cloudreve_forbids_are_einval(drive: Drive, remote: Remote, here: Path):
    create(here / "src")
    os.mkdir(here / "dir")
    for char in FORBIDDEN:
        name = f"a{char}b"
        for attempt in (create, os.mkdir):
            assert errno_of(attempt, here / name) == errno.EINVAL, name
            assert_alive(drive)
        for src in ("src", "dir"):
            assert errno_of(os.rename, here / src, here / name) == errno.EINVAL, name
            assert_alive(drive)
        # looking such a name up is harmless: it cannot exist
        assert errno_of(os.stat, here / name) in (errno.ENOENT, errno.EINVAL)
    assert sorted(os.listdir(here)) == ["dir", "src"]
    assert remote.names(remote_path(drive, here)) == ["dir", "src"]


def test_statfs_namemax_and_capacity(drive: Drive, server: RunningServer, here: Path):
    def fresh_statvfs() -> os.statvfs_result:
        # a deletion makes the mount ask the server again (it caches the capacity briefly)
        os.mkdir(here / "bump")
        os.rmdir(here / "bump")
        return os.statvfs(drive.path)

    def blocks_after(total: int | None) -> os.statvfs_result:
        server.faults.set_capacity(total)
        return fresh_statvfs()

    st = fresh_statvfs()
    capacity = Remote(server)._run(lambda client: client.capacity())
    assert st.f_namemax == 255
    assert st.f_frsize == STATFS_BLOCK
    assert st.f_blocks == capacity.total // STATFS_BLOCK
    # (an earlier test's upload may still land in between: a little slack)
    assert st.f_bavail == st.f_bfree
    assert abs(st.f_bavail - capacity.free // STATFS_BLOCK) <= 64

    create(here / "used", b"u" * 10_000)
    synced(here / "used")
    try:
        # a server without a limit reports a total of 0: shown as 1 PiB
        st = blocks_after(0)
        assert st.f_blocks == (1 << 50) // STATFS_BLOCK
        assert 0 < st.f_bavail <= st.f_blocks
        # more used than the quota: nothing free, never negative
        st = blocks_after(STATFS_BLOCK)
        assert st.f_blocks == 1 and st.f_bfree == 0 and st.f_bavail == 0
    finally:
        # the mount must not keep the tiny quota for the next tests (close checks it)
        st = blocks_after(None)
    assert st.f_blocks == capacity.total // STATFS_BLOCK


# ---- owners and permissions ------------------------------------------------------------
def test_owner_is_the_mounting_user(drive: Drive, here: Path):
    create(here / "f")
    os.mkdir(here / "d")
    for path, bits in ((here / "f", 0o644), (here / "d", 0o755), (drive.path, 0o755)):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
        assert stat.S_IMODE(st.st_mode) == bits


@pytest.fixture
def shared_mountpoint() -> Iterator[Path]:
    """A mount point another user can reach (pytest's temp dirs are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="cloudfs-semantics-"))
    base.chmod(0o755)
    try:
        yield base / "mnt"
    finally:
        shutil.rmtree(base, ignore_errors=True)


NOBODY_PROBE = r"""
import errno, os, sys
def attempt(what, fn):
    try:
        fn()
        print(what, "ok")
    except OSError as exc:
        print(what, errno.errorcode[exc.errno])
root = sys.argv[1]
attempt("read-0600", lambda: open(root + "/perm/secret", "rb").read())
attempt("read-0644", lambda: open(root + "/perm/public", "rb").read())
attempt("write-0644", lambda: open(root + "/perm/public", "ab").close())
attempt("write-0666", lambda: open(root + "/perm/shared", "ab").write(b"!"))
attempt("list-0700", lambda: os.listdir(root + "/perm/private"))
attempt("create-in-0755", lambda: open(root + "/perm/new", "wb").close())
attempt("chmod-not-owner", lambda: os.chmod(root + "/perm/public", 0o777))
attempt("chown-not-root", lambda: os.chown(root + "/perm/public", 65534, 65534))
"""


def test_owner_options_and_permissions_for_other_users(server: RunningServer, remote: Remote, tmp_path: Path,
                                                         shared_mountpoint: Path):
    # one mount for uid=, gid=, umask= and allow_other (mounts are the slow part)
    remote.put("/perm/default-file", b"x")
    remote.mkdir("/perm/default-folder")
    mnt = Drive(server, shared_mountpoint, tmp_path / "cache",
                options=f"{TEST_OPTIONS},uid=1234,gid=2345,umask=002", extra=("--allow-other",))
    mnt.mount()
    try:
        for path, bits in ((mnt / "perm/default-file", 0o664), (mnt / "perm/default-folder", 0o775),
                           (mnt.path, 0o775)):
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (1234, 2345)
            assert stat.S_IMODE(st.st_mode) == bits
        # files made with explicit bits keep them, whatever the umask option says
        create(mnt / "perm/secret", b"secret", mode=0o600)
        create(mnt / "perm/public", b"public", mode=0o644)
        create(mnt / "perm/shared", b"shared", mode=0o644)
        os.chmod(mnt / "perm/shared", 0o666)
        os.mkdir(mnt / "perm/private", 0o700)
        os.chmod(mnt / "perm", 0o755)
        st = os.stat(mnt / "perm/secret")
        assert (st.st_uid, st.st_gid) == (1234, 2345) and stat.S_IMODE(st.st_mode) == 0o600
        # chown: to the owner the options give, fine; to the mounting user, not
        os.chown(mnt / "perm/secret", 1234, 2345)
        assert errno_of(os.chown, mnt / "perm/secret", os.getuid(), -1) == errno.EPERM

        # another user (nobody: neither owner nor group) gets what the bits say
        probe = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c",
             NOBODY_PROBE, str(mnt.path)],
            capture_output=True, text=True, timeout=60, check=True)
        results = dict(line.split() for line in probe.stdout.splitlines())
        assert results == {
            "read-0600": "EACCES",
            "read-0644": "ok",
            "write-0644": "EACCES",
            "write-0666": "ok",
            "list-0700": "EACCES",
            "create-in-0755": "EACCES",
            "chmod-not-owner": "EPERM",
            "chown-not-root": "EPERM",
        }, probe.stderr
        assert (mnt / "perm/shared").read_bytes() == b"shared!"
        assert_alive(mnt)
    finally:
        mnt.umount()


def test_chown_only_to_the_owner_it_has(drive: Drive, here: Path):
    create(here / "f")
    for uid, gid in ((12345, -1), (-1, 12345), (0 if os.getuid() else 1, -1)):
        assert errno_of(os.chown, here / "f", uid, gid) == errno.EPERM
    os.chown(here / "f", os.getuid(), os.getgid())  # what cp -p and tar do: must work
    os.chown(here / "f", -1, -1)
    os.chown(here, os.getuid(), os.getgid())
    st = os.stat(here / "f")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_chmod_persists_across_remount(drive: Drive, here: Path):
    if not keeps_metadata(drive.server.dialect):
        pytest.skip(f"{drive.server.dialect} keeps no object metadata: chmod lasts only as long as the mount")
    create(here / "f", b"x")
    os.mkdir(here / "d")
    create(here / "made-0600", mode=0o600)
    create(here / "back")
    os.chmod(here / "f", 0o751)
    os.chmod(here / "d", 0o700)
    os.chmod(here / "back", 0o600)
    os.chmod(here / "back", 0o644)  # and back to the default bits
    drive.remount()
    assert stat.S_IMODE(os.stat(here / "f").st_mode) == 0o751
    assert stat.S_IMODE(os.stat(here / "d").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(here / "made-0600").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(here / "back").st_mode) == 0o644


# ---- files ---------------------------------------------------------------------------------
def test_o_excl_on_an_existing_name_is_eexist(drive: Drive, remote: Remote, here: Path):
    create(here / "f", b"mine")
    os.mkdir(here / "d")
    for name in ("f", "d"):
        assert errno_of(create, here / name) == errno.EEXIST
    # created by another client after this mount saw the name missing
    assert not (here / "late").exists()
    remote.put(remote_path(drive, here / "late"), b"theirs")
    assert errno_of(lambda: create(here / "late")) == errno.EEXIST
    assert (here / "f").read_bytes() == b"mine"
    assert remote.get(remote_path(drive, here / "late")) == b"theirs"


def test_o_creat_opens_a_file_another_client_created(drive: Drive, remote: Remote, here: Path):
    # without O_EXCL, O_CREAT on an existing name opens it, even when this
    # mount had just seen the name missing
    assert not (here / "late").exists()
    remote.put(remote_path(drive, here / "late"), b"theirs")
    fd = os.open(here / "late", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.read(fd, 100) == b"theirs"
    finally:
        os.close(fd)
    assert remote.get(remote_path(drive, here / "late")) == b"theirs"
    # what a shell's ">" does: O_CREAT|O_TRUNC replaces the content
    for name in ("overwritten", "folder"):
        assert not (here / name).exists()
    remote.put(remote_path(drive, here / "overwritten"), b"theirs")
    remote.mkdir(remote_path(drive, here / "folder"))
    with open(here / "overwritten", "wb") as fp:
        fp.write(b"mine")
    assert errno_of(os.open, here / "folder", os.O_CREAT | os.O_WRONLY, 0o644) == errno.EISDIR
    synced(here / "overwritten")
    assert remote.get(remote_path(drive, here / "overwritten")) == b"mine"
    assert remote.names(remote_path(drive, here)) == ["folder", "late", "overwritten"]


def test_o_trunc(drive: Drive, remote: Remote, here: Path):
    remote.put(remote_path(drive, here / "f"), b"old content")
    remote.put(remote_path(drive, here / "g"), b"old content")
    fd = os.open(here / "f", os.O_WRONLY | os.O_TRUNC)
    try:
        # at once, before anything is written or uploaded
        assert os.fstat(fd).st_size == 0 and os.stat(here / "f").st_size == 0
        assert (here / "f").read_bytes() == b""
        os.write(fd, b"new")
    finally:
        os.close(fd)
    os.close(os.open(here / "g", os.O_WRONLY | os.O_TRUNC))  # truncation alone reaches the server too
    synced(here / "f")
    synced(here / "g")
    assert remote.get(remote_path(drive, here / "f")) == b"new"
    assert remote.get(remote_path(drive, here / "g")) == b""


def test_o_append_writes_at_the_end(drive: Drive, remote: Remote, here: Path):
    remote.put(remote_path(drive, here / "log"), b"base|")
    appender = os.open(here / "log", os.O_WRONLY | os.O_APPEND)
    other = os.open(here / "log", os.O_WRONLY)
    try:
        os.write(appender, b"1|")
        os.lseek(appender, 0, os.SEEK_SET)
        os.write(appender, b"2|")  # the seek does not matter
        os.pwrite(other, b"X|", os.fstat(other).st_size)  # another descriptor grows the file...
        os.write(appender, b"3|")  # ...and the next append still lands after it
    finally:
        os.close(appender)
        os.close(other)
    assert (here / "log").read_bytes() == b"base|1|2|X|3|"
    synced(here / "log")
    assert remote.get(remote_path(drive, here / "log")) == b"base|1|2|X|3|"


def test_read_sees_what_is_being_written(drive: Drive, remote: Remote, here: Path):
    remote.put(remote_path(drive, here / "f"), b"0123456789")
    reader = os.open(here / "f", os.O_RDONLY)
    writer = os.open(here / "f", os.O_WRONLY)
    try:
        assert os.pread(reader, 100, 0) == b"0123456789"
        os.pwrite(writer, b"abc", 3)
        os.pwrite(writer, b"END", 10)
        # neither descriptor is closed: the data is only local so far
        assert os.pread(reader, 100, 0) == b"012abc6789END"
        with open(here / "f", "rb") as fresh:
            assert fresh.read() == b"012abc6789END"
    finally:
        os.close(writer)
        os.close(reader)


def test_truncate_and_ftruncate_grow_with_zeros(drive: Drive, remote: Remote, here: Path):
    fd = os.open(here / "new", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"abc")
        os.ftruncate(fd, 10_000)
        assert os.fstat(fd).st_size == 10_000
        assert os.pread(fd, 20_000, 0) == b"abc" + b"\0" * 9_997
    finally:
        os.close(fd)
    # a file this mount never read: grown without fetching its content first
    remote.put(remote_path(drive, here / "remote"), b"xyz" * 1000)
    os.truncate(here / "remote", 1 << 20)
    expected = b"xyz" * 1000 + b"\0" * ((1 << 20) - 3000)
    assert (here / "remote").read_bytes() == expected
    synced(here / "new")
    synced(here / "remote")
    assert remote.get(remote_path(drive, here / "new")) == b"abc" + b"\0" * 9_997
    assert remote.get(remote_path(drive, here / "remote")) == expected


def test_fallocate_is_eopnotsupp_and_posix_fallocate_falls_back(drive: Drive, remote: Remote, here: Path):
    fd = os.open(here / "f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"data")
        assert errno_of(lambda: fallocate(fd, 0, 8192)) == errno.EOPNOTSUPP
        assert os.fstat(fd).st_size == 4
        # glibc then writes zeros itself, leaving existing data alone
        os.posix_fallocate(fd, 0, 10_000)
        assert os.fstat(fd).st_size == 10_000
        assert os.pread(fd, 20_000, 0) == b"data" + b"\0" * 9_996
    finally:
        os.close(fd)
    synced(here / "f")
    assert remote.get(remote_path(drive, here / "f")) == b"data" + b"\0" * 9_996
    assert_alive(drive)


def test_hard_links_and_special_files_are_eperm(drive: Drive, here: Path):
    # (symbolic links work: tests/mount/test_links.py)
    create(here / "f")
    attempts: list[Callable[[], object]] = [
        lambda: os.link(here / "f", here / "hardlink"),
        lambda: os.mkfifo(here / "fifo"),
        lambda: os.mknod(here / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
        lambda: os.mknod(here / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0)),
    ]
    for attempt in attempts:
        assert errno_of(attempt) == errno.EPERM
        assert_alive(drive)
    with socket.socket(socket.AF_UNIX) as sock:
        assert errno_of(lambda: sock.bind(str(here / "socket"))) == errno.EPERM
    assert os.listdir(here) == ["f"]


# ---- times ---------------------------------------------------------------------------------
def test_touch_a_keeps_the_exact_mtime(drive: Drive, here: Path):
    # touch -a: futimens on an O_WRONLY descriptor, UTIME_OMIT for the mtime;
    # opening for writing stages the file, which showed the server's own time
    path = here / "f"
    create(path, b"t")
    synced(path)
    stamp = 1_600_000_000_123_456_789
    os.utime(path, ns=(stamp, stamp))
    subprocess.run(["touch", "-a", "-d", "@1500000000", str(path)], check=True)
    st = os.stat(path)
    assert st.st_mtime_ns == stamp and st.st_atime_ns == 1_500_000_000 * 10**9


def test_folder_times_follow_changes_of_its_children(server: RunningServer, tmp_path: Path):
    # rsync -a, make and file managers read a folder's mtime: it changed on no
    # create, remove or rename inside (the servers keep no such time), and a
    # chmod changed no ctime
    if server.dialect == "koodrive":
        pytest.skip("KooDrive's item times are whole seconds: a folder's server time can pass the mount's own")
    with mounted(server, tmp_path, options=TEST_OPTIONS + ",metadata_ttl=1") as d:
        folder = d.path / "times"
        folder.mkdir()
        (folder / "keep").write_bytes(b"k")
        stamp = 1_600_000_000_000_000_000
        changes = {
            "create": lambda: (folder / "new").write_bytes(b"n"),
            "mkdir": lambda: (folder / "sub").mkdir(),
            "rename inside": lambda: (folder / "new").rename(folder / "renamed"),
            "unlink": lambda: (folder / "renamed").unlink(),
            "rmdir": lambda: (folder / "sub").rmdir(),
            "move in": lambda: (d.path / "outside").rename(folder / "moved-in"),
            "move out": lambda: (folder / "moved-in").rename(d.path / "outside"),
            "symlink": lambda: (folder / "link").symlink_to("keep"),
        }
        (d.path / "outside").write_bytes(b"o")
        for what, change in changes.items():
            os.utime(folder, ns=(stamp, stamp))
            assert os.stat(folder).st_mtime_ns == stamp, what  # an explicit time is shown exactly
            before = time.time_ns()
            change()
            changed = os.stat(folder)
            assert changed.st_mtime_ns >= before - 10**9, what
            assert changed.st_ctime_ns >= changed.st_mtime_ns, what
            time.sleep(1.5)  # past the metadata TTL: the listing and the folder's entry are fetched anew
            later = os.stat(folder)
            assert (later.st_mtime_ns, later.st_ctime_ns) == (changed.st_mtime_ns, changed.st_ctime_ns), what
        # a chmod changes the ctime, not the mtime
        os.utime(folder, ns=(stamp, stamp))
        before = time.time_ns()
        folder.chmod(0o700)
        st = os.stat(folder)
        assert st.st_mtime_ns == stamp and st.st_ctime_ns >= before - 10**9
        time.sleep(1.5)
        assert os.stat(folder).st_ctime_ns == st.st_ctime_ns


def test_utimensat_now_and_omit(drive: Drive, remote: Remote, here: Path):
    path = here / "f"
    create(path, b"t")
    synced(path)
    stamp = 1_600_000_000_123_456_789
    os.utime(path, ns=(stamp, stamp))
    st = os.stat(path)
    assert st.st_mtime_ns == stamp and st.st_atime_ns == stamp

    # UTIME_OMIT on the mtime: only the atime was asked for, the mtime stays
    utimensat(path, (1_500_000_000, 0), (0, UTIME_OMIT))
    assert os.stat(path).st_mtime_ns == stamp
    assert os.stat(path).st_atime_ns == 1_500_000_000 * 10**9  # kept (in the mount's memory)
    utimensat(path, (0, UTIME_NOW), (0, UTIME_OMIT))
    assert os.stat(path).st_mtime_ns == stamp
    utimensat(path, (0, UTIME_OMIT), (0, UTIME_OMIT))
    assert os.stat(path).st_mtime_ns == stamp

    # UTIME_OMIT on the atime, an exact mtime
    utimensat(path, (0, UTIME_OMIT), (1_700_000_000, 987_654_321))
    assert os.stat(path).st_mtime_ns == 1_700_000_000_987_654_321

    # UTIME_NOW on the mtime, and a NULL times (both now)
    for change in (lambda: utimensat(path, (0, UTIME_OMIT), (0, UTIME_NOW)), lambda: os.utime(path)):
        before = time.time_ns()
        change()
        after = time.time_ns()
        assert before - 10**9 <= os.stat(path).st_mtime_ns <= after + 10**9
        os.utime(path, ns=(stamp, stamp))

    # kept on the server exactly, not rounded to Cloudreve's milliseconds
    # (Cloudreve 3 has no metadata: there the time lives in the mount only)
    if keeps_metadata(drive.server.dialect):
        entry = remote.stat(remote_path(drive, path))
        assert (attrs.stored_mtime_ns(entry) or entry.mtime_ns) == stamp


def test_utime_of_a_file_being_written_is_kept(drive: Drive, remote: Remote, here: Path):
    stamp = 1_234_567_890_000_000_001
    fd = os.open(here / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"content")
        os.utime(here / "f", ns=(stamp, stamp))
    finally:
        os.close(fd)
    assert os.stat(here / "f").st_mtime_ns == stamp
    synced(here / "f")
    assert os.stat(here / "f").st_mtime_ns == stamp
    # Cloudreve 3 has no metadata (and its replace-by-rename resets the time):
    # there the time lives in this mount only
    if keeps_metadata(drive.server.dialect):
        entry = remote.stat(remote_path(drive, here / "f"))
        assert (attrs.stored_mtime_ns(entry) or entry.mtime_ns) == stamp


# ---- folders -------------------------------------------------------------------------------
def test_mkdir_of_an_existing_name_is_eexist(drive: Drive, remote: Remote, here: Path):
    os.mkdir(here / "d")
    create(here / "f")
    for name in ("d", "f"):
        assert errno_of(os.mkdir, here / name) == errno.EEXIST
    assert not (here / "late").exists()
    remote.mkdir(remote_path(drive, here / "late"))
    assert errno_of(lambda: os.mkdir(here / "late")) == errno.EEXIST
    assert sorted(os.listdir(here)) == ["d", "f", "late"]


def test_rmdir_of_a_non_empty_folder_is_enotempty(drive: Drive, remote: Remote, here: Path):
    os.makedirs(here / "full" / "sub")
    assert errno_of(lambda: os.rmdir(here / "full")) == errno.ENOTEMPTY
    # a folder this mount made (so it "knows" it is empty) that another client filled
    os.mkdir(here / "filled")
    assert os.listdir(here / "filled") == []
    remote.put(remote_path(drive, here / "filled" / "theirs"), b"keep me")
    assert errno_of(lambda: os.rmdir(here / "filled")) == errno.ENOTEMPTY
    assert remote.get(remote_path(drive, here / "filled" / "theirs")) == b"keep me"
    create(here / "file")
    assert errno_of(lambda: os.rmdir(here / "file")) == errno.ENOTDIR
    os.rmdir(here / "full" / "sub")
    os.rmdir(here / "full")
    assert sorted(os.listdir(here)) == ["file", "filled"]


# ---- rename ----------------------------------------------------------------------------------
def test_rename_keeps_the_inode(drive: Drive, remote: Remote, here: Path):
    os.makedirs(here / "a" / "inner")
    os.mkdir(here / "b")
    create(here / "a" / "f", b"f")
    create(here / "a" / "inner" / "g", b"g")
    f_ino = os.stat(here / "a" / "f").st_ino
    dir_ino = os.stat(here / "a" / "inner").st_ino
    g_ino = os.stat(here / "a" / "inner" / "g").st_ino
    os.rename(here / "a" / "f", here / "a" / "f2")  # within a folder
    assert os.stat(here / "a" / "f2").st_ino == f_ino
    os.rename(here / "a" / "f2", here / "b" / "f2")  # across folders, same name
    assert os.stat(here / "b" / "f2").st_ino == f_ino
    os.rename(here / "b" / "f2", here / "a" / "f3")  # across folders and renamed
    assert os.stat(here / "a" / "f3").st_ino == f_ino
    os.rename(here / "a" / "inner", here / "a" / "inner2")  # a folder with contents
    assert os.stat(here / "a" / "inner2").st_ino == dir_ino
    os.rename(here / "a" / "inner2", here / "b" / "moved")
    assert os.stat(here / "b" / "moved").st_ino == dir_ino
    assert os.stat(here / "b" / "moved" / "g").st_ino == g_ino
    assert (here / "b" / "moved" / "g").read_bytes() == b"g"
    # the content of f (now f3) may still be uploading: on v3 an upload replaces
    # the file through a delete and a rename, so the name is briefly absent there
    wait_until(lambda: remote.names(remote_path(drive, here / "a")) == ["f3"], timeout=30)
    assert remote.names(remote_path(drive, here / "b")) == ["moved"]
    synced(here / "b" / "moved" / "g")  # its upload, paused by each rename, may still be due
    assert remote.get(remote_path(drive, here / "b" / "moved" / "g")) == b"g"


def test_rename_over_a_file_or_an_empty_folder_replaces_it(drive: Drive, remote: Remote, here: Path):
    create(here / "new", b"new")
    create(here / "old", b"old")
    os.makedirs(here / "sub")
    create(here / "sub" / "elsewhere", b"elsewhere")
    synced(here / "new")
    synced(here / "old")
    ino = os.stat(here / "new").st_ino
    os.rename(here / "new", here / "old")
    assert (here / "old").read_bytes() == b"new" and os.stat(here / "old").st_ino == ino
    os.rename(here / "old", here / "sub" / "elsewhere")  # over a file in another folder
    assert (here / "sub" / "elsewhere").read_bytes() == b"new"

    os.makedirs(here / "src" / "content")
    os.mkdir(here / "empty")
    os.rename(here / "src", here / "empty")
    assert os.listdir(here / "empty") == ["content"]
    assert sorted(os.listdir(here)) == ["empty", "sub"]
    # nothing left behind on the server (no old version, no temporary name)
    assert remote.names(remote_path(drive, here)) == ["empty", "sub"]
    assert remote.names(remote_path(drive, here / "sub")) == ["elsewhere"]
    assert remote.get(remote_path(drive, here / "sub" / "elsewhere")) == b"new"


def test_rename_onto_itself_is_a_no_op(drive: Drive, remote: Remote, here: Path):
    create(here / "f", b"same")
    synced(here / "f")  # on the server before its listing is compared (a replace beside is listed mid-swap)
    os.mkdir(here / "d")
    ino = os.stat(here / "f").st_ino
    os.rename(here / "f", here / "f")
    os.rename(here / "d", here / "d")
    renameat2(here / "f", here / "f", 0)
    assert (here / "f").read_bytes() == b"same" and os.stat(here / "f").st_ino == ino
    assert sorted(os.listdir(here)) == ["d", "f"]
    assert remote.names(remote_path(drive, here)) == ["d", "f"]


def test_rename_refusals(drive: Drive, remote: Remote, here: Path):
    os.makedirs(here / "dir" / "sub")
    os.makedirs(here / "full" / "inner")
    os.mkdir(here / "empty")
    os.mkdir(here / "theirs")
    create(here / "file", b"file")
    synced(here / "file")  # on the server before its listing is compared (a replace beside is listed mid-swap)
    cases = [
        (here / "dir", here / "dir" / "sub" / "inside", errno.EINVAL),  # into its own subtree
        (here / "dir", here / "dir" / "inside", errno.EINVAL),
        (here / "empty", here / "full", errno.ENOTEMPTY),
        (here / "file", here / "empty", errno.EISDIR),
        (here / "dir", here / "file", errno.ENOTDIR),
    ]
    for src, dst, code in cases:
        assert errno_of(os.rename, src, dst) == code, (src.name, dst.name)
        assert_alive(drive)
    # non-empty only on the server: the check asks it, not the cache
    assert os.listdir(here / "theirs") == []
    remote.put(remote_path(drive, here / "theirs" / "x"), b"x")
    assert errno_of(lambda: os.rename(here / "empty", here / "theirs")) == errno.ENOTEMPTY
    assert sorted(os.listdir(here)) == ["dir", "empty", "file", "full", "theirs"]
    assert remote.names(remote_path(drive, here)) == ["dir", "empty", "file", "full", "theirs"]
    assert remote.get(remote_path(drive, here / "theirs" / "x")) == b"x"


def test_rename_over_a_file_puts_it_back_when_the_move_fails(drive: Drive, server: RunningServer,
                                                             remote: Remote, here: Path):
    create(here / "keep", b"keep")
    create(here / "ghost", b"ghost")
    synced(here / "keep")
    synced(here / "ghost")
    assert os.stat(here / "ghost").st_size == 5  # the mount knows it...
    ghost = remote_path(drive, here / "ghost")
    Remote(server)._run(lambda client: client.delete([ghost], permanent=True))  # ...another client deletes it
    # the target was moved aside first: the failed move of the source puts it back
    assert errno_of(os.rename, here / "ghost", here / "keep") == errno.ENOENT
    assert (here / "keep").read_bytes() == b"keep"
    assert remote.names(remote_path(drive, here)) == ["keep"]
    assert remote.get(remote_path(drive, here / "keep")) == b"keep"
    assert_alive(drive)
    # the test server reuses the id of the newest object once it is deleted
    # (real Cloudreve never does): let a file the mount never sees take it,
    # so the next test's objects cannot land on this mount's "ghost" inode
    remote.put(f"/spare-{uuid.uuid4().hex[:8]}", b"")


def test_rename_noreplace(drive: Drive, remote: Remote, here: Path):
    create(here / "a", b"a")
    create(here / "b", b"b")
    assert errno_of(lambda: renameat2(here / "a", here / "b", RENAME_NOREPLACE)) == errno.EEXIST
    assert (here / "a").read_bytes() == b"a" and (here / "b").read_bytes() == b"b"
    renameat2(here / "a", here / "c", RENAME_NOREPLACE)  # a free name: an ordinary rename
    assert sorted(os.listdir(here)) == ["b", "c"]
    synced(here / "c")
    assert remote.get(remote_path(drive, here / "c")) == b"a"


def test_rename_exchange(drive: Drive, remote: Remote, here: Path):
    os.makedirs(here / "left")
    os.makedirs(here / "right" / "folder")
    create(here / "left" / "file", b"left file")
    create(here / "right" / "file", b"right file")
    create(here / "right" / "folder" / "child", b"child")
    ino_l, ino_r = os.stat(here / "left" / "file").st_ino, os.stat(here / "right" / "file").st_ino
    renameat2(here / "left" / "file", here / "right" / "file", RENAME_EXCHANGE)  # across folders
    assert (here / "left" / "file").read_bytes() == b"right file"
    assert (here / "right" / "file").read_bytes() == b"left file"
    assert os.stat(here / "left" / "file").st_ino == ino_r and os.stat(here / "right" / "file").st_ino == ino_l
    # a file and a folder
    renameat2(here / "left" / "file", here / "right" / "folder", RENAME_EXCHANGE)
    assert (here / "right" / "folder").read_bytes() == b"right file"
    assert os.listdir(here / "left" / "file") == ["child"]
    assert errno_of(lambda: renameat2(here / "left" / "file", here / "left" / "missing", RENAME_EXCHANGE)) \
        == errno.ENOENT
    for path in (here / "right" / "file", here / "right" / "folder", here / "left" / "file" / "child"):
        synced(path)
    assert remote.get(remote_path(drive, here / "right" / "file")) == b"left file"
    assert remote.get(remote_path(drive, here / "right" / "folder")) == b"right file"
    assert remote.get(remote_path(drive, here / "left" / "file" / "child")) == b"child"
    assert remote.names(remote_path(drive, here / "left")) == ["file"]
    assert remote.names(remote_path(drive, here / "right")) == ["file", "folder"]


# ---- deletion --------------------------------------------------------------------------------
def test_unlinked_open_file_stays_usable_and_is_not_uploaded(drive: Drive, remote: Remote, here: Path):
    remote.put(remote_path(drive, here / "f"), b"on the server")
    fd = os.open(here / "f", os.O_RDWR)
    try:
        assert os.pread(fd, 100, 0) == b"on the server"
        os.unlink(here / "f")
        assert not (here / "f").exists()
        assert os.pread(fd, 100, 0) == b"on the server"
        assert os.fstat(fd).st_nlink == 0
        os.pwrite(fd, b"ON", 0)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, b"!")
        assert os.pread(fd, 100, 0) == b"ON the server!"
        os.fsync(fd)
        time.sleep(1.2)  # past the attribute timeout: fstat asks the mount, not the kernel's copy
        assert os.fstat(fd).st_nlink == 0
        # a new file of the same name is a different file
        create(here / "f", b"newcomer")
        assert os.pread(fd, 100, 0) == b"ON the server!"
    finally:
        os.close(fd)
    time.sleep(1)  # well past upload_delay: whatever would be uploaded would be by now
    assert remote.names(remote_path(drive, here)) == ["f"]
    assert remote.get(remote_path(drive, here / "f")) == b"newcomer"


def test_renamed_over_open_file_is_not_uploaded(drive: Drive, remote: Remote, here: Path):
    remote.put(remote_path(drive, here / "target"), b"original")
    fd = os.open(here / "target", os.O_RDWR)
    try:
        os.pwrite(fd, b"EDIT", 0)  # pending local changes when the rename lands
        create(here / "incoming", b"replacement")
        os.rename(here / "incoming", here / "target")
        os.pwrite(fd, b"MORE", 4)
        assert os.pread(fd, 100, 0) == b"EDITMORE"
    finally:
        os.close(fd)
    assert (here / "target").read_bytes() == b"replacement"
    synced(here / "target")
    time.sleep(1)
    assert remote.names(remote_path(drive, here)) == ["target"]
    assert remote.get(remote_path(drive, here / "target")) == b"replacement"


def test_open_file_reads_on_after_a_rename(drive: Drive, remote: Remote, here: Path):
    # a player keeps reading a file someone moves: the open descriptor
    # follows the object, not the name it was opened under
    data = os.urandom(3 << 20)
    remote.put(remote_path(drive, here / "a" / "f"), data)
    remote.put(remote_path(drive, here / "a" / "g"), data)
    os.mkdir(here / "b")
    fresh = os.open(here / "a" / "f", os.O_RDONLY)  # nothing read before the rename
    started = os.open(here / "a" / "g", os.O_RDONLY)  # a first piece read before
    try:
        assert os.pread(started, 4096, 0) == data[:4096]
        os.rename(here / "a" / "f", here / "b" / "f2")
        os.rename(here / "a", here / "moved")
        assert os.pread(fresh, len(data), 0) == data
        assert os.pread(started, len(data), 0) == data
    finally:
        os.close(fresh)
        os.close(started)


def test_file_being_written_survives_a_rename(drive: Drive, remote: Remote, here: Path):
    # only the first bytes are changed: the rest of the old content (not
    # downloaded yet) must still be found, under the new name, for reads
    # and for the upload
    data = os.urandom(3 << 20)
    remote.put(remote_path(drive, here / "f"), data)
    fd = os.open(here / "f", os.O_RDWR)
    try:
        os.pwrite(fd, b"HEAD", 0)
        os.mkdir(here / "sub")
        os.rename(here / "f", here / "sub" / "g")
        expected = b"HEAD" + data[4:]
        assert os.pread(fd, len(data), 0) == expected
    finally:
        os.close(fd)
    synced(here / "sub" / "g")
    assert remote.get(remote_path(drive, here / "sub" / "g")) == expected
    # the same without reading back: only the upload needs the old content
    remote.put(remote_path(drive, here / "h"), data)
    fd = os.open(here / "h", os.O_WRONLY)
    try:
        os.pwrite(fd, b"HEAD", 0)
        os.rename(here / "h", here / "sub" / "h2")
    finally:
        os.close(fd)
    synced(here / "sub" / "h2")
    assert remote.get(remote_path(drive, here / "sub" / "h2")) == expected
    assert remote.names(remote_path(drive, here)) == ["sub"]


def test_unlinked_open_file_stays_readable_with_the_recycle_bin(server: RunningServer, remote: Remote,
                                                                  tmp_path: Path):
    # the default deletion moves to the recycle bin: the path is gone, the
    # descriptors opened before must still read the whole content
    mnt = Drive(server, tmp_path / "mnt", tmp_path / "cache", options="upload_delay=0.2")
    data = os.urandom(3 << 20)
    remote.put_many({"/trash/unlinked": data, "/trash/replaced": data})
    mnt.mount()
    try:
        unlinked = os.open(mnt / "trash/unlinked", os.O_RDONLY)
        replaced = os.open(mnt / "trash/replaced", os.O_RDONLY)
        try:
            os.unlink(mnt / "trash/unlinked")
            create(mnt / "trash/new", b"new")
            os.rename(mnt / "trash/new", mnt / "trash/replaced")
            assert os.pread(unlinked, len(data), 0) == data
            assert os.pread(replaced, len(data), 0) == data
        finally:
            os.close(unlinked)
            os.close(replaced)
        assert sorted(os.listdir(mnt / "trash")) == ["replaced"]
        assert (mnt / "trash/replaced").read_bytes() == b"new"
    finally:
        mnt.umount()
    assert remote.names("/trash") == ["replaced"]


def test_unlinked_file_being_written_keeps_its_unwritten_part(drive: Drive, remote: Remote, here: Path):
    # only the head was rewritten when the file was unlinked: the rest,
    # never downloaded, must still read back through the open descriptor
    data = os.urandom(3 << 20)
    remote.put(remote_path(drive, here / "f"), data)
    fd = os.open(here / "f", os.O_RDWR)
    try:
        os.pwrite(fd, b"HEAD", 0)
        os.unlink(here / "f")
        assert os.pread(fd, len(data), 0) == b"HEAD" + data[4:]
    finally:
        os.close(fd)
    time.sleep(1)  # past upload_delay: nothing may come back
    assert remote.names(remote_path(drive, here)) == []


def test_pending_uploads_follow_renames_and_exchanges(drive: Drive, remote: Remote, here: Path):
    # content still only local when its name changes lands under the new name
    os.makedirs(here / "d")
    create(here / "other", b"other")
    synced(here / "other")
    in_folder = os.open(here / "d" / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    swapped = os.open(here / "mine", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(in_folder, b"in a moved folder")
        os.write(swapped, b"mine")
        os.rename(here / "d", here / "d2")
        renameat2(here / "mine", here / "other", RENAME_EXCHANGE)
        os.write(in_folder, b", still")
    finally:
        os.close(in_folder)
        os.close(swapped)
    synced(here / "d2" / "f")
    synced(here / "other")
    assert remote.get(remote_path(drive, here / "d2" / "f")) == b"in a moved folder, still"
    assert remote.get(remote_path(drive, here / "other")) == b"mine"
    assert remote.get(remote_path(drive, here / "mine")) == b"other"
    assert remote.names(remote_path(drive, here)) == ["d2", "mine", "other"]


def test_unlink_of_a_file_waiting_for_upload_uploads_nothing(drive: Drive, remote: Remote, here: Path):
    create(here / "gone", b"x" * 100_000)  # closed: its upload is due in upload_delay
    os.unlink(here / "gone")
    time.sleep(1)
    assert remote.names(remote_path(drive, here)) == []
    assert not (here / "gone").exists()


def test_mode_and_mtime_follow_a_rename(drive: Drive, remote: Remote, here: Path):
    os.mkdir(here / "sub")
    create(here / "f", b"f")
    synced(here / "f")
    os.chmod(here / "f", 0o600)
    os.utime(here / "f", ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))
    os.rename(here / "f", here / "f2")  # within the folder
    st = os.stat(here / "f2")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == 1_500_000_000_000_000_001
    os.rename(here / "f2", here / "sub" / "g")  # across folders
    st = os.stat(here / "sub" / "g")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == 1_500_000_000_000_000_001
    if keeps_metadata(drive.server.dialect):  # elsewhere (v3, KooDrive): kept by this mount only
        entry = remote.stat(remote_path(drive, here / "sub" / "g"))
        assert attrs.stored_mode(entry) == 0o600
        assert (attrs.stored_mtime_ns(entry) or entry.mtime_ns) == 1_500_000_000_000_000_001
