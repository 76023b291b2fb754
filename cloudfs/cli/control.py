"""The control socket: how ``cloudfs status`` and ``cloudfs umount`` talk to a
running mount.

Each mount listens on a Unix socket in the user's runtime dir, named after
its mountpoint.  The protocol is one JSON request line, answered by one or
more JSON lines: ``{"cmd": "status"}`` gets one status object;
``{"cmd": "drain"}`` uploads everything pending now and streams progress
objects (``{"uploads": [...]}``) until nothing is left or what is left keeps failing, then
``{"done": true, "left": [...]}`` with the uploads still pending.  Other
commands (``pin``, ``unpin``) take their arguments in the same object and
get one answer object.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cloudfs.config import runtime_dir

# (no trio here: ``cloudfs umount`` and ``status`` load this module alone; the
# mount's server side is :mod:`cloudfs.cli.control_server`)


def sockets_dir() -> Path:
    return runtime_dir() / "mounts"


def socket_path(mountpoint: Path | str) -> Path:
    key = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return sockets_dir() / f"{key}.sock"


# ---- client side (plain blocking sockets: the CLI is not async) ---------------
def request(path: Path, cmd: str, *, timeout_s: float | None = 10.0, **args: Any) -> Iterator[dict[str, Any]]:
    """Send one command (with ``args``) to a mount's control socket and yield its answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield json.loads(line)


def running_mounts() -> list[Path]:
    """Control sockets of this user's mounts that answer."""
    found: list[Path] = []
    directory = sockets_dir()
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.sock")):
        try:
            next(request(path, "status", timeout_s=2.0))
        except (OSError, StopIteration, ValueError):
            continue
        found.append(path)
    return found
