"""Retry policy: how soon a failed upload is tried again, and when a drain
(umount, shutdown) gives up on one.  A failure doubles the delay, up to
RETRY_MAX_S; one that another attempt will not fix soon (a full drive) waits
the longest at once.  The file stays staged and journaled meanwhile."""

from __future__ import annotations

import errno
import logging
from collections.abc import Collection

from cloudfs.upload.staging import LocalFile

#: the write-back's logger: its parts log as one, as before they were split
log = logging.getLogger("cloudfs.upload.writeback")

RETRY_MIN_S = 1.0
RETRY_MAX_S = 300.0
#: while draining (umount, shutdown), a failed upload is retried this soon...
DRAIN_RETRY_S = 2.0
#: ...and the drain gives up on a file after this many failures in a row
DRAIN_ATTEMPTS = 3
#: errors that another attempt will not fix soon: retried slowly
#: the way out of a full drive, said where the failure is logged
FULL_DRIVE_HINT = ("; deleted files in the server's recycle bin still count against the quota: "
                   "`cloudfs trash URL` shows them, `cloudfs trash URL --empty` frees their space")
SLOW_RETRY_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EINVAL, errno.EACCES, errno.EPERM,
                     errno.ENAMETOOLONG, errno.EOPNOTSUPP}


class Retries:
    def __init__(self) -> None:
        #: the current retry delay of each file whose last upload failed (by id)
        self._delay: dict[str, float] = {}
        #: failures per file since the current drain started (None: not draining)
        self._drain_failures: dict[str, int] | None = None

    @property
    def failing(self) -> Collection[str]:
        """The ids of files whose last upload failed."""
        return self._delay.keys()

    def failed(self, local: LocalFile, generation: int, exc: BaseException) -> float:
        """Record a failed upload of ``local``; returns how soon to try again."""
        local.error = exc
        local.failed_generation = max(local.failed_generation, generation)
        code = getattr(exc, "errno", None)
        delay = self._delay.get(local.file_id, RETRY_MIN_S / 2) * 2
        if code in SLOW_RETRY_ERRNOS:
            delay = RETRY_MAX_S
            log.error(
                "upload of %s failed: %s; its data is kept in %s and will be retried%s",
                local.remote_path, exc, local.staging, FULL_DRIVE_HINT if code in (errno.ENOSPC, errno.EDQUOT) else "",
            )
        else:
            log.warning("upload of %s failed (%s); retrying in %.0f s", local.remote_path, exc, delay)
        delay = min(delay, RETRY_MAX_S)
        self._delay[local.file_id] = delay
        if self._drain_failures is not None:
            self._drain_failures[local.file_id] = self._drain_failures.get(local.file_id, 0) + 1
            delay = min(delay, DRAIN_RETRY_S)
        return delay

    def forget(self, file_id: str) -> None:
        """The file's upload landed, or it is gone: the next failure starts afresh."""
        self._delay.pop(file_id, None)

    def start_drain(self) -> None:
        self._drain_failures = {}

    def end_drain(self) -> None:
        self._drain_failures = None

    def given_up(self, local: LocalFile, uploading: bool) -> bool:
        """Whether the drain under way stops waiting for ``local``."""
        failures = (self._drain_failures or {}).get(local.file_id, 0)
        if uploading or failures == 0:
            return False
        code = getattr(local.error, "errno", None)
        return failures >= DRAIN_ATTEMPTS or code in SLOW_RETRY_ERRNOS
