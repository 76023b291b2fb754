"""``cloudreve://`` URIs and object-name rules, as Cloudreve parses them.

Cloudreve parses URIs with Go's ``net/url.Parse`` (:mod:`cloudfs.server.common.gourl`)
and then ``path.Clean``s the path, so ``//``, ``.`` and ``..`` are resolved
before any lookup and can never climb above the root.  This module adds
Cloudreve's ``PathEscape`` (JS ``encodeURIComponent``) used to build child
paths.  It also owns the name rules (1..255 UTF-8 bytes, no ``\\/:*?"<>|``,
not ``.``/``..``).

Nothing here touches the disk: names only ever become SQLite values.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ..common.gourl import UNRESERVED, GoURL, URIError, go_url_parse

SCHEME = "cloudreve"
FORBIDDEN_NAME_CHARS = set('\\/:*?"<>|')
MAX_NAME_BYTES = 255

_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9\-_.!~*'()]*")


def path_escape(s: str) -> str:
    """Cloudreve's ``fs.PathEscape`` (JS encodeURIComponent)."""
    if _PLAIN_SEGMENT.fullmatch(s):
        return s
    keep = UNRESERVED | set("!*'()")
    return "".join(chr(b) if chr(b) in keep and b < 0x80 else f"%{b:02X}"
                   for b in s.encode("utf-8"))


@dataclass
class CloudreveURI:
    """A parsed ``cloudreve://`` URI (``fs.URI``)."""

    url: GoURL
    _elements: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: str) -> CloudreveURI:
        u = go_url_parse(raw)
        if u.scheme != SCHEME:
            raise URIError(f"unknown scheme: {u.scheme}")
        u.path = u.path.removesuffix("/")
        uri = cls(u)
        trimmed = uri.path().lstrip("/")
        uri._elements = trimmed.split("/") if trimmed else []
        return uri

    @property
    def filesystem(self) -> str:
        return self.url.host.lower()

    @property
    def user_id(self) -> str | None:
        """Explicit ``<user>@`` part, None when the caller is implied."""
        return self.url.username if self.url.user is not None else None

    def path(self) -> str:
        p = self.url.path
        # path.Clean never keeps "..", "." or empty segments
        p = posixpath.normpath("/" + p) if p else "/"
        return "/" + p.lstrip("/")

    @property
    def elements(self) -> list[str]:
        return list(self._elements)

    def name(self) -> str:
        return posixpath.basename(self.path()) or "/"

    def string(self) -> str:
        return self.url.string()

    def search_params(self) -> dict[str, list[str]] | None:
        if not self.url.raw_query:
            return None
        return parse_qs(self.url.raw_query, keep_blank_values=True)

    def root_prefix(self) -> str:
        """What ``Root()`` serialises to, minus the trailing ``/``."""
        root = GoURL(scheme=self.url.scheme, user=self.url.user, username=self.url.username,
                     host=self.url.host)
        return root.prefix()


def join_uri(prefix: str, elements: list[str]) -> str:
    """``root.Join(elements...)`` serialised: prefix + "/" + escaped segments."""
    return prefix + "/" + "/".join(path_escape(e) for e in elements)


def validate_name(name: str) -> str | None:
    """``validateFileName``: the reason a name is illegal, or None when fine."""
    size = len(name.encode("utf-8", "replace"))
    if size >= MAX_NAME_BYTES + 1 or size == 0:
        return "length of name must be between 1 and 255"
    if any(c in FORBIDDEN_NAME_CHARS for c in name):
        return "name contains illegal characters"
    if name in (".", ".."):
        return "name cannot be only dot"
    return None


def go_quote(s: str) -> str:
    """Go's %q for strings (enough for error messages)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
