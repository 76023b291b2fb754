"""The ``X-Cr-Client-Id`` an account keeps across mounts.

Cloudreve keys a change-feed subscription by this id: a mount that comes
back with the same id within 14 days is ``resumed`` and gets the changes it
missed, and changes made with it are never echoed to it.  One UUID per
account, in a file of the account's cache directory (which one mount holds at
a time); a missing or unreadable file just means a new id.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def load_or_create(path: Path) -> str:
    try:
        stored = path.read_text().strip()
        return str(uuid.UUID(stored))
    except (OSError, ValueError):
        pass
    fresh = str(uuid.uuid4())
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(fresh + "\n")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache dir costs only the resume
        log.warning("cannot keep the client id in %s: %s", path, exc)
    return fresh
