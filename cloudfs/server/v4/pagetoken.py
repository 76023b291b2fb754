"""Page tokens of listings and searches (``pageTokenFromString`` and its writer):
base64 JSON of the last row's hashid and sort value."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..common import ids
from ..common.goformat import go_time, parse_go_time
from ..common.store import Cursor
from . import errors as E
from .state import Ctx


def encode_token(ctx: Ctx, cursor: Cursor, order_by: str) -> str:
    token: dict[str, Any] = {}
    if order_by in ("created_at", "updated_at"):
        token["time"] = go_time(cursor.last_value)
    token["id"] = ctx.state.codec.file(cursor.last_id)
    if order_by == "name" and cursor.last_value:
        token["string"] = cursor.last_value
    if order_by == "size" and cursor.last_value:
        token["int"] = cursor.last_value
    if cursor.start_with_file:
        token["start_with_file"] = True
    return base64.b64encode(json.dumps(token, ensure_ascii=False, separators=(",", ":")).encode()).decode()


def decode_token(ctx: Ctx, raw: str, order_by: str) -> Cursor:
    """pageTokenFromString; any failure is a plain (code -1) error."""
    try:
        data = json.loads(base64.b64decode(raw, validate=True))
        if not isinstance(data, dict):
            raise TypeError("not an object")
        fid = ctx.state.codec.decode(str(data.get("id", "")), ids.FILE)
        if fid is None:
            raise ValueError("failed to decode id")
        value: Any = None
        if order_by in ("created_at", "updated_at"):
            value = parse_go_time(data["time"]) if data.get("time") else -62135596800000000
        elif order_by == "name":
            value = str(data.get("string", ""))
        elif order_by == "size":
            value = int(data.get("int", 0))
        return Cursor(bool(data.get("start_with_file", False)), fid, value)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise E.wrap("failed to get children", E.PlainError(f"invalid page token {raw!r}: {exc}")) from None
