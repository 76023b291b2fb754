"""``cloudfs umount MOUNTPOINT``: let pending uploads finish (with progress),
then unmount and wait for the mount process to exit."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cloudfs.cli import control
from cloudfs.cli.progress import UploadProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--no-wait", action="store_true",
                        help="unmount without waiting for uploads (they stay journaled and finish in the background)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    mountpoint = args.mountpoint.expanduser().resolve()
    sock = control.socket_path(mountpoint)
    pid = None
    if sock.exists():
        try:
            status = next(control.request(sock, "status"))
            pid = status.get("pid")
            if not args.no_wait:
                drain(sock, quiet=args.quiet)
        except (OSError, StopIteration, ValueError) as exc:
            print(f"cloudfs: mount process not answering ({exc}); unmounting anyway", file=sys.stderr)
    error = unmount(mountpoint)
    if error:
        print(f"cloudfs: {error}", file=sys.stderr)
        return 1
    if pid:
        wait_for_exit(int(pid))
    return 0


def drain(sock: Path, *, quiet: bool = False) -> None:
    with UploadProgress(enabled=not quiet) as progress:
        for message in control.request(sock, "drain", timeout_s=None):
            if message.get("done"):
                break
            progress.update(message.get("uploads", []))


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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.1)
