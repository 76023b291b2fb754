"""Cloudreve's JSON response envelope ``{code, data, msg, ...}``, shared by
v3 and v4: decoding it defensively, turning a non-zero code into
:class:`CloudreveError`, and the API calls built on it (:class:`Api`: the
login renewed once on code 401, ``data`` unwrapped) over the neutral
:class:`~cloudfs.client.http.Http`.

Anything that is not a JSON object with an integer ``code`` (HTML from a
proxy, a truncated body, a bare string) is a :class:`ProtocolError`, never a
crash further up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from cloudfs.client.cloudreve_codes import BATCH_PARTIAL_FAILURE, CloudreveError
from cloudfs.client.http import Http
from cloudfs.client.retry import AttemptState
from cloudfs.errors import ProtocolError, ServerError

SUCCESS = 0
#: the header naming the client: the event stream does not echo a client's own changes back
CLIENT_ID_HEADER = "X-Cr-Client-Id"
#: login continues with a second factor (``data`` = 2FA session id)
CONTINUE_2FA = 203
#: "login required": the access token expired or was revoked (the server did nothing)
LOGIN_REQUIRED = 401


@dataclass(frozen=True, slots=True)
class Envelope:
    code: int
    data: Any
    msg: str
    correlation_id: str | None
    aggregated: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    def error(self) -> CloudreveError:
        return CloudreveError(
            self.code,
            self.msg,
            correlation_id=self.correlation_id,
            aggregated=_aggregated(self.aggregated),
            data=self.data,
        )

    def unwrap(self) -> Any:
        """``data`` on success, else raise the error."""
        if self.code != SUCCESS:
            raise self.error()
        return self.data


def refused_login(env: Envelope) -> bool:
    """Whether the server turned the access token down ("login required"):
    for the whole call, or for every item of a batch call (move, delete,
    metadata), which an expired token gets as 401 inside a 40081.  Either
    way the server treated the caller as anonymous and did nothing."""
    if env.code == LOGIN_REQUIRED:
        return True
    items = env.aggregated
    return env.code == BATCH_PARTIAL_FAILURE and bool(items) and all(
        isinstance(item, dict) and item.get("code") == LOGIN_REQUIRED for item in (items or {}).values())


def _aggregated(raw: dict[str, Any] | None) -> dict[str, CloudreveError]:
    out: dict[str, CloudreveError] = {}
    for key, item in (raw or {}).items():
        if isinstance(item, dict) and isinstance(item.get("code"), int):
            out[str(key)] = CloudreveError(
                item["code"], str(item.get("msg") or ""), correlation_id=item.get("correlation_id") or None
            )
        else:
            out[str(key)] = CloudreveError(-1, "unreadable per-item error")
    return out


def parse(body: bytes, what: str) -> Envelope:
    """Decode one envelope; ``what`` names the request in error messages."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        preview = body[:60].decode("utf-8", "replace")
        raise ProtocolError(f"{what}: the server answered something that is not JSON ({len(body)} bytes: "
                            f"{preview!r})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), int) or isinstance(doc.get("code"), bool):
        raise ProtocolError(f"{what}: the server's answer is not a Cloudreve response envelope")
    aggregated = doc.get("aggregated_error")
    return Envelope(
        code=doc["code"],
        data=doc.get("data"),
        msg=str(doc.get("msg") or ""),
        correlation_id=str(doc["correlation_id"]) if doc.get("correlation_id") else None,
        aggregated=aggregated if isinstance(aggregated, dict) else None,
    )


def of_response(response: httpx.Response, what: str) -> Envelope:
    """The envelope of an API answer (HTTP 200); a server error or any
    other status is raised."""
    status = response.status_code
    if status >= 500 or status == 429:
        raise ServerError(f"{what}: HTTP {status} {response.reason_phrase}".rstrip(), status=status)
    if status != 200:
        raise ProtocolError(f"{what}: unexpected HTTP {status} {response.reason_phrase}".rstrip())
    return parse(response.content, what)


class Api:
    """Cloudreve API calls: under :attr:`Http.prefix`, authenticated by
    :attr:`Http.auth`, answered in envelopes."""

    def __init__(self, http: Http) -> None:
        self.http = http
        http.send_client_id(CLIENT_ID_HEADER)

    async def call_once(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Envelope:
        """One API call (plus one more after renewing a refused login)."""
        http = self.http
        what = what or f"{method} {path}"
        url = http.api_url(path)
        content = kwargs.pop("content", None)
        for renewed in (False, True):
            sent: dict[str, str] = dict(headers or {})
            if auth and http.auth is not None:
                sent.update(await http.auth.headers())
            if content is not None:
                # a callable makes a fresh body (an iterator is consumed by a try)
                kwargs["content"] = content() if callable(content) else content
            response = await http.request_once(method, url, what=what, headers=sent, **kwargs)
            env = of_response(response, what)
            if refused_login(env) and auth and http.auth is not None and not renewed:
                # expired or revoked access token: the server treated us as
                # anonymous and did nothing, so sending again is safe
                await http.auth.rejected(sent)
                continue
            return env
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        what: str | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """An API call, retried as its idempotency allows; returns ``data``."""
        label = what or f"{method} {path}"

        async def op(_: AttemptState) -> Any:
            env = await self.call_once(method, path, what=label, **kwargs)
            return env.unwrap()

        return await self.http.retrying(op, idempotent=idempotent, what=label, deadline=deadline)
