"""Symbolic links through a real mount, on both dialects.

A link is a small file holding its target: on Cloudreve 4 under its own name
with a metadata mark, on Cloudreve 3 (no metadata) as rclone's ``NAME.rclonelink``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from cloudfs.client.models import LINK_KEY
from cloudfs.server.testing import RunningServer
from tests.mount.conftest import Drive, Remote, have


ON_KOODRIVE = True


@pytest.fixture
def top(drive: Drive) -> Path:
    path = drive / f"links-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def stored(dialect: str, name: str) -> str:
    """The server's name of the link ``name``."""
    return name if dialect == "v4" else f"{name}.rclonelink"


def test_symlink_readlink_lstat(top: Path, drive: Drive, server: RunningServer, dialect: str) -> None:
    (top / "target.txt").write_bytes(b"pointed at")
    os.symlink("target.txt", top / "rel")
    os.symlink("/etc/hostname", top / "abs")
    assert os.readlink(top / "rel") == "target.txt"
    assert os.readlink(top / "abs") == "/etc/hostname"
    st = os.lstat(top / "rel")
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("target.txt")
    assert (top / "rel").read_bytes() == b"pointed at"  # the kernel follows it through the mount
    assert sorted(os.listdir(top)) == ["abs", "rel", "target.txt"]
    with pytest.raises(OSError) as info:
        os.readlink(top / "target.txt")
    assert info.value.errno == errno.EINVAL
    with pytest.raises(FileExistsError):
        os.symlink("elsewhere", top / "rel")
    # on the server (umount uploads): a small file holding the target, marked as a link
    drive.remount()
    remote = Remote(server)
    folder = "/" + top.name
    assert remote.get(f"{folder}/{stored(dialect, 'rel')}") == b"target.txt"
    if dialect == "v4":
        assert remote.stat(f"{folder}/rel").metadata.get(LINK_KEY) == "1"
    # and the mount shows them as links from the server's answer alone
    assert os.readlink(top / "rel") == "target.txt"
    assert stat.S_ISLNK(os.lstat(top / "abs").st_mode)
    assert sorted(os.listdir(top)) == ["abs", "rel", "target.txt"]


def test_rename_and_unlink_a_link(top: Path, drive: Drive, server: RunningServer) -> None:
    os.symlink("a/b/c", top / "first")
    os.rename(top / "first", top / "second")
    assert os.readlink(top / "second") == "a/b/c"
    assert not os.path.lexists(top / "first")
    (top / "sub").mkdir()
    os.rename(top / "second", top / "sub" / "third")
    assert os.readlink(top / "sub" / "third") == "a/b/c"
    # a link replacing a file, and a file replacing a link
    (top / "plain").write_bytes(b"plain")
    os.rename(top / "sub" / "third", top / "plain")
    assert os.readlink(top / "plain") == "a/b/c"
    (top / "other").write_bytes(b"other")
    os.rename(top / "other", top / "plain")
    assert not os.path.islink(top / "plain") and (top / "plain").read_bytes() == b"other"
    os.symlink("x", top / "gone")
    os.unlink(top / "gone")
    assert not os.path.lexists(top / "gone")
    drive.remount()  # uploads what is pending
    remote = Remote(server)
    names = remote.names("/" + top.name)
    assert names == ["plain", "sub"], names
    assert remote.names(f"/{top.name}/sub") == []


def test_bad_targets(top: Path) -> None:
    with pytest.raises(OSError) as info:
        os.symlink("x" * 5000, top / "long")
    assert info.value.errno == errno.ENAMETOOLONG
    assert not os.path.lexists(top / "long")


def make_tree(root: Path) -> None:
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file.txt").write_bytes(b"content\n")
    os.symlink("file.txt", root / "dir" / "relative")
    os.symlink("../dir", root / "up")
    os.symlink("/usr/bin/env", root / "absolute")
    os.symlink("missing", root / "dangling")


def describe(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize("tool", ["tar", "cp -a"])
def test_trees_with_links_round_trip(top: Path, tmp_path: Path, tool: str) -> None:
    source = tmp_path / "source"
    make_tree(source)
    if tool == "tar":
        subprocess.run(f"tar -C {source} -cf - . | tar -C {top} -xf -", shell=True, check=True)
        copied = top
    else:
        subprocess.run(["cp", "-a", str(source), str(top / "copy")], check=True)
        copied = top / "copy"
    assert describe(copied) == describe(source)
    back = tmp_path / "back"
    shutil.copytree(copied, back, symlinks=True)
    assert describe(back) == describe(source)


@pytest.mark.skipif(not have("git"), reason="needs git")
def test_git_clone_of_a_repository_with_links(top: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_tree(repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "tree"], check=True)
    subprocess.run([*git, "clone", "-q", str(repo), str(top / "clone")], check=True)
    status = subprocess.run([*git, "-C", str(top / "clone"), "status", "--porcelain"], check=True,
                            capture_output=True, text=True)
    assert status.stdout == ""
    assert os.readlink(top / "clone" / "up") == "../dir"
    assert (top / "clone" / "dir" / "relative").read_bytes() == b"content\n"
