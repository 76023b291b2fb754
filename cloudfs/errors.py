"""Error types of cloudfs and THE table that turns them into errno values.

Every layer raises a :class:`CloudfsError` subclass; the filesystem layer calls
:func:`errno_for` exactly once, at the FUSE boundary.  Keep the mapping here and
nowhere else.

This module imports nothing from cloudfs.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping


class CloudfsError(Exception):
    """Base class of every error cloudfs raises on purpose."""

    #: errno used when no more specific mapping applies
    errno: int = _errno.EIO

    def __init__(self, message: str = "", *, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return self.message or self.__class__.__name__


class CloudreveError(CloudfsError):
    """A non-zero ``code`` in a Cloudreve response envelope.

    ``aggregated`` holds the per-URI errors of a batch call (code 40081),
    keyed by the URI (or id) the server reported.
    """

    def __init__(
        self,
        code: int,
        message: str = "",
        *,
        correlation_id: str | None = None,
        aggregated: Mapping[str, "CloudreveError"] | None = None,
        data: object = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.correlation_id = correlation_id
        self.aggregated: dict[str, CloudreveError] = dict(aggregated or {})
        self.data = data
        self.errno = errno_for_code(code, self.aggregated)

    def __str__(self) -> str:
        text = f"Cloudreve error {self.code}"
        if self.message:
            text += f": {self.message}"
        if self.aggregated:
            inner = "; ".join(f"{k}: {v.code} {v.message}".rstrip() for k, v in self.aggregated.items())
            text += f" [{inner}]"
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        return text


class TransportError(CloudfsError):
    """The server could not be reached or the connection broke (after retries).

    ``maybe_delivered`` is False only when the request provably never reached
    the server (the connection was never established), which makes even a
    non-idempotent request safe to send again.
    """

    errno = _errno.EIO

    def __init__(self, message: str = "", *, errno: int | None = None, maybe_delivered: bool = True) -> None:
        super().__init__(message, errno=errno)
        self.maybe_delivered = maybe_delivered


class TLSFailure(TransportError):
    """The TLS handshake or certificate check failed: not transient, never retried."""

    def __init__(self, message: str = "", *, errno: int | None = None) -> None:
        super().__init__(message, errno=errno, maybe_delivered=False)


class RequestTimeout(TransportError):
    """A request did not finish within its deadline (after retries)."""

    errno = _errno.ETIMEDOUT


class ServerError(TransportError):
    """An HTTP error status from the server or a proxy in front of it (5xx, 429...).

    Cloudreve itself answers its API with HTTP 200, so these come from a proxy,
    an overloaded server or a crashed handler: transient, possibly delivered.
    """

    def __init__(self, message: str = "", *, status: int, errno: int | None = None) -> None:
        super().__init__(message, errno=errno if errno is not None else errno_for_status(status))
        self.status = status


class ProtocolError(CloudfsError):
    """The server answered something that is not valid Cloudreve (bad JSON, truncated body...)."""

    errno = _errno.EIO


class NotCloudreveError(CloudfsError):
    """The URL does not point at a supported Cloudreve server."""

    errno = _errno.EPROTONOSUPPORT


class AuthenticationError(CloudfsError):
    """Login is needed or was refused (wrong password, revoked refresh token...)."""

    errno = _errno.EACCES


class TwoFactorRequired(AuthenticationError):
    """The server wants a one-time code to finish the login."""

    def __init__(self, message: str = "two-factor code required", *, session_id: str = "") -> None:
        super().__init__(message)
        self.session_id = session_id


class UnsupportedStoragePolicy(CloudfsError):
    """The folder's storage policy uploads straight to a cloud (S3, OneDrive...): not supported."""

    errno = _errno.EOPNOTSUPP


class NameTooLong(CloudfsError):
    """A name longer than 255 bytes, refused before asking the server."""

    errno = _errno.ENAMETOOLONG


# --- THE errno table -------------------------------------------------------
# Cloudreve envelope code -> errno.  Codes shared by v3 and v4 have the same
# numbers.  Anything not listed (5xxxx, -1, unknown) is EIO.
CODE_ERRNO: dict[int, int] = {
    401: _errno.EACCES,  # login required (after one refresh attempt)
    403: _errno.EPERM,  # not supported action / permission denied
    404: _errno.ENOENT,
    409: _errno.EAGAIN,  # object conflict while locking
    40001: _errno.EINVAL,  # parameter error
    40002: _errno.EIO,  # v3 upload failed
    40003: _errno.EIO,  # v3 create folder failed
    40004: _errno.EEXIST,  # object exists
    40005: _errno.EIO,  # signed URL expired (the client re-signs first)
    40006: _errno.EOPNOTSUPP,  # storage policy does not take chunks through Cloudreve
    #        (v3 upload session: "policy changed"; the client lists again and retries first)
    40007: _errno.EPERM,  # group lacks a permission
    40011: _errno.EIO,  # upload session expired (the client restarts first)
    40012: _errno.EIO,  # invalid chunk index; v3: chunk out of order (the client restarts first)
    40013: _errno.EIO,  # invalid content length (client bug)
    40016: _errno.ENOENT,  # path not exist: the normal "not found"
    40019: _errno.EOPNOTSUPP,  # feature not enabled
    40020: _errno.EACCES,  # credential invalid
    40044: _errno.ENOENT,  # v3 file not found
    40049: _errno.EFBIG,  # file too large
    40050: _errno.EINVAL,  # v3 file type not allowed
    40051: _errno.ENOSPC,  # insufficient capacity
    40052: _errno.EINVAL,  # illegal object name
    40053: _errno.EPERM,  # v3 root protected
    40054: _errno.EBUSY,  # v3 upload of the same name ongoing
    40071: _errno.EIO,  # invalid signature (the client re-signs first)
    40073: _errno.EBUSY,  # lock conflict
    40074: _errno.E2BIG,  # too many URIs in one batch
    40075: _errno.EBUSY,  # lock expired
    40076: _errno.ESTALE,  # stale version (previous entity mismatch)
    40077: _errno.EISDIR,  # entity does not exist (a folder has none)
    40078: _errno.ENOENT,  # file in the recycle bin
    40079: _errno.E2BIG,  # walked-file limit reached
    40082: _errno.EACCES,  # owner only
    40088: _errno.EACCES,  # anonymous access denied
    40089: _errno.EACCES,  # OAuth scope missing
    # login flow (only met by connect(); a mount then reports EACCES)
    40017: _errno.EACCES,  # user banned
    40018: _errno.EACCES,  # user not activated
    40022: _errno.EACCES,  # wrong two-factor code
    40026: _errno.EACCES,  # captcha required / wrong
    40027: _errno.EACCES,  # captcha refresh needed
    40080: _errno.EACCES,  # wrong email or password
    # Cloudreve 3 only (3.8.3 numbering; the shared codes above mean the same there)
    40021: _errno.EACCES,  # v3 login: user not found
    40023: _errno.EACCES,  # v3 2FA: the login session (cookie) is gone
    40035: _errno.EIO,  # v3 upload: undecodable storage policy id (client bug)
    40047: _errno.EIO,  # v3: the user's file system could not be set up
    40057: _errno.EAGAIN,  # v3: available storage policy changed (list again)
}

# HTTP status (outside the Cloudreve envelope: proxies, the content endpoint)
# -> errno.  Anything not listed is EIO.
HTTP_STATUS_ERRNO: dict[int, int] = {
    401: _errno.EACCES,
    403: _errno.EACCES,
    404: _errno.ENOENT,  # content endpoint: the blob is gone
    413: _errno.EFBIG,  # a proxy's body size limit
    414: _errno.ENAMETOOLONG,
    429: _errno.EAGAIN,  # rate limited (retried first)
    504: _errno.ETIMEDOUT,  # gateway timeout
    507: _errno.ENOSPC,
}

# Network failures -> errno: TransportError (refused, reset, TLS, DNS...) is
# EIO and RequestTimeout is ETIMEDOUT; both set as class attributes above.

BATCH_PARTIAL_FAILURE = 40081


def errno_for_code(code: int, aggregated: Mapping[str, CloudreveError] | None = None) -> int:
    """errno for a Cloudreve envelope code; a batch failure takes its first item's."""
    if code == BATCH_PARTIAL_FAILURE and aggregated:
        return next(iter(aggregated.values())).errno
    return CODE_ERRNO.get(code, _errno.EIO)


def errno_for_status(status: int) -> int:
    """errno for an HTTP status met outside a Cloudreve envelope."""
    return HTTP_STATUS_ERRNO.get(status, _errno.EIO)


def errno_for(exc: BaseException) -> int:
    """The errno to answer the kernel with for any exception.

    cloudfs errors carry their own; OS errors keep theirs (a full cache disk
    stays ENOSPC); anything else is a bug and becomes EIO.
    """
    if isinstance(exc, CloudfsError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return _errno.EIO
