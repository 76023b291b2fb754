"""``cloudfs umount MOUNTPOINT``: let pending uploads finish (with progress),
then unmount and wait for the mount process to exit."""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudfs.cli import control
from cloudfs.cli.target import mount_target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", help="the mount's directory, or a remote named in the config file")
    parser.add_argument("--no-wait", action="store_true",
                        help="unmount without waiting for uploads (they stay journaled and finish in the background)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    mountpoint = mount_target(args.mountpoint)
    sock = control.socket_path(mountpoint)
    pid = None
    left: list[dict[str, Any]] = []
    if sock.exists():
        try:
            status = next(control.request(sock, "status"))
            pid = status.get("pid")
            if not args.no_wait:
                left = drain(sock, quiet=args.quiet)
        except (OSError, StopIteration, ValueError) as exc:
            print(f"cloudfs: mount process not answering ({exc}); unmounting anyway", file=sys.stderr)
    error = unmount(mountpoint)
    if error:
        print(f"cloudfs: {error}", file=sys.stderr)
        return 1
    if pid:
        wait_for_exit(int(pid))
    if left:
        print(still_pending(left), file=sys.stderr)
        return 1
    return 0


def drain(sock: Path, *, quiet: bool = False) -> list[dict[str, Any]]:
    """Have the mount upload everything; returns the uploads it could not finish."""
    if quiet:
        return _drain(sock, lambda uploads: None)
    # the display library only where a person may watch (it is most of this command's start-up)
    from cloudfs.cli.progress import UploadProgress

    with UploadProgress() as progress:
        return _drain(sock, progress.update)


def _drain(sock: Path, show: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    for message in control.request(sock, "drain", timeout_s=None):
        if message.get("done"):
            return list(message.get("left", []))
        show(message.get("uploads", []))
    return []


def still_pending(left: list[dict[str, Any]]) -> str:
    """What a person needs to know of uploads an unmount left pending."""
    folders = sorted({str(Path(upload["staging"]).parent) for upload in left if upload.get("staging")})
    lines = [f"cloudfs: unmounted, but {len(left)} upload(s) could not finish and are still pending:"]
    lines += [f"  {upload['path']}: {upload.get('error') or upload['state']}" for upload in left]
    lines.append(f"their data is kept (journaled) in {', '.join(folders) or 'the cache dir'}; "
                 "the next mount of this account retries them")
    return "\n".join(lines)


def unmount(mountpoint: Path) -> str | None:
    if shutil.which("fusermount3"):
        command = ["fusermount3", "-u", str(mountpoint)]
    elif os.geteuid() == 0:
        command = ["umount", str(mountpoint)]
    else:
        return "fusermount3 not found (install fuse3)"
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return result.stderr.strip() or f"{command[0]} failed"
    return None


def wait_for_exit(pid: int, timeout_s: float = 60.0) -> None:
    """Wait until the mount process has exited (it does once its uploads
    are done and the kernel let go of the mount): told at once by a pidfd
    (readable when the process ends, reaped or not), else by polling."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None  # not Linux 5.3+, or gone already
    if pidfd is not None:
        try:
            select.select([pidfd], [], [], timeout_s)
        finally:
            os.close(pidfd)
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and is_running(pid):
        time.sleep(0.02)


def is_running(pid: int) -> bool:
    """Whether ``pid`` is still running.  A process that exited but that
    nobody reaped yet (a zombie) has finished: the mount process is
    detached, and its new parent (init, or a container's first process)
    may take a second or more to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fp:
            stat = fp.read()
    except FileNotFoundError:
        return False
    except OSError:
        return _signalable(pid)
    # the state follows the command name, which is in parentheses and may hold any character
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state not in (b"Z", b"X")


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
