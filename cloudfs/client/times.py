"""Timestamps as Cloudreve sends them: Go's ``time.Time`` JSON (RFC 3339,
up to nanoseconds, any offset; v3 and v4 alike) and HTTP dates
(``Last-Modified``).  Pure functions, no I/O."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from cloudfs.errors import ProtocolError

_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time_ns(value: object) -> int:
    """RFC 3339 (Go's ``time.Time`` JSON, up to nanoseconds) -> Unix ns."""
    if not isinstance(value, str):
        raise ProtocolError(f"expected a timestamp, got {type(value).__name__}")
    m = _TIME.match(value.strip())
    if not m:
        raise ProtocolError(f"unreadable timestamp {value[:40]!r}")
    date, clock, frac, zone = m.groups()
    if zone is None or zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        whole = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError:
        raise ProtocolError(f"unreadable timestamp {value[:40]!r}") from None
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return int(whole.timestamp()) * 1_000_000_000 + nanos


def parse_time_s(value: object) -> float:
    return parse_time_ns(value) / 1e9


def parse_http_date_s(value: str | None) -> int | None:
    """An HTTP date (``Last-Modified``, ``Date``) -> Unix seconds; None if absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 7231 dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())
