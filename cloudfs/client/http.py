"""The HTTP layer: one shared ``httpx.AsyncClient`` per client instance,
exception classification, envelope decoding, authentication and retries.

Owns:

* the connection pool (keep-alive, ``max_connections``) and the timeouts of
  every request (``request_timeout_s`` per connect/read/write);
* translating httpx's exceptions into cloudfs errors, noting whether the
  request may have reached the server (``TransportError.maybe_delivered``),
  which the retry policy needs for non-idempotent calls;
* the ``X-Cr-Client-Id`` header (one UUID per client: Cloudreve does not echo
  a client's own changes back to its event stream);
* authenticated API calls: headers from the :class:`Authenticator`, and on an
  envelope ``401`` one renewal and one more try;
* :meth:`Http.call`: the usual "retry under a deadline, unwrap the envelope".

Nothing dialect-specific: the dialect sets :attr:`Http.prefix` and the auth.
"""

from __future__ import annotations

import errno
import http.cookiejar
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from cloudfs.client import envelope
from cloudfs.client.auth import Authenticator
from cloudfs.client.bodies import WholeBody
from cloudfs.client.retry import AttemptState, retrying
from cloudfs.client.settings import ClientSettings
from cloudfs.errors import CloudfsError, ProtocolError, RequestTimeout, ServerError, TLSFailure, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: envelope code of "login required"
LOGIN_REQUIRED = 401


def safe_url(url: str) -> str:
    """``url`` without its query (signatures live there) for messages."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _ssl_reason(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            return getattr(cur, "reason", None) or str(cur)
        if isinstance(cur, BaseExceptionGroup):
            for inner in cur.exceptions:
                reason = _ssl_reason(inner)
                if reason:
                    return reason
        cur = cur.__cause__ or cur.__context__
    text = str(exc)
    return text if "SSL" in text or "TLS" in text or "certificate" in text.lower() else None


def _os_reason(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno:
            return (cur.strerror or str(cur)).lower()
        if isinstance(cur, BaseExceptionGroup):
            for inner in cur.exceptions:
                reason = _os_reason(inner)
                if reason:
                    return reason
        cur = cur.__cause__ or cur.__context__
    return None


def map_error(exc: Exception, what: str) -> CloudfsError:
    """The cloudfs error for an httpx (or socket) failure of ``what``."""
    if isinstance(exc, CloudfsError):
        return exc
    if isinstance(exc, httpx.ConnectTimeout):
        return RequestTimeout(f"{what}: connecting timed out", maybe_delivered=False)
    if isinstance(exc, httpx.PoolTimeout):
        return RequestTimeout(f"{what}: no free connection in the pool", maybe_delivered=False)
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.removesuffix("Timeout").lower() or "request"
        return RequestTimeout(f"{what}: timed out ({kind})")
    if isinstance(exc, httpx.ConnectError):
        tls = _ssl_reason(exc)
        if tls:
            return TLSFailure(f"{what}: TLS error: {tls}")
        reason = _os_reason(exc) or str(exc) or "connection failed"
        return TransportError(f"{what}: cannot connect: {reason}", maybe_delivered=False)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CloudfsError(f"{what}: invalid URL ({exc})", errno=errno.EINVAL)
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(f"{what}: undecodable response body ({exc})")
    if isinstance(exc, httpx.LocalProtocolError):
        # e.g. a body shorter than its Content-Length: a local file shrank
        return CloudfsError(f"{what}: request could not be sent ({exc})", errno=errno.EIO)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransportError(f"{what}: connection broken ({exc})")
    if isinstance(exc, httpx.HTTPError | OSError):
        reason = _os_reason(exc) or str(exc) or type(exc).__name__
        return TransportError(f"{what}: connection broken ({reason})")
    raise exc  # not a network failure: a bug, let it surface


def _raise_socket_read_size(size: int) -> None:
    """Make httpcore read the socket ``size`` bytes at a time.

    httpcore reads 64 KiB per call, and every call climbs a stack of async
    generators and cancel scopes: downloading costs ~2.5x more CPU per byte
    than with 256 KiB reads (measured with bench/client_transfer.py).  The
    knob is a class attribute of httpcore's HTTP/1.1 connection (there is no
    per-client setting), so this is process-wide; it is only ever raised,
    and it merely sizes ``recv`` buffers (small answers stay small).
    """
    current = getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", None)
    if isinstance(current, int) and size > current:
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = size


class Http:
    """One connection pool, one client id, one auth, for one server."""

    def __init__(self, base_url: str, settings: ClientSettings) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.client_id = str(uuid.uuid4())
        #: API path prefix, e.g. "/api/v4" (set by the dialect)
        self.prefix = ""
        self.auth: Authenticator | None = None
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        _raise_socket_read_size(settings.download_read_size)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.request_timeout_s),
            limits=limits,
            headers={"User-Agent": settings.user_agent, "X-Cr-Client-Id": self.client_id},
            follow_redirects=False,
            verify=settings.verify_tls,
            # no cookie jar: a session cookie (v3) is the authenticator's
            # business, sent explicitly; never picked up behind its back
            cookies=httpx.Cookies(http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def api_url(self, path: str) -> str:
        return f"{self.base_url}{self.prefix}{path}"

    # ---- one attempt -------------------------------------------------------
    async def request_once(self, method: str, url: str, *, what: str, content: Any = None,
                           **kwargs: Any) -> httpx.Response:
        """One HTTP exchange with the body read, failures as cloudfs errors.
        ``content`` may be an ``httpx.AsyncByteStream`` (streamed as is, with
        the Content-Length the caller put in the headers)."""
        try:
            if isinstance(content, httpx.AsyncByteStream):
                request = self.client.build_request(method, url, **kwargs)
                request.stream = content  # not wrapped in httpx's generator (see bodies.py)
                return await self.client.send(request)
            if isinstance(content, (bytes, bytearray, memoryview)):
                # httpx sets the Content-Length; the body is ours, not its generator
                body = bytes(content)  # the same object when it is bytes already
                request = self.client.build_request(method, url, content=body, **kwargs)
                request.stream = WholeBody(body)
                return await self.client.send(request)
            return await self.client.request(method, url, content=content, **kwargs)
        except httpx.HTTPError as exc:
            raise map_error(exc, what) from None  # httpx errors hold the request (and its headers)

    async def call_once(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> envelope.Envelope:
        """One API call (plus one more after renewing a refused login)."""
        what = what or f"{method} {path}"
        url = self.api_url(path)
        content = kwargs.pop("content", None)
        for renewed in (False, True):
            sent: dict[str, str] = dict(headers or {})
            if auth and self.auth is not None:
                sent.update(await self.auth.headers())
            if content is not None:
                # a callable makes a fresh body (an iterator is consumed by a try)
                kwargs["content"] = content() if callable(content) else content
            response = await self.request_once(method, url, what=what, headers=sent, **kwargs)
            env = self.envelope_of(response, what)
            if env.code == LOGIN_REQUIRED and auth and self.auth is not None and not renewed:
                # expired or revoked access token: the server treated us as
                # anonymous and did nothing, so sending again is safe
                await self.auth.rejected(sent)
                continue
            return env
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def envelope_of(response: httpx.Response, what: str) -> envelope.Envelope:
        status = response.status_code
        if status >= 500 or status == 429:
            raise ServerError(f"{what}: HTTP {status} {response.reason_phrase}".rstrip(), status=status)
        if status != 200:
            raise ProtocolError(f"{what}: unexpected HTTP {status} {response.reason_phrase}".rstrip())
        return envelope.parse(response.content, what)

    # ---- with retries ------------------------------------------------------------
    async def retrying(
        self,
        op: Callable[[AttemptState], Awaitable[T]],
        *,
        idempotent: bool,
        what: str,
        deadline: float | None = None,
    ) -> T:
        return await retrying(op, policy=self.settings.retry_policy(), idempotent=idempotent, what=what,
                              deadline=deadline)

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

        return await self.retrying(op, idempotent=idempotent, what=label, deadline=deadline)

    # ---- streaming (downloads) -------------------------------------------------
    async def open_stream(self, method: str, url: str, *, what: str,
                          headers: Mapping[str, str] | None = None) -> httpx.Response:
        """A response whose body the caller reads (and closes) itself:
        see :class:`cloudfs.client.bodies.ResponseBody`."""
        request = self.client.build_request(method, url, headers=headers)
        try:
            return await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise map_error(exc, what) from None
