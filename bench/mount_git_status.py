"""Benchmark: ``git status`` in a clone on the mount, after a remount.

    .venv/bin/python bench/mount_git_status.py [--repo-files 300] [--reps 3] [--dialect v4]

A local repository of ``--repo-files`` files in 20 folders is cloned into
the mount, the mount is unmounted (everything on the server) and mounted
again with an empty metadata cache; then ``git status`` is run there: the
server requests it makes (counted by the bundled server) and its time,
against ``git status`` of the same clone on local disk.  ``git status`` lstats
every file: before folders were listed for a run of lookups, each was a stat
request of its own.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from harness import Mount, Row, environment, script_main
from mount_rsync import make_repo


def git_status(clone: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-files", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--count", default=".", help="count only requests whose path matches this regex (all)")


def run(args: argparse.Namespace, dialect: str) -> list[Row]:
    requests: list[int] = []
    seconds: list[float] = []
    local: list[float] = []
    with environment(faults=True, dialect=dialect) as (server, base):
        repo = base / "repo"
        make_repo(repo, args.repo_files)
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(base / "local")], check=True)
        mount = Mount(server, base / "mnt", base / "mount-cache")
        mount.mount()
        try:
            subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(mount.path / "clone")], check=True)
        finally:
            mount.umount()
        for _ in range(args.reps):
            mount.wipe_cache()
            mount.mount()
            try:
                server.faults.set(path_regex=args.count, latency_s=0.0)  # counted, not failed
                seconds.append(git_status(mount.path / "clone"))
                requests.append(int(server.faults.stats()["matched"]))
                server.faults.clear()
            finally:
                mount.umount()
            local.append(git_status(base / "local"))
    med, base_med = statistics.median(seconds), statistics.median(local)
    return [
        Row(f"git status after a remount, {args.repo_files} files: server requests ({args.count})",
            f"{statistics.median(requests):.0f}", "", None, ""),
        Row("  time (local disk as baseline)", f"{med:.3f} s", f"{base_med:.3f} s", med / base_med if base_med else None),
    ]


if __name__ == "__main__":
    script_main("git status on the mount", add_arguments, run)
