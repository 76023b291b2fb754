"""Error types of cloudfs, backend-neutral, and how they become errno values.

Every layer raises a :class:`CloudfsError` subclass; the filesystem layer calls
:func:`errno_for` exactly once, at the FUSE boundary.  A backend's own error
codes and their errnos live in that backend's code table under
:mod:`cloudfs.client` (Cloudreve: :mod:`cloudfs.client.cloudreve_codes`); here
are only the typed errors those tables map onto (:class:`NotFound`,
:class:`VersionConflict`...), the HTTP status table and :func:`errno_for`.

This module imports nothing from cloudfs.
"""

from __future__ import annotations

import errno as _errno


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


class UnsupportedServer(CloudfsError):
    """The URL does not point at a server of any registered backend."""

    errno = _errno.EPROTONOSUPPORT


#: its first name, from when Cloudreve was the only backend
NotCloudreveError = UnsupportedServer


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


# --- typed errors: what a backend's answer means, in no backend's words ------
# Each backend maps its own wire codes onto these in one table (Cloudreve:
# cloudfs.client.cloudreve_codes), so the layers above catch a meaning
# (``except VersionConflict``) instead of a number.  The errno given by a
# backend's table wins over the class default (409 and 40073 are both
# LockConflict, EAGAIN and EBUSY).


class BackendRefusal(CloudfsError):
    """The server answered and refused the request (an error code in its
    answer, not a broken connection)."""


class NotFound(BackendRefusal):
    """The object (or its parent) does not exist."""

    errno = _errno.ENOENT


class AlreadyExists(BackendRefusal):
    """Something already has that name (no backend overwrites on create, rename or move)."""

    errno = _errno.EEXIST


class NoSpace(BackendRefusal):
    """The user's quota or the server's storage is full."""

    errno = _errno.ENOSPC


class TooLarge(BackendRefusal):
    """The file is larger than the server accepts."""

    errno = _errno.EFBIG


class VersionConflict(BackendRefusal):
    """The object's content is no longer the version the request was made
    against (someone else changed it): nothing was done."""

    errno = _errno.ESTALE


class SessionExpired(BackendRefusal):
    """The upload session is unknown to the server or expired: upload
    again with a new one."""

    errno = _errno.EIO


class LockConflict(BackendRefusal):
    """Refused because of a concurrent operation on the same object, before
    doing anything: safe to try again, even for a non-idempotent request."""

    errno = _errno.EBUSY


class Busy(BackendRefusal):
    """The object is busy (a lock or an upload of the same name) in a way
    that asking again at once does not fix."""

    errno = _errno.EBUSY


class InvalidRequest(BackendRefusal):
    """The server found the request malformed (bad parameter or name)."""

    errno = _errno.EINVAL


class NotSupported(BackendRefusal):
    """The server does not offer this (a feature switched off, a storage
    policy cloudfs cannot use)."""

    errno = _errno.EOPNOTSUPP


class PermissionDenied(BackendRefusal):
    """The account may not do this."""

    errno = _errno.EACCES


class IsAFolder(BackendRefusal):
    """A file operation on a folder."""

    errno = _errno.EISDIR


class NotAFolder(BackendRefusal):
    """A folder operation (listing, a path component) on a file."""

    errno = _errno.ENOTDIR


class TooMany(BackendRefusal):
    """Too many objects for one request."""

    errno = _errno.E2BIG


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
