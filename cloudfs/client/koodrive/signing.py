"""KooDrive's enterprise app signature (ENT appendix): HMAC-SHA256 over a
canonical request, acting for the user named in ``X-User-Id``.

CanonicalRequest = METHOD, the RFC 3986-encoded path with a trailing ``/``,
the query sorted by name (``k=`` kept), ``name:value\\n`` per signed header,
the signed header names joined by ``;``, and hex(sha256(body)) (the
reference's excerpt does not give the payload rule: this reading is the
emulator's default assumption too), joined by newlines.
StringToSign = ``"HMAC-SHA256\\n" + hex(sha256(CanonicalRequest))``; the
signature is the lowercase hex HMAC of it under the AppSecret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

#: headers every app-signed request signs
SIGNED = ("host", "x-date", "x-user-id")
X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def x_date(when: float | None = None) -> str:
    """``X-Date`` (UTC, ``yyyyMMdd'T'HHmmss'Z'``)."""
    return time.strftime(X_DATE_FORMAT, time.gmtime(time.time() if when is None else when))


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> str:
    uri = "/".join(_rfc3986(part) for part in path.split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted((_rfc3986(k), _rfc3986(v)) for k, v in parse_qsl(query, keep_blank_values=True))
    lines = [
        method.upper(),
        uri,
        "&".join(f"{k}={v}" for k, v in pairs),
        "".join(f"{name}:{headers[name].strip()}\n" for name in SIGNED),
        ";".join(SIGNED),
        hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines)


def authorization(app_id: str, secret: str, method: str, path: str, query: str,
                  headers: Mapping[str, str], body: bytes) -> str:
    """The ``Authorization`` value of one request (``headers``: host, x-date, x-user-id)."""
    digest = hashlib.sha256(canonical_request(method, path, query, headers, body).encode()).hexdigest()
    signature = hmac.new(secret.encode(), f"HMAC-SHA256\n{digest}".encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 AppId={app_id},SignedHeaders={';'.join(SIGNED)},Signature={signature}"
