"""Pre-signed object-storage URLs, shaped like OBS/S3 query-signed URLs.

Download URLs: ``/obs/<bucket>/<object>?response-content-disposition=attachment...``
with ``X-Amz-Algorithm=AWS4-HMAC-SHA256``, ``X-Amz-Credential``,
``X-Amz-Date``, ``X-Amz-Expires`` and ``X-Amz-SignedHeaders=host``.  Upload
part URLs sign ``content-length;host`` (as the createFile example does), so a
PUT whose Content-Length differs from the planned part size is refused.

The signature itself is an HMAC of the emulator's secret over the method,
path, the other query parameters and (uploads) the length: it has the shape
of SigV4 but only this emulator can check it.  Failures answer the way S3
does: 403 ``AccessDenied`` "Request has expired", 403
``SignatureDoesNotMatch``, in an XML ``<Error>`` body.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

ACCESS_KEY = "CLOUDFSKOODRIVEEMUL8"
REGION = "ap-southeast-3"
BUCKET = "koodrive-emulator"


def obs_error(code: str, message: str, status: int) -> Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>")
    return Response(body, status_code=status, media_type="application/xml")


def _mac(secret: bytes, method: str, path: str, params: dict[str, str], length: str) -> str:
    canonical = "\n".join([method, path, urlencode(sorted(params.items()), quote_via=quote), length])
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()


def _signed_at(request: Request) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(request.query_params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")))
    except (KeyError, ValueError):
        return None


class Presigner:
    """Signs URLs and checks them; remembers what it signed so that the
    fault injector can expire every URL handed out so far (:meth:`expire_all`)."""

    MEMORY = 100_000

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._issued: OrderedDict[str, None] = OrderedDict()
        self._dead: set[str] = set()

    def sign(self, method: str, path: str, ttl: float, extra: dict[str, str] | None = None,
             length: int | None = None) -> str:
        """The query string of a URL for ``method path``, valid ``ttl`` seconds."""
        now = time.time()
        params = dict(extra or {})
        params.update({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{ACCESS_KEY}/{time.strftime('%Y%m%d', time.gmtime(now))}/{REGION}/s3/aws4_request",
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)),
            "X-Amz-Expires": str(int(ttl)),
            "X-Amz-SignedHeaders": "host" if length is None else "content-length;host",
        })
        # a nonce keeps two URLs of one second apart (the fault injector expires URLs one by one)
        params["x-obs-nonce"] = secrets.token_hex(4)
        signature = _mac(self.secret, method, path, params, "" if length is None else str(length))
        params["X-Amz-Signature"] = signature
        self._issued[signature] = None
        while len(self._issued) > self.MEMORY:
            self._issued.popitem(last=False)
        return urlencode(params, quote_via=quote)

    def expire_all(self) -> None:
        self._dead |= set(self._issued)
        self._issued.clear()

    def check(self, request: Request, length: int | None = None) -> Response | None:
        """None when ``request`` carries a valid, live signature; else the S3 error to answer."""
        params = dict(request.query_params)
        given = params.pop("X-Amz-Signature", "")
        when = _signed_at(request)
        try:
            ttl = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            ttl = -1
        if not given or when is None or ttl < 0:
            return obs_error("AccessDenied", "Query-string authentication requires the Signature, "
                                             "Expires and AWSAccessKeyId parameters", 403)
        expected = _mac(self.secret, request.method, request.url.path, params,
                        "" if length is None else str(length))
        if not hmac.compare_digest(expected, given):
            return obs_error("SignatureDoesNotMatch", "The request signature we calculated does not match "
                                                      "the signature you provided.", 403)
        if time.time() > when + ttl or given in self._dead:
            return obs_error("AccessDenied", "Request has expired", 403)
        return None
