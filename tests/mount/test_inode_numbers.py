"""A file keeps its inode number (st_ino) while its uploads land.

git's index, rsync's hard-link detection, tar and editors remember st_ino: a
file whose number changes looks like another file (git status hashes it
again).  A file created here gets its server id when its upload lands, and
where a replace gives a new id (Cloudreve 3, KooDrive) every rewrite does; a
server answer read just before such a landing and handed on after it must
neither show the file under a new inode nor hide it, and the kernel
forgetting an idle inode must not renumber it either.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer
from tests.mount.conftest import TEST_OPTIONS, Drive, mounted, run_cloudfs, synced, wait_until

ON_KOODRIVE = True

#: the kernel asks again after 1 s (and forgets idle inodes then): stale answers meet the next lookup
#: (no change feed: where the server has one, it would keep listings for long)
SHORT_TTL = TEST_OPTIONS + ",metadata_ttl=1,events=off"

#: a request of a folder listing whose answer the server can hold back without
#: holding back an upload into the folder (Cloudreve 3 lists the folder's
#: parent alongside, for the folder's own times; its replace lists the folder)
HELD_LISTING = {"v3": r"^/api/v3/directory/$", "v4": r"^/api/v4/file$", "koodrive": r"/files/0$"}


def wait_for_uploads(drive: Drive) -> None:
    def idle() -> bool:
        out = run_cloudfs("status", str(drive.path), "--json", check=True)
        return not json.loads(out.stdout)[0]["uploads"]

    wait_until(idle, timeout=120, interval=0.2)


@pytest.mark.parametrize("file", ["new", "rewritten"])
def test_a_listing_asked_for_before_an_upload_lands_keeps_the_file_and_its_inode(
        server: RunningServer, tmp_path: Path, dialect: str, file: str):
    # Cloudreve 3, before: the rewritten file showed under a new inode at each
    # listing (3 -> 4 -> 5), the new one vanished (ls empty, open ENOENT)
    with mounted(server, tmp_path, options=SHORT_TTL) as drive:
        folder = drive / file
        folder.mkdir()
        path = folder / "f"
        if file == "rewritten":
            path.write_bytes(b"one")
            synced(path)
        time.sleep(1.2)  # the folder's cached listing has expired: the next one asks the server
        listed: list[list[str]] = []
        with open(path, "wb") as fp:
            ino = os.fstat(fp.fileno()).st_ino
            fp.write(b"two")
            server.faults.set(path_regex=HELD_LISTING[dialect], reply_delay_s=3.0, count=1)
            lister = threading.Thread(target=lambda: listed.append(os.listdir(folder)))
            lister.start()
            try:
                # the listing was read, its answer waits; the close lets the upload go meanwhile
                wait_until(lambda: server.faults.stats()["reply_delay"] >= 1, timeout=10, interval=0.02)
            except AssertionError:
                lister.join()
                raise
        lister.join()
        server.faults.clear()
        assert listed == [["f"]]
        assert os.stat(path).st_ino == ino
        synced(path)
        for _ in range(5):
            assert os.listdir(folder) == ["f"]
            assert os.stat(path).st_ino == ino
            time.sleep(0.4)  # past the TTL now and then: listed and looked up again
        assert path.read_bytes() == b"two"


def test_git_status_after_a_clone_hashes_nothing_again(server: RunningServer, tmp_path: Path):
    source = tmp_path / "source"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", str(source)], check=True, env=env)
    for d in range(20):
        (source / f"d{d}").mkdir()
        for f in range(10):
            (source / f"d{d}" / f"f{f}.txt").write_text(f"file {d}/{f}\n" * (d * 10 + f))
    subprocess.run(["git", "-C", str(source), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(source), "commit", "-qm", "c"], check=True, env=env)
    with mounted(server, tmp_path / "m", options=SHORT_TTL) as drive:
        clone = drive / "clone"
        subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True, env=env)
        wait_for_uploads(drive)
        time.sleep(1.2)  # past the TTL: every name is looked up again
        # the index keeps each file's st_ino (its low 32 bits): one that changed is hashed again (and
        # git then rewrites the index); none may have
        debug = subprocess.run(["git", "-C", str(clone), "ls-files", "--debug"], check=True, env=env,
                               capture_output=True, text=True).stdout
        recorded = dict(zip(re.findall(r"^(\S.*)$", debug, re.M), map(int, re.findall(r"ino: (\d+)", debug))))
        assert len(recorded) == 200
        changed = {name for name, ino in recorded.items() if os.lstat(clone / name).st_ino & 0xFFFFFFFF != ino}
        assert not changed
        status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, env=env,
                                capture_output=True, text=True)
        assert status.stdout == ""


#: a worktree file git opened for reading, in ``strace -e trace=open,openat`` (git runs in the
#: worktree: its paths are relative; .git/ is not the worktree)
OPENED = re.compile(r'^\d+ +open(?:at)?\((?:AT_FDCWD, )?"(?!\.git[/"]|/)[^"]+", O_RDONLY(?![^)]*O_DIRECTORY)[^)]*\) = \d+',
                    re.M)
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")


def index_stats(clone: Path) -> dict[str, tuple[int, int, int, int]]:
    """What git's index holds of each file: (ctime, mtime (ns), ino (32 bits, as git keeps it), size)."""
    debug = subprocess.run(["git", "-C", str(clone), "ls-files", "--debug"], check=True, env=GIT_ENV,
                           capture_output=True, text=True).stdout
    found = re.findall(r"^(\S.*)\n  ctime: (\d+):(\d+)\n  mtime: (\d+):(\d+)\n  dev: \d+\tino: (\d+)\n"
                       r"  uid: \d+\tgid: \d+\n  size: (\d+)", debug, re.M)
    return {name: (int(cs) * 10**9 + int(cn), int(ms) * 10**9 + int(mn), int(ino), int(size))
            for name, cs, cn, ms, mn, ino, size in found}


def shown_stats(clone: Path, names: list[str]) -> dict[str, tuple[int, int, int, int]]:
    shown = {}
    for name in names:
        st = os.lstat(clone / name)
        shown[name] = (st.st_ctime_ns, st.st_mtime_ns, st.st_ino & 0xFFFFFFFF, st.st_size)
    return shown


def test_git_status_after_a_remount_reads_no_file(server: RunningServer, tmp_path: Path):
    # before: every file showed another inode number after the remount (179 -> 4) and
    # another ctime (the mount's clock while its upload waited, then the server's), so
    # git read (downloaded) and hashed every file of the clone again
    source = tmp_path / "source"
    subprocess.run(["git", "init", "-q", str(source)], check=True, env=GIT_ENV)
    for d in range(6):
        (source / f"d{d}").mkdir()
        for f in range(10):
            (source / f"d{d}" / f"f{f}.txt").write_text(f"file {d}/{f}\n" * (d * 10 + f + 1))
    subprocess.run(["git", "-C", str(source), "add", "-A"], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(source), "commit", "-qm", "c"], check=True, env=GIT_ENV)
    with mounted(server, tmp_path / "m") as drive:
        clone = drive / "clone-remounted"  # (the module's server: another test made "clone")
        subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True, env=GIT_ENV)
        # git keeps times to the second: files written in the second its index was are
        # "racily clean", read again by every git status until one writes the index later
        # (on any filesystem): this one does
        time.sleep(1.1)
        subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, env=GIT_ENV,
                       capture_output=True)
        wait_for_uploads(drive)
        indexed = index_stats(clone)
        assert len(indexed) == 60
        before = shown_stats(clone, sorted(indexed))
        drive.remount()
        after = shown_stats(clone, sorted(indexed))
        # (ctime, mtime, ino, size) of the files whose stat changed: (before, after)
        assert [(n, before[n], after[n]) for n in before if before[n] != after[n]][:3] == []
        assert [(n, indexed[n], after[n]) for n in indexed if indexed[n] != after[n]][:3] == []
        trace = tmp_path / "git-status.strace"
        status = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace),
                                 "git", "-C", str(clone), "status", "--porcelain"], check=True, env=GIT_ENV,
                                capture_output=True, text=True)
        assert status.stdout == ""
        assert OPENED.findall(trace.read_text()) == []  # no file read (on a cold cache: downloaded) and hashed
        # a time set through the mount is shown over the one recorded with the upload, in the next mount too
        touched = clone / "d1" / "f1.txt"
        os.utime(touched, ns=(1_500_000_000_123_000_000, 1_500_000_000_123_000_000))
        assert os.lstat(touched).st_mtime_ns == 1_500_000_000_123_000_000
        ctime = os.lstat(touched).st_ctime_ns
        assert ctime > after["d1/f1.txt"][0]
        drive.remount()
        assert (os.lstat(touched).st_mtime_ns, os.lstat(touched).st_ctime_ns) == (1_500_000_000_123_000_000, ctime)
