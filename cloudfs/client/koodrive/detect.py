"""Recognising a KooDrive server (the KooDrive entry of the backend registry):
an unauthenticated ``GET /koodrive/ose/v1/space/usage/overview`` answers a
KooDrive-shaped refusal (HTTP 401 or 400 with a ``code``: the API gateway's
``APIGW.*`` or a 13000xxx), which no other server does."""

from __future__ import annotations

from cloudfs.client.http import Http
from cloudfs.client.detect import Unrecognised
from cloudfs.client.koodrive.dialect import KooDriveDialect
from cloudfs.client.koodrive.wire import PREFIX
from cloudfs.client.retry import AttemptState
from cloudfs.errors import ServerError

PROBE = PREFIX + "/space/usage/overview"


async def recognise(http: Http) -> KooDriveDialect | Unrecognised:
    url = http.base_url + PROBE

    async def op(_: AttemptState) -> tuple[int, object]:
        response = await http.request_once("GET", url, what=f"GET {url}")
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerError(f"{http.base_url} answered HTTP {response.status_code}", status=response.status_code)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    status, body = await http.retrying(op, idempotent=True, what=f"detecting the server at {http.base_url}")
    code = body.get("code") if isinstance(body, dict) else None
    if status in (400, 401) and code is not None and (str(code).startswith("APIGW") or str(code).startswith("13000")):
        return KooDriveDialect(http)
    return Unrecognised(f"{http.base_url} answered HTTP {status} for {PROBE}: not a KooDrive server")
