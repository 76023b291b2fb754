"""Signed download URLs (``pkg/auth/hmac.go`` + ``auth.SignURI``/``CheckURI``).

``sign = base64url(HMAC-SHA256(secret, "<path>:<expires>")) + ":" + <expires>``
over the decoded URL path only (the query is ignored).  ``expires`` 0 means
"never".  Check failures map to Cloudreve's errors: missing expiry -> 403
"expire timestamp is missing", unparsable expiry -> 40071 "sign expired",
past expiry -> 40005 "signature expired", bad MAC -> 40071 "invalid sign".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from ..v4.errors import INVALID_SIGN, NO_PERMISSION, SIGN_EXPIRED, AppError


def sign(secret: bytes, body: str, expires: int) -> str:
    mac = hmac.new(secret, f"{body}:{expires}".encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode() + ":" + str(expires)


def check(secret: bytes, body: str, signature: str, now: float | None = None) -> None:
    """Raise the AppError Cloudreve would answer with; return when valid."""
    parts = signature.split(":")
    if parts[-1] == "":
        raise AppError(NO_PERMISSION, "expire timestamp is missing")
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", parts[-1]):
        raise AppError(INVALID_SIGN, "sign expired")
    expires = int(parts[-1], 10)
    now = time.time() if now is None else now
    if expires != 0 and expires < int(now):
        raise AppError(SIGN_EXPIRED, "signature expired")
    if not hmac.compare_digest(sign(secret, body, expires).encode(), signature.encode("utf-8", "replace")):
        raise AppError(INVALID_SIGN, "invalid sign")
