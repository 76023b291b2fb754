"""Error codes, error values and the JSON envelope of the v3 dialect (Cloudreve 3.8.3).

This module owns what ``pkg/serializer/{error,response}.go`` do at 3.8.3:

* the envelope ``{"code", "data"?, "msg", "error"?}`` (``serializer.Response``):
  ``data`` is omitted only when nil, ``error`` carries the raw Go error text
  and is sent only when gin is not in release mode (``--debug``);
* :class:`V3Error`, an ``AppError`` (code, message, raw cause) and
  :func:`err`, which is ``serializer.Err``: when the cause is itself an
  AppError its code and message win over the caller's;
* the well-known errors of ``pkg/filesystem/errors.go`` (same codes and
  English messages).

Every v3 JSON answer is HTTP 200 with ``Cache-Control: private, no-cache``
(``middleware.CacheControl`` on the ``/api/v3`` group).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..common.goformat import GoJSONResponse

# --- codes (pkg/serializer/error.go @3.8.3), the subset this server can answer ---
NOT_FULLY_SUCCESS = 203
CHECK_LOGIN = 401
NO_PERMISSION = 403
NOT_FOUND = 404
PARAM_ERR = 40001
UPLOAD_FAILED = 40002
CREATE_FOLDER_FAILED = 40003
OBJECT_EXIST = 40004
SIGN_EXPIRED = 40005
POLICY_NOT_ALLOWED = 40006
UPLOAD_SESSION_EXPIRED = 40011
INVALID_CHUNK_INDEX = 40012
INVALID_CONTENT_LENGTH = 40013
PARENT_NOT_EXIST = 40016
USER_BANNED = 40017
USER_NOT_ACTIVATED = 40018
CREDENTIAL_INVALID = 40020
USER_NOT_FOUND = 40021
TWO_FA_CODE_ERR = 40022
LOGIN_SESSION_NOT_EXIST = 40023
POLICY_NOT_EXIST = 40035
FILE_NOT_FOUND = 40044
FILE_TOO_LARGE = 40049
FILE_TYPE_NOT_ALLOWED = 40050
INSUFFICIENT_CAPACITY = 40051
ILLEGAL_OBJECT_NAME = 40052
ROOT_PROTECTED = 40053
CONFLICT_UPLOAD_ONGOING = 40054
INVALID_SIGN = 40071
DB_ERROR = 50001
IO_FAILED = 50004
INTERNAL_SETTING = 50005
NOT_SET = -1

#: 40006 at session creation: the only Chinese message a filesystem client meets
POLICY_CHANGED_MSG = "存储策略发生变化，请刷新文件列表并重新添加此任务"


class V3Error(Exception):
    """``serializer.AppError``: a code, the message sent as ``msg`` and the raw cause text."""

    def __init__(self, code: int, msg: str, raw: str | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.raw = raw

    def with_raw(self, raw: str | None) -> V3Error:
        """``AppError.WithError``: same code and message, another cause."""
        return V3Error(self.code, self.msg, raw)

    def __str__(self) -> str:  # Go's AppError.Error() is just the message
        return self.msg


def err(code: int, msg: str, cause: BaseException | str | None = None) -> V3Error:
    """``serializer.Err``: an AppError cause supplies code, message and raw text."""
    if isinstance(cause, V3Error):
        return V3Error(cause.code, cause.msg, cause.raw)
    return V3Error(code, msg, None if cause is None else str(cause))


def param_err(msg: str = "", raw: str | None = None) -> V3Error:
    """``serializer.ParamErr``: 40001, default message "Invalid parameters."."""
    return V3Error(PARAM_ERR, msg or "Invalid parameters.", raw)


# --- pkg/filesystem/errors.go ----------------------------------------------------
def file_too_large() -> V3Error:
    return V3Error(FILE_TOO_LARGE, "File is too large")


def insufficient_capacity() -> V3Error:
    return V3Error(INSUFFICIENT_CAPACITY, "Insufficient capacity")


def illegal_name() -> V3Error:
    return V3Error(ILLEGAL_OBJECT_NAME, "Invalid object name")


def root_protected() -> V3Error:
    return V3Error(ROOT_PROTECTED, "Root protected")


def file_existed(raw: str | None = None) -> V3Error:
    return V3Error(OBJECT_EXIST, "Object existed", raw)


def upload_session_existed() -> V3Error:
    return V3Error(CONFLICT_UPLOAD_ONGOING, "Upload session existed")


def path_not_exist() -> V3Error:
    return V3Error(PARENT_NOT_EXIST, "Path not exist")


def object_not_exist(raw: str | None = None) -> V3Error:
    return V3Error(PARENT_NOT_EXIST, "Object not exist", raw)


def io_failed(raw: str | None = None) -> V3Error:
    return V3Error(IO_FAILED, "Failed to read file data", raw)


def one_object_only() -> V3Error:
    return param_err("You can only copy one object at the same time")


def login_required() -> V3Error:
    return V3Error(CHECK_LOGIN, "Login required")


# --- the envelope ------------------------------------------------------------------
_MISSING = object()


def envelope(code: int = 0, data: Any = _MISSING, msg: str = "", error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code}
    if data is not _MISSING and data is not None:  # interface{} with omitempty: only nil is dropped
        out["data"] = data
    out["msg"] = msg
    if error:
        out["error"] = error
    return out


def v3_json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    merged = {"Cache-Control": "private, no-cache"}
    merged.update(headers or {})
    return GoJSONResponse(payload, status_code=status, headers=merged)


def ok(data: Any = _MISSING) -> Response:
    return v3_json(envelope(0, data))


def error_response(exc: V3Error, debug: bool, headers: dict[str, str] | None = None) -> Response:
    return v3_json(envelope(exc.code, msg=exc.msg, error=exc.raw if debug else None), headers=headers)
