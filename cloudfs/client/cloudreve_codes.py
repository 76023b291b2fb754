"""Cloudreve's error codes: THE code table of the Cloudreve backend (both
dialects: Cloudreve 3 and 4 give shared codes the same numbers) and
:class:`CloudreveError`, the error a non-zero envelope ``code`` becomes.

A ``CloudreveError`` is also an instance of the typed error its code means
(``CloudreveError(40076)`` is a :class:`VersionConflict`), so the layers
above catch meanings while the dialects can still look at ``code``.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping

from cloudfs.client.codes import CodeTable, Meaning, meaning_of
from cloudfs.errors import (
    AlreadyExists,
    BackendRefusal,
    Busy,
    InvalidRequest,
    IsAFolder,
    LockConflict,
    NoSpace,
    NotFound,
    NotSupported,
    PermissionDenied,
    SessionExpired,
    TooLarge,
    TooMany,
    VersionConflict,
)

_M = Meaning

# Anything not listed (5xxxx, -1, unknown) is a plain refusal with EIO.
CODES: CodeTable = {
    401: _M(PermissionDenied, _errno.EACCES),  # login required (after one refresh attempt)
    403: _M(PermissionDenied, _errno.EPERM),  # not supported action / permission denied
    404: _M(NotFound, _errno.ENOENT),
    409: _M(LockConflict, _errno.EAGAIN),  # object conflict while locking (nothing done)
    40001: _M(InvalidRequest, _errno.EINVAL),  # parameter error
    40002: _M(BackendRefusal, _errno.EIO),  # v3 upload failed
    40003: _M(BackendRefusal, _errno.EIO),  # v3 create folder failed
    40004: _M(AlreadyExists, _errno.EEXIST),  # object exists
    40005: _M(BackendRefusal, _errno.EIO),  # signed URL expired (the client re-signs first)
    40006: _M(NotSupported, _errno.EOPNOTSUPP),  # storage policy does not take chunks through Cloudreve
    #        (v3 upload session: "policy changed"; the client lists again and retries first)
    40007: _M(PermissionDenied, _errno.EPERM),  # group lacks a permission
    40011: _M(SessionExpired, _errno.EIO),  # upload session expired (the client restarts first)
    40012: _M(BackendRefusal, _errno.EIO),  # invalid chunk index; v3: chunk out of order (the client restarts first)
    40013: _M(BackendRefusal, _errno.EIO),  # invalid content length (client bug)
    40016: _M(NotFound, _errno.ENOENT),  # path not exist: the normal "not found"
    40019: _M(NotSupported, _errno.EOPNOTSUPP),  # feature not enabled
    40020: _M(PermissionDenied, _errno.EACCES),  # credential invalid
    40044: _M(NotFound, _errno.ENOENT),  # v3 file not found
    40049: _M(TooLarge, _errno.EFBIG),  # file too large
    40050: _M(InvalidRequest, _errno.EINVAL),  # v3 file type not allowed
    40051: _M(NoSpace, _errno.ENOSPC),  # insufficient capacity
    40052: _M(InvalidRequest, _errno.EINVAL),  # illegal object name
    40053: _M(PermissionDenied, _errno.EPERM),  # v3 root protected
    40054: _M(Busy, _errno.EBUSY),  # v3 upload of the same name ongoing
    40071: _M(BackendRefusal, _errno.EIO),  # invalid signature (the client re-signs first)
    40073: _M(LockConflict, _errno.EBUSY),  # lock conflict (nothing done)
    40074: _M(TooMany, _errno.E2BIG),  # too many URIs in one batch
    40075: _M(Busy, _errno.EBUSY),  # lock expired
    40076: _M(VersionConflict, _errno.ESTALE),  # stale version (previous entity mismatch)
    40077: _M(IsAFolder, _errno.EISDIR),  # entity does not exist (a folder has none)
    40078: _M(NotFound, _errno.ENOENT),  # file in the recycle bin
    40079: _M(TooMany, _errno.E2BIG),  # walked-file limit reached
    40082: _M(PermissionDenied, _errno.EACCES),  # owner only
    40088: _M(PermissionDenied, _errno.EACCES),  # anonymous access denied
    40089: _M(PermissionDenied, _errno.EACCES),  # OAuth scope missing
    # login flow (only met by connect(); a mount then reports EACCES)
    40017: _M(PermissionDenied, _errno.EACCES),  # user banned
    40018: _M(PermissionDenied, _errno.EACCES),  # user not activated
    40022: _M(PermissionDenied, _errno.EACCES),  # wrong two-factor code
    40026: _M(PermissionDenied, _errno.EACCES),  # captcha required / wrong
    40027: _M(PermissionDenied, _errno.EACCES),  # captcha refresh needed
    40080: _M(PermissionDenied, _errno.EACCES),  # wrong email or password
    # Cloudreve 3 only (3.8.3 numbering; the shared codes above mean the same there)
    40021: _M(PermissionDenied, _errno.EACCES),  # v3 login: user not found
    40023: _M(PermissionDenied, _errno.EACCES),  # v3 2FA: the login session (cookie) is gone
    40035: _M(BackendRefusal, _errno.EIO),  # v3 upload: undecodable storage policy id (client bug)
    40047: _M(BackendRefusal, _errno.EIO),  # v3: the user's file system could not be set up
    40057: _M(BackendRefusal, _errno.EAGAIN),  # v3: available storage policy changed (list again)
}

#: code -> errno, the view of :data:`CODES` the kernel cares about
CODE_ERRNO: dict[int, int] = {code: meaning.errno for code, meaning in CODES.items()}

#: a batch call in which some items failed; ``aggregated`` holds them
BATCH_PARTIAL_FAILURE = 40081
#: refused because the object is another version than the request names:
#: v3 raises it itself where it finds out on its own (no server precondition)
STALE_VERSION = 40076
#: the upload session is unknown or expired
UPLOAD_SESSION_EXPIRED = 40011


def errno_for_code(code: int, aggregated: Mapping[str, CloudreveError] | None = None) -> int:
    """errno for a Cloudreve envelope code; a batch failure takes its first item's."""
    if code == BATCH_PARTIAL_FAILURE and aggregated:
        return next(iter(aggregated.values())).errno
    return CODE_ERRNO.get(code, _errno.EIO)


def _kind_of(code: int, aggregated: Mapping[str, CloudreveError] | None) -> type[BackendRefusal]:
    if code == BATCH_PARTIAL_FAILURE and aggregated:
        return _kind_of(next(iter(aggregated.values())).code, None)
    return meaning_of(CODES, code).kind


class CloudreveError(BackendRefusal):
    """A non-zero ``code`` in a Cloudreve response envelope.

    Constructing one gives an instance of a subclass that is also the typed
    error the code means (see :data:`CODES`); a batch failure means what its
    first item means.  ``aggregated`` holds the per-URI errors of a batch
    call (code 40081), keyed by the URI (or id) the server reported.
    """

    def __new__(cls, code: int, *args: object, aggregated: Mapping[str, CloudreveError] | None = None,
                **kwargs: object) -> CloudreveError:
        kind = _kind_of(code, aggregated)
        target = cls if kind is BackendRefusal or issubclass(cls, kind) else _typed_class(cls, kind)
        return super().__new__(target)

    def __init__(
        self,
        code: int,
        message: str = "",
        *,
        correlation_id: str | None = None,
        aggregated: Mapping[str, CloudreveError] | None = None,
        data: object = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.correlation_id = correlation_id
        self.aggregated: dict[str, CloudreveError] = dict(aggregated or {})
        self.data = data
        self.errno = errno_for_code(code, self.aggregated)

    def __reduce__(self) -> tuple[object, ...]:
        # the typed subclasses are made on the fly: rebuild through the base
        return (_rebuild, (self.code, self.message, self.correlation_id, self.aggregated, self.data))

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


def _rebuild(code: int, message: str, correlation_id: str | None, aggregated: Mapping[str, CloudreveError],
             data: object) -> CloudreveError:
    return CloudreveError(code, message, correlation_id=correlation_id, aggregated=aggregated, data=data)


_TYPED: dict[tuple[type, type], type] = {}


def _typed_class(base: type[CloudreveError], kind: type[BackendRefusal]) -> type[CloudreveError]:
    """``base`` that is also ``kind`` (one class per pair, made once)."""
    made = _TYPED.get((base, kind))
    if made is None:
        made = type(f"Cloudreve{kind.__name__}", (base, kind), {"__module__": __name__})
        _TYPED[(base, kind)] = made
    return made
