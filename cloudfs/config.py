"""Mount settings and where cloudfs keeps its files.

``MountSettings`` is everything a mount needs, resolved (defaults applied,
sizes parsed).  The CLI builds it from the command line and the config file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Callable
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
    #: the server's kind (a name in cloudfs.client.backends); None = detect
    backend: str | None = None
    cache_dir: Path | None = None
    cache_size: int = 2 * GiB
    metadata_ttl_s: float = 60.0
    negative_ttl_s: float = 5.0
    #: "auto": follow the server's change feed where it has one (Cloudreve 4.11+); "off": TTLs only
    events: str = "auto"
    #: the metadata TTL while the change feed is live (a safety net: changes arrive as events)
    events_ttl_s: float = 600.0
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
    #: files uploading at once (small ones, up to 1 MiB, four times as many where each is one request)
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
        if self.events not in ("auto", "off"):
            raise ValueError(f"events must be 'auto' or 'off', not {self.events!r}")


# ---- the config file ---------------------------------------------------------
class ConfigError(Exception):
    """A problem in the config file, naming the file and the key."""


def config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def _octal(value: object) -> int:
    if isinstance(value, int):
        return value
    return int(str(value), 8)


def _choice(*allowed: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(value)

    return convert


def _path(value: object) -> Path:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return Path(value).expanduser()


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


#: config key -> (MountSettings field, converter)
REMOTE_KEYS: dict[str, tuple[str, Callable[[object], object]]] = {
    "url": ("url", _string),
    "user": ("user", _string),
    "mountpoint": ("mountpoint", _path),
    "cache_dir": ("cache_dir", _path),
    "cache_size": ("cache_size", lambda v: parse_size(v if isinstance(v, int) else _string(v))),
    "metadata_ttl": ("metadata_ttl_s", _number),
    "negative_ttl": ("negative_ttl_s", _number),
    "events": ("events", _choice("auto", "off")),
    "events_ttl": ("events_ttl_s", _number),
    "timeout": ("timeout_s", _number),
    "fsync": ("fsync", _choice("remote", "local")),
    "uid": ("uid", _integer),
    "gid": ("gid", _integer),
    "umask": ("umask", _octal),
    "read_only": ("read_only", _boolean),
    "allow_other": ("allow_other", _boolean),
    "upload_delay": ("upload_delay_s", _number),
    "max_uploads": ("max_uploads", _integer),
    "readahead_max": ("readahead_max", lambda v: parse_size(v if isinstance(v, int) else _string(v))),
    "delete": ("delete_to_trash", lambda v: _choice("trash", "permanent")(v) == "trash"),
    "password_file": ("password_file", _path),
    "store_login": ("store_login", _boolean),
    "backend": ("backend", _string),
    # a KooDrive enterprise app key (AppId + AppSecret), inline or in a file of its own
    "app_key_file": ("app_key_file", _path),
    "app_id": ("app_id", _string),
    "app_secret": ("app_secret", _string),
}
#: the keys that are a login's, not a mount's (not MountSettings fields)
APP_KEY_KEYS = ("app_key_file", "app_id", "app_secret")


def load_remote(name: str, path: Path | None = None) -> dict[str, object]:
    """The settings of remote ``name`` as MountSettings keyword arguments
    (plus ``password_file``, ``store_login`` and the app key's
    ``APP_KEY_KEYS``), validated; ConfigError names the file and key."""
    path = path or config_path()
    try:
        with open(path, "rb") as fp:
            document = tomllib.load(fp)
    except FileNotFoundError:
        raise ConfigError(f"{name!r} is not a URL, and there is no config file {path} defining it") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    remotes = document.get("remotes", {})
    unknown_top = set(document) - {"remotes"}
    if unknown_top:
        raise ConfigError(f"{path}: unknown section or key {sorted(unknown_top)[0]!r} (expected [remotes.NAME])")
    if not isinstance(remotes, dict) or name not in remotes:
        known = ", ".join(sorted(remotes)) if isinstance(remotes, dict) else ""
        raise ConfigError(f"{path}: no remote named {name!r}" + (f" (defined: {known})" if known else ""))
    table = remotes[name]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: remotes.{name} must be a table")
    out: dict[str, object] = {}
    for key, value in table.items():
        spec = REMOTE_KEYS.get(key)
        if spec is None:
            raise ConfigError(f"{path}: remotes.{name}: unknown key {key!r}")
        field_name, convert = spec
        try:
            out[field_name] = convert(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: remotes.{name}.{key} = {value!r}: {exc}") from None
    if "url" not in out:
        raise ConfigError(f"{path}: remotes.{name}: 'url' is required")
    if ("app_id" in out) != ("app_secret" in out):
        raise ConfigError(f"{path}: remotes.{name}: app_id and app_secret go together")
    if "app_secret" in out and os.stat(path).st_mode & 0o077:
        raise ConfigError(f"{path} holds an app_secret: it must be readable by you alone (chmod 600 {path})")
    return out
