"""The HTTP layer: one shared ``httpx.AsyncClient`` per client instance,
exception classification, the authenticator and retries.

Owns:

* the connection pool (keep-alive, ``max_connections``) and the timeouts of
  every request (``request_timeout_s`` per connect/read/write);
* translating httpx's exceptions into cloudfs errors, noting whether the
  request may have reached the server (``TransportError.maybe_delivered``),
  which the retry policy needs for non-idempotent calls;
* the client's id (one UUID per client), sent in the header a backend names
  (:meth:`send_client_id`: Cloudreve's ``X-Cr-Client-Id``, so its event
  stream does not echo a client's own changes back);
* :meth:`Http.retrying`: an operation retried under the client's deadline
  (:mod:`retry`).

Nothing backend-specific: a backend sets :attr:`Http.prefix` and the auth,
and builds its API calls on :meth:`request_once` (the answers' shape, and
what a refused login looks like, are its own: Cloudreve's envelope in
:mod:`envelope`, KooDrive's in :mod:`koodrive.wire`).
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

from cloudfs.client.auth import Authenticator
from cloudfs.client.bodies import WholeBody
from cloudfs.client.retry import AttemptState, retrying
from cloudfs.client.settings import ClientSettings
from cloudfs.errors import CloudfsError, ProtocolError, RequestTimeout, TLSFailure, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        #: the header that carries ``client_id``, where the backend wants one
        self.client_id_header: str | None = None
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
            headers={"User-Agent": settings.user_agent},
            follow_redirects=False,
            verify=settings.verify_tls,
            # no cookie jar: a session cookie (v3) is the authenticator's
            # business, sent explicitly; never picked up behind its back
            cookies=httpx.Cookies(http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def send_client_id(self, header: str) -> None:
        """Send :attr:`client_id` in ``header`` with every request from now on."""
        self.client_id_header = header
        self.client.headers[header] = self.client_id

    def use_client_id(self, client_id: str) -> None:
        """Be ``client_id`` from now on (sent where the backend wants it)."""
        self.client_id = client_id
        if self.client_id_header is not None:
            self.client.headers[self.client_id_header] = client_id

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
