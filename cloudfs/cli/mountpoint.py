"""Checks made before mounting, each failing with one clear line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class MountError(Exception):
    """A problem found before anything was mounted."""


def is_mounted(path: Path) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fp:
            for line in fp:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == real:
                    return True
    except OSError:
        return os.path.ismount(real)
    return False


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    return field.encode().decode("unicode_escape") if "\\" in field else field


def check_mountpoint(path: Path, *, allow_nonempty: bool = False) -> None:
    if not path.exists():
        raise MountError(f"mountpoint {path} does not exist (create it with: mkdir -p {path})")
    if not path.is_dir():
        raise MountError(f"mountpoint {path} is not a directory")
    if is_mounted(path):
        raise MountError(f"{path} is already a mountpoint (unmount it first: cloudfs umount {path})")
    if not allow_nonempty and any(path.iterdir()):
        raise MountError(f"mountpoint {path} is not empty (use -o nonempty to mount over its contents)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise MountError(f"no write permission on mountpoint {path}")


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError("FUSE is not available: /dev/fuse is missing (load the module: modprobe fuse; "
                         "in a container, pass --device /dev/fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise MountError("no permission to use /dev/fuse (add yourself to the 'fuse' group, or check its mode)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError("fusermount3 not found: install it with: sudo apt-get install fuse3")
