"""What Go writes, for both dialects: JSON as ``encoding/json`` marshals it,
``time.Time`` as RFC 3339, and gin's plain-text 404.

Strings are emitted as raw UTF-8 with ``<``, ``>``, ``&``, U+2028 and U+2029
escaped like Go does.  Times are RFC 3339 with the fraction trimmed of
trailing zeros and the local offset (``Z`` for UTC), as ``time.Time``'s JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from starlette.responses import Response

_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                             "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's json.Marshal writes it (HTML-safe escaping)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_GO_ESCAPES).encode("utf-8", "replace")


class GoJSONResponse(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return go_json(content)


def plain_404() -> Response:
    # gin's NoRoute answer
    return Response("404 page not found", status_code=404, media_type="text/plain")


_last_second: list[Any] = [None, "", ""]


def go_time(us: float | None) -> str:
    """time.Time JSON (RFC 3339 with trimmed fraction, local offset)."""
    if us is None:
        return "0001-01-01T00:00:00Z"
    secs, micros = divmod(int(us), 1_000_000)
    if _last_second[0] != secs:  # listings repeat the same second a lot
        t = time.localtime(secs)
        offset = t.tm_gmtoff or 0
        if offset:
            sign = "+" if offset >= 0 else "-"
            offset = abs(offset)
            zone = f"{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"
        else:
            zone = "Z"
        stamp = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _last_second[:] = [secs, stamp, zone]
    base, zone = _last_second[1], _last_second[2]
    if micros:
        return f"{base}.{micros:06d}".rstrip("0") + zone
    return base + zone


def parse_go_time(text: str) -> int:
    """RFC 3339 (as written by go_time) back to microseconds; raises ValueError."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, sep, tail = text.partition(".")
    if sep:
        digits = ""
        rest = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                rest = tail[i:]
                break
            digits += ch
        text = head + "." + (digits[:6]).ljust(6, "0") + rest
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("missing offset")
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond
