"""Which mount a command means: ``cloudfs umount ~/Work`` names a directory,
``cloudfs umount work`` may name a remote of the config file instead (the
same name ``cloudfs mount work`` took)."""

from __future__ import annotations

from pathlib import Path

from cloudfs.cli.mountpoint import is_mounted
from cloudfs.config import ConfigError, load_remote


def mount_target(name: str | Path) -> Path:
    """The mountpoint ``name`` means: a path if it looks like one or is
    mounted; else the mountpoint of the config file's remote of that name;
    else the path (whose error then names it)."""
    text = str(name)
    path = Path(text).expanduser()
    if "/" in text or text in (".", "..") or is_mounted(path):
        return path.resolve()
    try:
        remote = load_remote(text)
    except ConfigError:
        return path.resolve()
    mountpoint = remote.get("mountpoint")
    if mountpoint is None:
        return path.resolve()
    return Path(str(mountpoint)).expanduser().resolve()
