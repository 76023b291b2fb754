"""Signed download URLs (``pkg/auth/hmac.go`` + ``auth.SignURI``/``CheckURI``).

``sign = base64url(HMAC-SHA256(secret, "<path>:<expires>")) + ":" + <expires>``
over the decoded URL path only (the query is ignored).  ``expires`` 0 means
"never".  Each dialect checks a signature with its own errors (v4:
:mod:`cloudfs.server.v4.downloads`, v3: :mod:`cloudfs.server.v3.downloads`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(secret: bytes, body: str, expires: int) -> str:
    mac = hmac.new(secret, f"{body}:{expires}".encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode() + ":" + str(expires)
