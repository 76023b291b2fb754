"""Mount settings and where cloudfs keeps its files.

``MountSettings`` is everything a mount needs, resolved (defaults applied,
sizes parsed).  The CLI builds it from the command line and the config file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP = "cloudfs"
GiB = 1 << 30
MiB = 1 << 20

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """``"10G"``, ``"512MiB"``, ``"1.5g"``, ``4096`` -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 512M, 10G)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * (1 << (10 * " kmgtp".index(unit or " "))))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP))


def cache_root() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / APP
    return state_dir() / "run"


def account_key(url: str, user: str | None) -> str:
    """A short stable name for one account on one server."""
    raw = f"{url.rstrip('/').lower()}\0{(user or '').lower()}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class MountSettings:
    url: str
    mountpoint: Path
    user: str | None = None
    cache_dir: Path | None = None
    cache_size: int = 2 * GiB
    metadata_ttl_s: float = 60.0
    negative_ttl_s: float = 5.0
    #: bound on any single operation waiting for the server
    timeout_s: float = 30.0
    read_only: bool = False
    allow_other: bool = False
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    umask: int = 0o022
    readahead_initial: int = 1 * MiB
    readahead_max: int = 64 * MiB
    #: "remote": fsync returns once the data is on the server; "local": once it is on local disk
    fsync: str = "remote"
    #: an upload starts this long after the last write/close (save-then-rename coalesces)
    upload_delay_s: float = 2.0
    #: a file held open with this much dirty data is uploaded once writes pause
    dirty_threshold: int = 64 * MiB
    #: files uploading at once
    max_uploads: int = 4
    #: unlink/rmdir move to Cloudreve's recycle bin (recoverable) instead of deleting for good
    delete_to_trash: bool = True
    fuse_options: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cache_dir is None:
            self.cache_dir = cache_root() / account_key(self.url, self.user)
        self.cache_dir = Path(self.cache_dir)
        if self.fsync not in ("remote", "local"):
            raise ValueError(f"fsync must be 'remote' or 'local', not {self.fsync!r}")
