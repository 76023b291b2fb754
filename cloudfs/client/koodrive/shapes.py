"""KooDrive items -> :class:`Entry` values, and times both ways.

Items are addressed by id only; an entry's ``version`` is its id, because
KooDrive never changes a file's content in place (a replace is a new file
with a new id, so the id names one content for good).
"""

from __future__ import annotations

import datetime
from typing import Any

from cloudfs.client.models import Entry
from cloudfs.errors import ProtocolError

FOLDER_TYPE = "10"


def time_ns(value: Any) -> int:
    """An item time (ISO 8601 with or without ms, or epoch ms) as ns; 0 if absent."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) * 1_000_000
    if not isinstance(value, str) or not value:
        return 0
    if value.isdigit():
        return int(value) * 1_000_000
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1_000_000) * 1000


def iso_ms(mtime_ms: int) -> str:
    when = datetime.datetime.fromtimestamp(mtime_ms / 1000, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{mtime_ms % 1000:03d}Z"


def is_folder(item: dict[str, Any]) -> bool:
    return str(item.get("fileType", "")) == FOLDER_TYPE


def entry_of(item: dict[str, Any], path: str) -> Entry:
    file_id = item.get("id") or item.get("fileId")
    if not isinstance(file_id, str) or not file_id:
        raise ProtocolError(f"{path}: an item without an id")
    folder = is_folder(item)
    edited = time_ns(item.get("editedTime") or item.get("updateTime"))
    created = time_ns(item.get("createdTime")) or edited
    size = item.get("size") or 0
    return Entry(file_id=file_id, path=path, is_dir=folder, size=0 if folder else int(size),
                 mtime_ns=edited or created, ctime_ns=created, version="" if folder else file_id)


def parent_id(item: dict[str, Any]) -> str | None:
    """The first ``parentFolder`` (the only one used, says the reference)."""
    parents = item.get("parentFolder")
    if isinstance(parents, list) and parents:
        first = parents[0]
        if isinstance(first, dict):
            first = first.get("id") or first.get("fileId")
        return str(first) if first else None
    return None
