"""Metadata key/value validation (``pkg/filemanager/manager/metadata.go``).

Keys are ``namespace:name``.  Known namespaces: ``dav`` (anything),
``thumb`` (anything), ``customize`` (``icon_color`` must be a colour,
``emoji`` must be an emoji), ``tag`` (value empty or a colour; key ``tag:``
alone is refused), ``sys`` (only ``shared_owner``/``shared_redirect``, never
removed), ``props`` (admin-defined custom properties: none exist here, so
every ``props:`` set is refused).  Failures are 40001 "Invalid metadata key"
or "Invalid metadata patch".  ``dav:`` and ``thumb:`` patches keep
``updated_at``; the others bump it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..common import ids
from ..common.gourl import URIError
from . import errors as E
from .uris import CloudreveURI

MAX_VALUE_BYTES = 65535
_BYTE = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PCT = r"(?:100|[1-9]?\d)%"
_ALPHA = r"(?:0|1|0?\.\d+|1\.0+|" + _PCT + ")"
_COLOR_RES = [
    re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"),
    re.compile(rf"^rgb\(\s*(?:{_BYTE}\s*,\s*{_BYTE}\s*,\s*{_BYTE}|{_PCT}\s*,\s*{_PCT}\s*,\s*{_PCT})\s*\)$"),
    re.compile(rf"^rgba\(\s*(?:{_BYTE}\s*,\s*{_BYTE}\s*,\s*{_BYTE}|{_PCT}\s*,\s*{_PCT}\s*,\s*{_PCT})"
               rf"\s*,\s*{_ALPHA}\s*\)$"),
    re.compile(r"^hsl\(\s*(?:0|[1-9]\d?|[12]\d\d|3[0-5]\d|360)\s*,\s*(?:100|[1-9]?\d)%\s*,\s*(?:100|[1-9]?\d)%\s*\)$"),
    re.compile(r"^hsla\(\s*(?:0|[1-9]\d?|[12]\d\d|3[0-5]\d|360)\s*,\s*(?:100|[1-9]?\d)%\s*,\s*"
               rf"(?:100|[1-9]?\d)%\s*,\s*{_ALPHA}\s*\)$"),
]
NAMESPACES = {"sys", "dav", "thumb", "customize", "tag", "props"}


@dataclass
class Patch:
    key: str
    value: str
    remove: bool = False
    update_modified: bool = False


def is_color(value: str) -> bool:
    return any(r.match(value) for r in _COLOR_RES)


def _is_emoji(value: str) -> bool:
    # stands in for the admin "emojis" preset list: short, and no plain ASCII text
    return 0 < len(value) <= 16 and all(ord(c) > 0x7F or c in "#*0123456789" for c in value)


def _check(patch: Patch, codec: ids.IdCodec) -> str | None:
    ns = patch.key.split(":")[0]
    if patch.key == "customize:icon_color":
        patch.update_modified = True
        if not patch.remove and not is_color(patch.value):
            return "invalid color"
    elif patch.key == "customize:emoji":
        patch.update_modified = True
        if not patch.remove and not _is_emoji(patch.value):
            return "unsupported emoji"
    if ns == "sys":
        if patch.remove:
            return "cannot remove system metadata"
        patch.update_modified = True
        if patch.key == "sys:shared_owner":
            return None if codec.decode(patch.value, ids.USER) is not None else "invalid share owner"
        if patch.key == "sys:shared_redirect":
            try:
                ok = CloudreveURI.parse(patch.value).filesystem == "share"
            except URIError:
                ok = False
            return None if ok else "invalid redirect uri"
        return f"unsupported system metadata key: {patch.key}"
    if ns == "tag":
        patch.update_modified = True
        if not patch.remove and patch.value and not is_color(patch.value):
            return "invalid color"
        if patch.key == "tag:":
            return "invalid metadata key"
    if ns == "props":
        patch.update_modified = True
        if not patch.remove:
            return "unkown custom props"
    return None


def validate(patches: list[Patch], codec: ids.IdCodec) -> list[Patch]:
    """Raise the 40001 AppError for the first bad patch; return them with flags set."""
    for patch in patches:
        parts = patch.key.split(":")
        if len(parts) < 2:
            raise E.AppError(E.PARAM_ERR, "Invalid metadata key")
        if parts[0] not in NAMESPACES:
            raise E.AppError(E.PARAM_ERR, "Invalid metadata key", f"unknown category: {parts[0]}")
        problem = _check(patch, codec)
        if problem:
            raise E.AppError(E.PARAM_ERR, "Invalid metadata patch", problem)
    return patches


def from_map(values: dict[str, str]) -> list[Patch]:
    return [Patch(k, v) for k, v in values.items()]


def check_lengths(values: dict[str, str]) -> None:
    """UpsertMetadata's length check: a plain error (code -1)."""
    for key, value in values.items():
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise E.wrap("failed to upsert metadata",
                         E.PlainError(f"metadata value of key {key} is too long"))
