"""Go's ``net/url``, as far as Cloudreve leans on it: ``url.Parse`` for absolute
URIs (scheme, authority, ``?``/``#`` splitting, percent decoding with Go's
errors, ``RawPath`` preservation when re-serialising) and ``url.PathEscape``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class URIError(ValueError):
    """url.Parse failed (or the scheme is not cloudreve)."""


# --- percent encoding helpers (Go net/url) ----------------------------------
_ENC_PATH, _ENC_HOST, _ENC_USER, _ENC_FRAGMENT, _ENC_SEGMENT = range(5)
UNRESERVED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")


def _go_should_escape(c: str, mode: int) -> bool:
    if c in UNRESERVED:
        return False
    if mode == _ENC_HOST and c in "!$&'()*+,;=:[]<>\"":
        return False
    if c in "$&+,/:;=?@":
        if mode == _ENC_PATH:
            return c == "?"
        if mode == _ENC_SEGMENT:
            return c in "/;,?"
        if mode == _ENC_USER:
            return c in "@/?:"
        return mode != _ENC_FRAGMENT
    return not (mode == _ENC_FRAGMENT and c in "!()*")


def _go_escape(s: str, mode: int) -> str:
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if b < 0x80 and not _go_should_escape(c, mode):
            out.append(c)
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _go_unescape(s: str, mode: int) -> str:
    """url.unescape: validates every %XX, rejects bad host characters."""
    raw = bytearray()
    data = s.encode("utf-8", "surrogatepass")
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x25:  # '%'
            hexpart = data[i + 1:i + 3]
            if len(hexpart) < 2 or not all(chr(h) in "0123456789abcdefABCDEF" for h in hexpart):
                raise URIError(f'invalid URL escape "{data[i:i + 3].decode("latin1")}"')
            raw.append(int(hexpart, 16))
            i += 3
            continue
        if mode == _ENC_HOST and b < 0x80 and _go_should_escape(chr(b), mode):
            raise URIError(f'invalid character "{chr(b)}" in host name')
        raw.append(b)
        i += 1
    # names with invalid UTF-8 bytes get U+FFFD, as Go's JSON output would show them
    return raw.decode("utf-8", "replace")


def _valid_encoded(s: str, mode: int) -> bool:
    for c in s:
        if c in "!$&'()*+,;=:@[]%":
            continue
        if _go_should_escape(c, mode):
            return False
    return True


def go_path_escape(s: str) -> str:
    """Go's ``url.PathEscape`` (used for the name segment of content URLs)."""
    return _go_escape(s, _ENC_SEGMENT)


_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")
_USERINFO_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@")


@dataclass
class GoURL:
    """The fields of Go's url.URL that Cloudreve looks at."""

    scheme: str = ""
    opaque: str = ""
    user: str | None = None  # raw userinfo text (escaped), None when absent
    username: str = ""
    host: str = ""
    path: str = ""
    raw_path: str = ""
    raw_query: str = ""
    force_query: bool = False
    fragment: str = ""

    def set_path(self, p: str) -> None:
        self.path = _go_unescape(p, _ENC_PATH)
        self.raw_path = "" if _go_escape(self.path, _ENC_PATH) == p else p

    def escaped_path(self) -> str:
        if self.raw_path and _valid_encoded(self.raw_path, _ENC_PATH):
            try:
                if _go_unescape(self.raw_path, _ENC_PATH) == self.path:
                    return self.raw_path
            except URIError:
                pass
        return _go_escape(self.path, _ENC_PATH)

    def prefix(self) -> str:
        """``scheme://[user@]host`` part of String()."""
        out = self.scheme + ":"
        if self.opaque:
            return out + self.opaque
        if self.host or self.path or self.user is not None:
            out += "//"
        if self.user is not None:
            out += self.user + "@"
        if self.host:
            out += _go_escape(self.host, _ENC_HOST)
        return out

    def string(self) -> str:
        if self.opaque:
            out = self.prefix()
        else:
            path = self.escaped_path()
            out = self.prefix()
            if path and not path.startswith("/") and self.host:
                out += "/"
            out += path
        if self.force_query or self.raw_query:
            out += "?" + self.raw_query
        if self.fragment:
            out += "#" + _go_escape(self.fragment, _ENC_FRAGMENT)
        return out


def go_url_parse(raw: str) -> GoURL:
    """net/url.Parse for absolute URIs (relative forms end up scheme-less)."""
    for ch in raw:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise URIError("net/url: invalid control character in URL")
    rest, _, frag = raw.partition("#")
    u = GoURL()
    if ":" in rest:
        head, _, tail = rest.partition(":")
        if head == "":
            raise URIError("missing protocol scheme")
        if _SCHEME_RE.match(head):
            u.scheme = head.lower()
            rest = tail
    if rest.endswith("?") and rest.count("?") == 1:
        u.force_query = True
        rest = rest[:-1]
    else:
        rest, _, u.raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if u.scheme:
            u.opaque = rest
            if frag:
                u.fragment = _go_unescape(frag, _ENC_FRAGMENT)
            return u
        if ":" in rest.split("/", 1)[0]:
            raise URIError("first path segment in URL cannot contain colon")
    if (u.scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        rest = slash + rest
        if "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            if any(c not in _USERINFO_OK for c in userinfo):
                raise URIError("net/url: invalid userinfo")
            name = userinfo.split(":", 1)[0]
            u.username = _go_unescape(name, _ENC_USER)
            if ":" in userinfo:
                _go_unescape(userinfo.split(":", 1)[1], _ENC_USER)
            u.user = userinfo
        else:
            host = authority
        if ":" in host and not host.startswith("["):
            port = host.rsplit(":", 1)[1]
            if port and not port.isdigit():
                raise URIError(f'invalid port ":{port}" after host')
        u.host = _go_unescape(host, _ENC_HOST)
    u.set_path(rest)
    if frag:
        u.fragment = _go_unescape(frag, _ENC_FRAGMENT)
    return u
