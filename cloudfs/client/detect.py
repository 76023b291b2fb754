"""Recognising a Cloudreve server (the Cloudreve entry of the backend
registry, :mod:`backends`): is this URL a Cloudreve we can talk to, and
which dialect?

``GET /api/v4/site/ping`` answers a v4 server's version.  A v3 server has
no ``/api/v4`` routes (plain 404) but answers ``/api/v3/site/ping``.
Anything else gets a :class:`UnsupportedServer` naming what was found (the
HTTP status and what kind of body), so a mistyped URL is easy to spot;
unreachable servers and TLS failures are :class:`TransportError` (after the
usual retries, within the deadline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx

from cloudfs.client import envelope
from cloudfs.client.http import Http
from cloudfs.client.retry import AttemptState
from cloudfs.client.v3 import V3Dialect
from cloudfs.client.v4 import V4Dialect
from cloudfs.errors import CloudfsError, ProtocolError, ServerError

log = logging.getLogger(__name__)

V4_PING = "/api/v4/site/ping"
V3_PING = "/api/v3/site/ping"


@dataclass(frozen=True, slots=True)
class Probe:
    status: int
    content_type: str
    location: str
    version: str | None  # the ping's answer, if it was a Cloudreve envelope


async def probe(http: Http, path: str) -> Probe:
    url = http.base_url + path

    async def op(_: AttemptState) -> Probe:
        response = await http.request_once("GET", url, what=f"GET {url}")
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerError(f"{http.base_url} answered HTTP {response.status_code} for {path}",
                              status=response.status_code)
        return _probe_of(response, path)

    return await http.retrying(op, idempotent=True, what=f"detecting the server at {http.base_url}")


def _probe_of(response: httpx.Response, path: str) -> Probe:
    version = None
    if response.status_code == 200:
        try:
            env = envelope.parse(response.content, path)
        except ProtocolError:
            env = None
        if env is not None and env.ok and isinstance(env.data, str) and env.data:
            version = env.data
    return Probe(
        status=response.status_code,
        content_type=response.headers.get("content-type", "").split(";")[0].strip() or "no content type",
        location=response.headers.get("location", ""),
        version=version,
    )


def describe(base_url: str, path: str, found: Probe) -> str:
    text = f"{base_url} answered HTTP {found.status} for {path}"
    if found.status in (301, 302, 303, 307, 308) and found.location:
        text += f" (redirect to {found.location})"
    elif found.status == 200:
        text += f" with {found.content_type}, not a Cloudreve response"
    return text + ": not a Cloudreve server"


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """Not this backend's server: what was found instead, for the error message."""

    found: str


async def recognise(http: Http) -> V4Dialect | V3Dialect | Unrecognised:
    """The Cloudreve dialect for the server at ``http.base_url``."""
    found = await probe(http, V4_PING)
    if found.version is not None:
        major = found.version.split(".", 1)[0]
        if major == "3":  # a v3 answering under /api/v4 (a proxy rewriting paths?): speak v3
            return await _titled(http, V3Dialect(http, found.version), "/site/config")
        if major != "4":
            log.warning("%s runs Cloudreve %s; cloudfs knows version 4 and will try its API",
                        http.base_url, found.version)
        return await _titled(http, V4Dialect(http, found.version), "/site/config/basic")
    if found.status == 404:
        legacy = await probe(http, V3_PING)
        if legacy.version is not None:
            major = legacy.version.split(".", 1)[0]
            if major != "3":
                log.warning("%s runs Cloudreve %s under /api/v3; cloudfs knows 3.8 and will try its API",
                            http.base_url, legacy.version)
            return await _titled(http, V3Dialect(http, legacy.version), "/site/config")
    return Unrecognised(describe(http.base_url, V4_PING, found))


D = TypeVar("D", V4Dialect, V3Dialect)


async def _titled(http: Http, dialect: D, config_path: str) -> D:
    """``dialect`` with the site title, if the server tells (cosmetic:
    failures are ignored).  The dialect has set the API prefix."""
    try:
        data = await envelope.Api(http).call("GET", config_path, idempotent=True, auth=False, what="site config",
                                             deadline=min(http.settings.deadline_s, 10.0))
    except CloudfsError as exc:
        log.debug("no site title: %s", exc)
        return dialect
    title = data.get("title") if isinstance(data, dict) else None
    if isinstance(title, str):
        dialect.info = replace(dialect.info, title=title)
    return dialect
