"""KooDrive requests: JSON bodies, the ``{code, msg, ...}`` envelope, errors
through the code table, one renewal on a refused login, retries under the
client's deadline (:mod:`cloudfs.client.retry`).

Success is HTTP 200 with ``code`` 0 (``"0"`` on the pages that type it as a
String); business errors are HTTP 400 with a 13000xxx code; the API gateway
answers 401 for a missing or expired token and 400 ``APIGW.*`` for a bad
signature or X-Date.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from cloudfs.client.http import Http
from cloudfs.client.koodrive.auth import KooAuth
from cloudfs.client.koodrive.codes import KooDriveError, code_of
from cloudfs.client.retry import AttemptState
from cloudfs.errors import AuthenticationError, ProtocolError, ServerError

PREFIX = "/koodrive/ose/v1"


class Wire:
    def __init__(self, http: Http) -> None:
        self.http = http
        http.prefix = PREFIX
        self.host = urlsplit(http.base_url).netloc

    @property
    def auth(self) -> KooAuth | None:
        auth = self.http.auth
        return auth if isinstance(auth, KooAuth) else None

    async def call_once(self, method: str, path: str, *, what: str, json_body: Any = None,
                        params: dict[str, Any] | None = None, auth: bool = True,
                        headers: dict[str, str] | None = None) -> dict[str, Any]:
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        query = urlencode(params or {})
        url = self.http.api_url(path) + (f"?{query}" if query else "")
        full_path = urlsplit(url).path
        for renewed in (False, True):
            sent = dict(headers or {})
            if body:
                sent["Content-Type"] = "application/json"
            signer = self.auth if auth else None
            if signer is not None:
                sent.update(await signer.request_headers(method, self.host, full_path, query, body))
            response = await self.http.request_once(method, url, what=what, headers=sent,
                                                    content=body if body else None)
            if response.status_code == 401 and signer is not None and not renewed:
                # the gateway did nothing with a refused token: sending again is safe
                await signer.rejected(sent)
                continue
            return answer_of(response, what)
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, method: str, path: str, *, idempotent: bool, what: str | None = None,
                   deadline: float | None = None, **kwargs: Any) -> dict[str, Any]:
        label = what or f"{method} {path}"

        async def op(_: AttemptState) -> dict[str, Any]:
            return await self.call_once(method, path, what=label, **kwargs)

        return await self.http.retrying(op, idempotent=idempotent, what=label, deadline=deadline)


def answer_of(response: httpx.Response, what: str) -> dict[str, Any]:
    """The body of a successful answer, else the error it stands for."""
    status = response.status_code
    if status >= 500 or status == 429:
        raise ServerError(f"{what}: HTTP {status}", status=status)
    try:
        body = response.json()
    except ValueError:  # a captive portal, a proxy's page: say what came
        preview = response.content[:60].decode("utf-8", "replace")
        raise ProtocolError(f"{what}: HTTP {status}: the server answered something that is not JSON "
                            f"({len(response.content)} bytes: {preview!r})") from None
    if not isinstance(body, dict) or "code" not in body:
        raise ProtocolError(f"{what}: HTTP {status}: no code in the answer")
    code = code_of(body["code"])
    message = str(body.get("msg") or body.get("error_msg") or "")
    if status == 401:
        raise AuthenticationError(f"{what}: the KooDrive login was refused ({code} {message})".rstrip())
    if status == 200 and code == 0:
        return body
    if status in (200, 400, 404):
        raise KooDriveError(code, f"{what}: {message}" if message else what)
    raise ProtocolError(f"{what}: unexpected HTTP {status}")


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    """The payload: the ``data`` object where the page nests it, else the top level."""
    data = body.get("data")
    return data if isinstance(data, dict) else body
