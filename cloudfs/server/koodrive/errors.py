"""KooDrive's error answers: the 13000xxx code table and how errors are rendered.

Business errors are HTTP 400 with ``{"code": 13000xxx, "msg": ...}`` (the
reference's error-code page).  Authentication failures come from the API
gateway in front of KooDrive; their exact codes are not documented, so they
follow the named assumption ``auth_errors`` (see docs/koodrive-emulator.md):
a bad, unknown or expired token is HTTP 401 ``APIGW.0301``; a bad signature,
X-Date outside its window or a missing/mismatched X-User-Id is HTTP 400
"authentication failed" ``APIGW.0303``.
"""

from __future__ import annotations

from typing import Any

PREFIX = 13000000

# the codes the reference lists (last three digits), with the meaning shown there
BAD_PARAMETER = PREFIX + 102
SPACE_ABNORMAL = PREFIX + 301
NOT_IN_SPACE = PREFIX + 302
RECYCLED_CONFLICT = PREFIX + 303
BAD_TARGET = PREFIX + 304
NOT_RECYCLED = PREFIX + 305
ALREADY_RECYCLED = PREFIX + 306
NESTED_MOVE = PREFIX + 307
BAD_METADATA = PREFIX + 308
NOT_EXIST = PREFIX + 309
DEPTH_EXCEEDED = PREFIX + 310
NO_SPACE = PREFIX + 311
ALREADY_IN_TARGET = PREFIX + 312
UPLOAD_TASK_MISSING = PREFIX + 401
INTEGRITY_FAILED = PREFIX + 402
STATUS_CHANGE_FAILED = PREFIX + 403
RECYCLE_STATE = PREFIX + 404
DUPLICATE_NAME = PREFIX + 405
FOLDER_NOT_ALLOWED = PREFIX + 406
DOWNLOAD_FAILED = PREFIX + 407
DOWNLOAD_URL_FAILED = PREFIX + 408
UPLOAD_FAILED = PREFIX + 409
NO_PERMISSION = PREFIX + 410
NOT_IN_THIS_SPACE = PREFIX + 411
SPACE_INACTIVE = PREFIX + 412

MESSAGES: dict[int, str] = {
    BAD_PARAMETER: "Invalid parameter.",
    SPACE_ABNORMAL: "The space is abnormal.",
    NOT_IN_SPACE: "The file does not exist in this space.",
    RECYCLED_CONFLICT: "The file is in the recycle bin.",
    BAD_TARGET: "Invalid target folder.",
    NOT_RECYCLED: "The file is not in the recycle bin.",
    ALREADY_RECYCLED: "The file is already in the recycle bin.",
    NESTED_MOVE: "A folder cannot be moved or copied into itself.",
    BAD_METADATA: "Invalid file metadata.",
    NOT_EXIST: "The file does not exist.",
    DEPTH_EXCEEDED: "The folder depth limit is exceeded.",
    NO_SPACE: "Insufficient space.",
    ALREADY_IN_TARGET: "The file is already in the target folder.",
    UPLOAD_TASK_MISSING: "The upload task does not exist.",
    INTEGRITY_FAILED: "File integrity check failed.",
    STATUS_CHANGE_FAILED: "Failed to change the file status.",
    RECYCLE_STATE: "The file is in the recycle bin.",
    DUPLICATE_NAME: "A file with the same name already exists.",
    FOLDER_NOT_ALLOWED: "The operation is not allowed on a folder.",
    DOWNLOAD_FAILED: "Download failed.",
    DOWNLOAD_URL_FAILED: "Failed to obtain the download URL.",
    UPLOAD_FAILED: "Upload failed.",
    NO_PERMISSION: "No permission on the space.",
    NOT_IN_THIS_SPACE: "The file does not exist in this space.",
    SPACE_INACTIVE: "The space is inactive.",
}

# gateway answers (assumption ``auth_errors``)
TOKEN_INVALID = "APIGW.0301"
SIGNATURE_INVALID = "APIGW.0303"


class KooError(Exception):
    """An error answer: HTTP ``status`` with ``{"code", "msg"}``."""

    def __init__(self, code: int | str, msg: str | None = None, status: int = 400) -> None:
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code if isinstance(code, int) else -1, "Error.")
        self.status = status
        super().__init__(f"{code}: {self.msg}")


def bad(msg: str) -> KooError:
    return KooError(BAD_PARAMETER, msg)


def unauthorized(msg: str) -> KooError:
    return KooError(TOKEN_INVALID, f"Incorrect IAM authentication information: {msg}", 401)


def auth_failed(msg: str) -> KooError:
    return KooError(SIGNATURE_INVALID, f"Incorrect app authentication information: {msg}", 400)


def body(exc: KooError, as_string: bool) -> dict[str, Any]:
    code: int | str = exc.code
    if as_string and isinstance(code, int):
        code = str(code)
    return {"code": code, "msg": exc.msg}
