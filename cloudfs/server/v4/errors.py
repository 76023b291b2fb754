"""Cloudreve error codes and the error values the server passes around.

This module owns the numeric codes (``pkg/serializer/error.go``), the
:class:`AppError` that carries a code plus a message, wrapping of errors with
context (Cloudreve builds its ``msg`` for single-item batch failures from the
whole Go error chain, so we keep that chain as text), and the per-URI
:class:`AggregateError` that becomes code 40081 with ``aggregated_error``.

Resolution follows ``serializer.ErrWithDetails``: the *outermost* AppError in
the chain supplies ``msg``; its code is inherited from an AppError it wraps;
an error chain without any AppError becomes code -1 with an empty ``msg``.
"""

from __future__ import annotations

from typing import Any

# --- codes (subset a filesystem client can meet, plus login flow) ---------
NOT_FULLY_SUCCESS = 203
CHECK_LOGIN = 401
NO_PERMISSION = 403
NOT_FOUND = 404
CONFLICT = 409
PARAM_ERR = 40001
UPLOAD_FAILED = 40002
OBJECT_EXIST = 40004
SIGN_EXPIRED = 40005
POLICY_NOT_ALLOWED = 40006
GROUP_NOT_ALLOWED = 40007
UPLOAD_SESSION_EXPIRED = 40011
INVALID_CHUNK_INDEX = 40012
INVALID_CONTENT_LENGTH = 40013
PARENT_NOT_EXIST = 40016
USER_BANNED = 40017
USER_NOT_ACTIVATED = 40018
FEATURE_NOT_ENABLED = 40019
CREDENTIAL_INVALID = 40020
TWO_FA_CODE_ERR = 40022
FILE_TOO_LARGE = 40049
INSUFFICIENT_CAPACITY = 40051
ILLEGAL_OBJECT_NAME = 40052
INVALID_SIGN = 40071
LOCK_CONFLICT = 40073
TOO_MANY_URIS = 40074
STALE_VERSION = 40076
ENTITY_NOT_EXIST = 40077
FILE_DELETED = 40078
FILE_COUNT_LIMIT = 40079
INVALID_PASSWORD = 40080
BATCH_NOT_FULLY_COMPLETED = 40081
OWNER_ONLY = 40082
DB_ERROR = 50001
ENCRYPT_ERROR = 50002
IO_FAILED = 50004
INTERNAL_SETTING = 50005
NOT_SET = -1


class AppError(Exception):
    """An error with a Cloudreve code; ``raw`` is the wrapped cause (or None)."""

    def __init__(self, code: int, msg: str, raw: BaseException | str | None = None,
                 data: Any = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.raw = raw
        #: extra payload for the envelope's ``data`` (lock conflicts)
        self.data = data

    def with_error(self, raw: BaseException | str | None) -> AppError:
        """Same code and message, new cause (``AppError.WithError``)."""
        return AppError(self.code, self.msg, raw, self.data)

    def err_code(self) -> int:
        # ErrCode(): a wrapped AppError's code wins over ours
        if isinstance(self.raw, AppError):
            return self.raw.err_code()
        return self.code

    def __str__(self) -> str:
        if self.raw is not None and str(self.raw) != "":
            return f"{self.msg}: {self.raw}"
        return self.msg


class Wrapped(Exception):
    """``fmt.Errorf("prefix: %w", cause)``: context text around a cause."""

    def __init__(self, prefix: str, cause: BaseException) -> None:
        super().__init__(prefix)
        self.prefix = prefix
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.prefix}: {self.cause}"


class PlainError(Exception):
    """A Go error that is not an AppError (becomes code -1, empty msg)."""


def wrap(prefix: str, err: BaseException) -> Wrapped:
    return Wrapped(prefix, err)


def find_app_error(err: BaseException | str | None) -> AppError | None:
    """errors.As(err, &AppError): the outermost AppError of the chain."""
    while err is not None and not isinstance(err, str):
        if isinstance(err, AppError):
            return err
        if isinstance(err, Wrapped):
            err = err.cause
        elif isinstance(err, AggregateError):
            return None
        else:
            return None
    return None


class AggregateError(Exception):
    """Per-URI failures of a batch call, keyed by the (re-serialised) URI."""

    def __init__(self) -> None:
        super().__init__("aggregate error: one or more operation failed")
        self.errors: dict[str, BaseException] = {}

    def add(self, key: str, err: BaseException) -> None:
        self.errors[key] = err

    def merge(self, err: BaseException) -> bool:
        inner = err
        while isinstance(inner, (Wrapped, AppError)):
            inner = inner.cause if isinstance(inner, Wrapped) else inner.raw  # type: ignore[assignment]
        if isinstance(inner, AggregateError):
            self.errors.update(inner.errors)
            return True
        return False

    def aggregate(self) -> AppError | None:
        """None when nothing failed, else the 40081 error (``Aggregate()``)."""
        if not self.errors:
            return None
        msg = "One or more operation failed"
        if len(self.errors) == 1:
            msg = str(next(iter(self.errors.values())))
        return AppError(BATCH_NOT_FULLY_COMPLETED, msg, self)

    def __str__(self) -> str:
        return "aggregate error: one or more operation failed"


# --- the well-known errors of pkg/filemanager/fs and friends -------------
def path_not_exist(raw: BaseException | str | None = None) -> AppError:
    return AppError(PARENT_NOT_EXIST, "Path not exist", raw)


def entity_not_exist(raw: BaseException | str | None = None) -> AppError:
    return AppError(ENTITY_NOT_EXIST, "Entity not exist", raw)


def file_existed(raw: BaseException | str | None = None) -> AppError:
    return AppError(OBJECT_EXIST, "Object existed", raw)


def not_supported(raw: BaseException | str | None = None) -> AppError:
    return AppError(NO_PERMISSION, "Not supported action", raw)


def permission_denied(raw: BaseException | str | None = None) -> AppError:
    return AppError(NO_PERMISSION, "Permission denied", raw)


def lock_conflict(data: Any, raw: str) -> AppError:
    return AppError(LOCK_CONFLICT, "Lock conflict", raw, data)


def lock_expired(raw: BaseException | str | None = None) -> AppError:
    return AppError(LOCK_CONFLICT, "Lock expired", raw)


def illegal_name(raw: BaseException | str | None = None) -> AppError:
    return AppError(ILLEGAL_OBJECT_NAME, "Invalid object name", raw)


def too_large() -> AppError:
    return AppError(FILE_TOO_LARGE, "File is too large")


def insufficient_capacity() -> AppError:
    return AppError(INSUFFICIENT_CAPACITY, "Insufficient capacity")


def stale_version() -> AppError:
    return AppError(STALE_VERSION, "File is updated during your edit")


def owner_only(raw: BaseException | str | None = None) -> AppError:
    return AppError(OWNER_ONLY, "Only owner or administrator can perform this action", raw)


def login_required() -> AppError:
    return AppError(CHECK_LOGIN, "Login required")


def unknown_uri(raw: BaseException | str | None = None) -> AppError:
    return AppError(PARAM_ERR, "unknown uri", raw)


#: ent's NotFoundError text, kept so single-item batch messages read like Go's
ENT_NOT_FOUND = "ent: file not found"
