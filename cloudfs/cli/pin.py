"""``cloudfs pin PATH…`` and ``cloudfs unpin PATH…``: keep files or whole
folders of a mount available offline (see ``fs/pins.py``).

PATH is a local path inside a running cloudfs mount; the command asks that
mount through its control socket.  ``cloudfs status`` shows what is pinned
and how much of it is in the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class PinError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file or folder inside a cloudfs mount")


def mount_of(path: Path) -> tuple[Path, str]:
    """The cloudfs mount holding ``path`` (its mountpoint) and ``path`` on the drive."""
    from cloudfs.cli.control import socket_path

    absolute = Path(os.path.abspath(path))
    for candidate in (absolute, *absolute.parents):
        if socket_path(candidate).exists() and os.path.ismount(candidate):
            if not os.path.lexists(absolute):
                raise PinError(f"{path}: no such file or folder")
            remote = "/" + absolute.relative_to(candidate).as_posix()
            return candidate, remote.rstrip("/") if remote != "/" else remote
    raise PinError(f"{path} is not inside a cloudfs mount")


def run(args: argparse.Namespace) -> int:
    from cloudfs.cli.control import request, socket_path

    by_mount: dict[Path, list[str]] = {}
    try:
        for path in args.paths:
            mountpoint, remote = mount_of(path)
            by_mount.setdefault(mountpoint, []).append(remote)
    except PinError as exc:
        print(f"cloudfs: {exc}", file=sys.stderr)
        return 2
    status = 0
    for mountpoint, remotes in by_mount.items():
        try:
            answer = next(request(socket_path(mountpoint), args.prog_name, paths=remotes, timeout_s=60.0))
        except (OSError, StopIteration, ValueError) as exc:
            print(f"cloudfs: the mount at {mountpoint} does not answer: {exc}", file=sys.stderr)
            return 1
        if "error" in answer:
            print(f"cloudfs: {answer['error']}", file=sys.stderr)
            status = 1
            continue
        done = "pinned (kept for offline use; see cloudfs status)" if args.prog_name == "pin" else "unpinned"
        for remote in remotes:
            print(f"{mountpoint}{remote if remote != '/' else ''}: {done}")
    return status
