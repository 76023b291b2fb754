"""Request binding the way gin + go-playground/validator do it in Cloudreve.

Cloudreve decodes each request into a Go struct (``ShouldBindJSON`` /
``ShouldBindQuery`` / ``ShouldBindUri``) and answers binding failures with
code 40001 and a message built by ``controllers.ParamErrorMsg``:
``"<Field> cannot be empty"`` (required), ``"<Field> too short"`` (min),
``"<Field> too long"`` (max), ``"JSON marshall error"`` for JSON type
mismatches, ``"Parameter error"`` for anything else (bad JSON, bad numbers),
``"Invalid parameters."`` when the failing rule has no message.  Go's
decoder matches keys case-insensitively, ignores unknown keys and trailing
data after the first JSON value; ``null`` leaves the zero value.  Only the
first failing field (declaration order) is reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_FIELD_MAP = {"UserName": "Email", "Password": "Password", "Path": "Path",
              "SourceID": "Source resource", "URL": "URL", "Nick": "Nickname"}
_TAG_MAP = {"required": "cannot be empty", "min": "too short", "max": "too long",
            "email": "format error"}
# close to go-playground's email rule; exact parity is not needed for a login form
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class BindError(Exception):
    """A binding failure: code 40001 in both dialects, with ``msg`` as its message.

    Each dialect renders it (v4: without correlation id, ``ParamErrDeprecated``)."""

    def __init__(self, msg: str) -> None:
        self.msg = msg or "Invalid parameters."
        super().__init__(self.msg)


@dataclass
class F:
    """One struct field: JSON/form key, Go field name, kind and rules."""

    key: str
    go: str
    kind: str = "str"  # str | int | uint | bool | strs | strmap | objs | obj
    required: bool = False
    min: int | None = None
    max: int | None = None
    oneof: tuple[str, ...] | None = None
    email: bool = False
    ne_true: bool = False
    sub: list[F] = field(default_factory=list)

    def zero(self) -> Any:
        if self.kind == "obj":  # a Go struct value: all of its fields at their zero values
            return {f.key: f.zero() for f in self.sub}
        return {"str": "", "int": 0, "uint": 0, "bool": False}.get(self.kind)


class _TypeMismatch(Exception):
    pass


def _json_value(spec: F, value: Any) -> Any:
    if value is None:
        return spec.zero()
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str):
            raise _TypeMismatch
        return _clean_str(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
            raise _TypeMismatch
        return value
    if kind == "uint":  # Go uint64: negative or fractional numbers are type errors
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 64:
            raise _TypeMismatch
        return value
    if kind == "obj":
        if not isinstance(value, dict):
            raise _TypeMismatch
        return _decode_object(spec.sub, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _TypeMismatch
        return value
    if kind == "strs":
        if not isinstance(value, list):
            raise _TypeMismatch
        out = []
        for item in value:
            if item is None:
                out.append("")
            elif isinstance(item, str):
                out.append(_clean_str(item))
            else:
                raise _TypeMismatch
        return out
    if kind == "strmap":
        if not isinstance(value, dict):
            raise _TypeMismatch
        out_map = {}
        for k, v in value.items():
            if v is None:
                v = ""
            if not isinstance(v, str):
                raise _TypeMismatch
            out_map[_clean_str(k)] = _clean_str(v)
        return out_map
    if kind == "objs":
        if not isinstance(value, list):
            raise _TypeMismatch
        items = []
        for item in value:
            if item is None:
                item = {}
            if not isinstance(item, dict):
                raise _TypeMismatch
            items.append(_decode_object(spec.sub, item))
        return items
    return value


def _clean_str(s: str) -> str:
    # Go's decoder turns unpaired surrogates into U+FFFD
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    return s


def _lookup(obj: dict[str, Any], key: str) -> tuple[bool, Any]:
    if key in obj:
        return True, obj[key]
    lowered = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == lowered:
            return True, v
    return False, None


def _decode_object(fields: list[F], obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mismatch = False
    for spec in fields:
        found, value = _lookup(obj, spec.key)
        if not found:
            out[spec.key] = spec.zero()
            continue
        try:
            out[spec.key] = _json_value(spec, value)
        except _TypeMismatch:
            mismatch = True  # Go keeps decoding, then reports the type error
            out[spec.key] = spec.zero()
    if mismatch:
        raise _TypeMismatch
    return out


def _validate(fields: list[F], values: dict[str, Any]) -> None:
    for spec in fields:
        value = values.get(spec.key)
        failed = _check(spec, value)
        if failed is not None:
            name = _FIELD_MAP.get(spec.go, spec.go)
            tag = _TAG_MAP.get(failed)
            raise BindError(f"{name} {tag}" if tag else "")
        if spec.kind == "objs" and value:
            for item in value:
                _validate(spec.sub, item)
        if spec.kind == "obj" and value:
            _validate(spec.sub, value)


def _size(spec: F, value: Any) -> int:
    if spec.kind == "obj":
        return 0
    if spec.kind == "str":
        return len(value)  # validator counts runes for strings
    if spec.kind in ("strs", "strmap", "objs"):
        return len(value)
    return int(value)


def _check(spec: F, value: Any) -> str | None:
    if spec.required:
        if spec.kind in ("strs", "strmap", "objs"):
            if value is None:
                return "required"
        elif value in ("", 0, False, None):
            return "required"
    if spec.kind in ("strs", "strmap", "objs") and value is None:
        # nil collections skip min/max only when not required (omitempty-less rules still run)
        value_size = 0
    else:
        value_size = _size(spec, value) if value is not None else 0
    if spec.min is not None and value_size < spec.min:
        return "min"
    if spec.max is not None and value_size > spec.max:
        return "max"
    if spec.oneof is not None and value not in spec.oneof:
        return "oneof"
    if spec.email and not _EMAIL_RE.match(value or ""):
        return "email"
    if spec.ne_true and value is True:
        return "ne"
    return None


def bind_json(body: bytes, fields: list[F]) -> dict[str, Any]:
    """ShouldBindJSON + validation; raises BindError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise BindError("Parameter error")  # io.EOF
    try:
        obj, _end = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(stripped)
    except (ValueError, RecursionError):
        raise BindError("Parameter error") from None
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise BindError("JSON marshall error")
    try:
        values = _decode_object(fields, obj)
    except _TypeMismatch:
        raise BindError("JSON marshall error") from None
    _validate(fields, values)
    return values


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def bind_form(params: dict[str, str], fields: list[F]) -> dict[str, Any]:
    """ShouldBindQuery / ShouldBindUri: strings converted per field kind."""
    values: dict[str, Any] = {}
    for spec in fields:
        raw = params.get(spec.key)
        if raw is None:
            values[spec.key] = spec.zero()
            continue
        raw = _clean_str(raw)
        if spec.kind == "int":
            values[spec.key] = _parse_int(raw)
        elif spec.kind == "bool":
            values[spec.key] = _parse_bool(raw)
        else:
            values[spec.key] = raw
    _validate(fields, values)
    return values


def _parse_int(raw: str) -> int:
    if raw == "":
        return 0  # gin binds an empty value as zero
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise BindError("Parameter error")
    value = int(raw)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BindError("Parameter error")
    return value


def _parse_bool(raw: str) -> bool:
    if raw == "":
        return False
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise BindError("Parameter error")
