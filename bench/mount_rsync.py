"""Benchmark: ``rsync -a`` of a tree into an empty folder on the mount, and again.

    .venv/bin/python bench/mount_rsync.py [--files 500] [--reps 3] [--dialect v4]

The tree is ``--files`` files of 16 KiB and two of 32 MiB.  Timed: until
``rsync`` returns, and until everything is on the server (``cloudfs umount``
returns).  Then a second ``rsync -a --stats`` over a fresh mount must
transfer no file (mtimes and sizes kept).

Also ``git clone`` of a local repository of ``--repo-files`` files into the
mount, then ``git status``, against the same on local disk.

Beside it, in the same run, when ``rclone`` and ``wsgidav`` are installed
(neither is a dependency of cloudfs: ``apt-get install rclone``, ``pip install
wsgidav cheroot`` in any environment, or ``--wsgidav PATH``): the same rsync
into an ``rclone mount`` of a WebDAV server on loopback (``--vfs-cache-mode
writes --vfs-write-back 0s``), the tool users have today.  Prints medians.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

from harness import MiB, Mount, Row, environment, script_main

RCLONE_OPTIONS = ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s"]


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"d{i // 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.bin").write_bytes(os.urandom(16 << 10))
    for i in range(2):
        with open(root / f"big{i}.bin", "wb") as fp:
            fp.write(os.urandom(32 * MiB))


def make_repo(root: Path, files: int) -> None:
    """A git repository of ``files`` small files in 20 folders, one commit."""
    for i in range(files):
        folder = root / f"src{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i:04d}.py").write_text(f"# module {i}\n" + "x = 1\n" * (i % 50))
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)


def clone_and_status(repo: Path, target: Path) -> float:
    """Seconds for ``git clone`` of a local repository, then ``git status``."""
    start = time.perf_counter()
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "status", "--porcelain"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def rsync(source: Path, target: Path) -> int:
    """rsync -a; returns how many regular files it transferred."""
    out = subprocess.run(["rsync", "-a", "--stats", f"{source}/", f"{target}/"], check=True,
                         capture_output=True, text=True).stdout
    found = re.search(r"Number of regular files transferred: ([\d,]+)", out)
    return int(found.group(1).replace(",", "")) if found else -1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_rclone_mount(port: int, mnt: Path, cache: Path) -> subprocess.Popen[bytes]:
    """``rclone mount`` of the WebDAV server on ``port`` at ``mnt``, once it is up."""
    proc = subprocess.Popen(["rclone", "mount", ":webdav:", str(mnt), "--webdav-url", f"http://127.0.0.1:{port}",
                             "--cache-dir", str(cache), *RCLONE_OPTIONS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.ismount(mnt):
        if time.monotonic() > deadline:
            raise RuntimeError("rclone mount did not come up")
        time.sleep(0.05)
    return proc


def wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def cloudfs_runs(args: argparse.Namespace, dialect: str, tree: Path, base: Path, server) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    mount = Mount(server, base / "mnt", base / "mcache", options="delete=permanent")
    times: dict[str, list[float]] = {"returns": [], "on_server": [], "second": []}
    for rep in range(args.reps):
        mount.wipe_cache()
        mount.mount()
        target = mount.path / f"rsync-{rep}"
        target.mkdir()
        start = time.perf_counter()
        rsync(tree, target)
        times["returns"].append(time.perf_counter() - start)
        mount.umount()
        times["on_server"].append(time.perf_counter() - start)
        mount.wipe_cache()
        mount.mount()
        times["second"].append(rsync(tree, target))
        mount.umount()
    return times


def rclone_runs(args: argparse.Namespace, tree: Path, base: Path) -> dict[str, list[float]] | None:
    wsgidav = args.wsgidav or shutil.which("wsgidav")
    if shutil.which("rclone") is None or not wsgidav:
        return None
    root, mnt, cache = base / "dav", base / "rmnt", base / "rcache"
    for path in (root, mnt):
        path.mkdir(exist_ok=True)
    port = free_port()
    dav = subprocess.Popen([wsgidav, "--host", "127.0.0.1", "--port", str(port), "--root", str(root),
                            "--auth", "anonymous", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, list[float]] = {"returns": [], "on_server": [], "second": []}
    try:
        wait_listening(port)

        def mount_rclone() -> subprocess.Popen[bytes]:
            return start_rclone_mount(port, mnt, cache)

        def unmount(proc: subprocess.Popen[bytes]) -> None:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
            proc.wait(timeout=120)

        for rep in range(args.reps):
            shutil.rmtree(cache, ignore_errors=True)
            proc = mount_rclone()
            target = mnt / f"rsync-{rep}"
            target.mkdir()
            start = time.perf_counter()
            rsync(tree, target)
            times["returns"].append(time.perf_counter() - start)
            unmount(proc)  # rclone uploads what is left before it exits
            times["on_server"].append(time.perf_counter() - start)
            shutil.rmtree(cache, ignore_errors=True)
            proc = mount_rclone()
            times["second"].append(rsync(tree, target))
            unmount(proc)
    finally:
        dav.terminate()
        dav.wait()
    return times


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    with environment(capacity=4 << 30, dialect=dialect) as (server, base):
        tree = base / "tree"
        make_tree(tree, args.files)
        local = base / "local"
        start = time.perf_counter()
        rsync(tree, local)
        local_s = time.perf_counter() - start
        ours = cloudfs_runs(args, dialect, tree, base, server)
        theirs = rclone_runs(args, tree, base)
        repo = base / "repo"
        make_repo(repo, args.repo_files)
        local_clone = statistics.median(clone_and_status(repo, base / f"clone-{rep}") for rep in range(args.reps))
        mount = Mount(server, base / "mnt", base / "mcache", options="delete=permanent")
        clones = []
        for rep in range(args.reps):
            mount.wipe_cache()
            mount.mount()
            clones.append(clone_and_status(repo, mount.path / f"clone-{rep}"))
            mount.umount()
        mount_clone = statistics.median(clones)
    med = {k: statistics.median(v) for k, v in ours.items()}
    what = f"rsync -a {args.files} x 16 KiB + 2 x 32 MiB"
    rows = []
    if theirs is not None:
        their = {k: statistics.median(v) for k, v in theirs.items()}
        rows += [
            Row(f"{what}: rsync returns", f"{med['returns']:6.2f} s", f"rclone mount {their['returns']:6.2f} s",
                their["returns"] / med["returns"], ">= 1 (no slower)"),
            Row(f"{what}: all on the server", f"{med['on_server']:6.2f} s",
                f"rclone mount {their['on_server']:6.2f} s", their["on_server"] / med["on_server"], ""),
            Row("rsync -a again: files transferred", f"{med['second']:.0f}", f"rclone mount {their['second']:.0f}",
                None, "0"),
        ]
    else:
        rows += [
            Row(f"{what}: rsync returns", f"{med['returns']:6.2f} s", "(no rclone/wsgidav here)", None,
                "<= rclone"),
            Row(f"{what}: all on the server", f"{med['on_server']:6.2f} s", "", None, ""),
            Row("rsync -a again: files transferred", f"{med['second']:.0f}", "", None, "0"),
        ]
    rows.append(Row(f"{what}: to local disk", f"{local_s:6.2f} s", "", None, ""))
    rows.append(Row(f"git clone ({args.repo_files} files) + git status", f"{mount_clone:6.2f} s",
                    f"local disk {local_clone:6.2f} s", local_clone / mount_clone, ""))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--wsgidav", help="path of a wsgidav command (default: the one on PATH)")
    parser.add_argument("--repo-files", type=int, default=1000)


def main() -> None:
    script_main("rsync", add_arguments, run)


if __name__ == "__main__":
    main()
