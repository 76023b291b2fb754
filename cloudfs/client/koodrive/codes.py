"""KooDrive's error codes: THE code table of the KooDrive backend and
:class:`KooDriveError`, what a non-zero ``code`` becomes.

Business errors are HTTP 400 ``{"code": 13000xxx, "msg": ...}``; the reference
types ``code`` as Integer on some pages and String on others, so both are read.
A ``KooDriveError`` is also an instance of the typed error its code means
(``KooDriveError(13000405)`` is an :class:`AlreadyExists`), so the layers above
catch meanings; only this backend looks at numbers.
"""

from __future__ import annotations

import errno as _errno

from cloudfs.client.codes import CodeTable, Meaning, meaning_of
from cloudfs.errors import (
    AlreadyExists,
    BackendRefusal,
    InvalidRequest,
    IsAFolder,
    NoSpace,
    NotAFolder,
    NotFound,
    PermissionDenied,
    TooMany,
)

_M = Meaning
P = 13000000

BAD_PARAMETER = P + 102
NOT_IN_SPACE = P + 302
BAD_TARGET = P + 304
NESTED_MOVE = P + 307
NOT_EXIST = P + 309
NO_SPACE = P + 311
ALREADY_IN_TARGET = P + 312
UPLOAD_TASK_MISSING = P + 401
INTEGRITY_FAILED = P + 402
DUPLICATE_NAME = P + 405
IS_FOLDER = P + 406

# the reference's table (research notes §1) with its suggested errnos; anything
# not listed (201, past 414, gateway codes) is a plain refusal with EIO
CODES: CodeTable = {
    P + 102: _M(InvalidRequest, _errno.EINVAL),  # bad parameter
    P + 301: _M(BackendRefusal, _errno.EIO),  # space abnormal
    P + 302: _M(NotFound, _errno.ENOENT),  # not in this space
    P + 303: _M(NotFound, _errno.ENOENT),  # recycle-bin state conflict
    P + 304: _M(NotAFolder, _errno.ENOTDIR),  # bad target (not a folder)
    P + 305: _M(NotFound, _errno.ENOENT),  # not in the recycle bin
    P + 306: _M(NotFound, _errno.ENOENT),  # already in the recycle bin
    P + 307: _M(InvalidRequest, _errno.EINVAL),  # nested move (into itself)
    P + 308: _M(BackendRefusal, _errno.EIO),  # bad metadata
    P + 309: _M(NotFound, _errno.ENOENT),  # does not exist
    P + 310: _M(TooMany, _errno.EMLINK),  # folder depth limit
    P + 311: _M(NoSpace, _errno.ENOSPC),  # insufficient space
    P + 312: _M(AlreadyExists, _errno.EEXIST),  # already in the target folder (the dialect treats it as done)
    P + 401: _M(BackendRefusal, _errno.EIO),  # upload task missing
    P + 402: _M(BackendRefusal, _errno.EIO),  # integrity (SHA-256) failure
    P + 403: _M(BackendRefusal, _errno.EIO),  # status change failed
    P + 404: _M(NotFound, _errno.ENOENT),  # item in the recycle bin
    P + 405: _M(AlreadyExists, _errno.EEXIST),  # duplicate name
    P + 406: _M(IsAFolder, _errno.EISDIR),  # not allowed on a folder
    P + 407: _M(BackendRefusal, _errno.EIO),  # download failed
    P + 408: _M(BackendRefusal, _errno.EIO),  # download URL failed
    P + 409: _M(BackendRefusal, _errno.EIO),  # upload failed / parts missing
    P + 410: _M(PermissionDenied, _errno.EACCES),  # no permission on the space
    P + 411: _M(NotFound, _errno.ENOENT),  # not in this space
    P + 412: _M(BackendRefusal, _errno.EIO),  # space inactive
}


def code_of(raw: object) -> int | str:
    """``code`` as an int where it is a number (the docs send Integer and String)."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    return int(text) if text.lstrip("-").isdigit() else text


class KooDriveError(BackendRefusal):
    """A non-zero ``code`` in a KooDrive answer (``code`` may be a gateway
    string such as ``APIGW.0301``)."""

    def __new__(cls, code: int | str, message: str = "") -> KooDriveError:
        kind = meaning_of(CODES, code).kind if isinstance(code, int) else BackendRefusal
        target = cls if kind is BackendRefusal else _typed(kind)
        return super().__new__(target)

    def __init__(self, code: int | str, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.errno = meaning_of(CODES, code).errno if isinstance(code, int) else _errno.EIO

    def __reduce__(self) -> tuple[object, ...]:
        return (KooDriveError, (self.code, self.message))

    def __str__(self) -> str:
        return f"KooDrive error {self.code}" + (f": {self.message}" if self.message else "")


_TYPED: dict[type, type] = {}


def _typed(kind: type[BackendRefusal]) -> type[KooDriveError]:
    made = _TYPED.get(kind)
    if made is None:
        made = type(f"KooDrive{kind.__name__}", (KooDriveError, kind), {"__module__": __name__})
        _TYPED[kind] = made
    return made
