"""Logging setup for the CLI: stderr (journald-friendly, no timestamps when
systemd adds its own) or a log file, with secrets redacted."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from cloudfs.client.redact import RedactingFilter
from cloudfs.config import state_dir


def mount_log_file(mountpoint: str | os.PathLike[str]) -> Path:
    """Where a background mount logs: named after the mountpoint's whole path
    (``/home/alice/cloud`` -> ``mount-home-alice-cloud.log``), so mounts on
    ``a/cloud`` and ``b/cloud`` keep separate logs."""
    name = os.path.abspath(os.fspath(mountpoint)).strip("/").replace("/", "-") or "root"
    return state_dir() / "logs" / f"mount-{name}.log"


def setup_logging(verbosity: int, *, log_file: Path | None = None, mount: bool = False) -> None:
    """``mount``: the process serving a mount, which logs what it does
    (mounted, unmounted, uploads and their failures) without ``-v``, to its
    log file or to stderr: a ``--foreground`` mount under a supervisor has
    no other record."""
    if verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1 or mount or log_file is not None or os.environ.get("INVOCATION_ID"):
        level = logging.INFO
    else:
        level = logging.WARNING
    if log_file is not None:
        handler: logging.Handler = logging.FileHandler(log_file)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        # under systemd (INVOCATION_ID set) journald timestamps every line itself
        fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("INVOCATION_ID") else \
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # third-party chatter stays quiet unless debugging
    for name in ("httpx", "httpcore", "hpack", "hypercorn"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
