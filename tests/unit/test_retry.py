"""The write-back's retry policy (upload/retry.py), without uploads."""

import errno
from pathlib import Path

from cloudfs.client.models import Entry
from cloudfs.errors import CloudfsError
from cloudfs.upload.retry import DRAIN_ATTEMPTS, DRAIN_RETRY_S, RETRY_MAX_S, RETRY_MIN_S, Retries
from cloudfs.upload.staging import LocalFile


def _staged(tmp_path: Path) -> LocalFile:
    entry = Entry(file_id="f", path="/f", is_dir=False, size=0, mtime_ns=0, ctime_ns=0, version="v1")
    return LocalFile.create(tmp_path, entry)


def test_a_failure_doubles_the_delay_up_to_the_most_and_a_landed_upload_starts_afresh(tmp_path):
    retries, local = Retries(), _staged(tmp_path)
    delays = [retries.failed(local, 1, CloudfsError("server down", errno=errno.EIO)) for _ in range(12)]
    assert delays[:3] == [RETRY_MIN_S, 2 * RETRY_MIN_S, 4 * RETRY_MIN_S]
    assert delays[-1] == RETRY_MAX_S and max(delays) == RETRY_MAX_S
    assert local.failed_generation == 1 and local.error is not None
    assert list(retries.failing) == ["f"]
    retries.forget("f")
    assert list(retries.failing) == []
    assert retries.failed(local, 2, CloudfsError("again", errno=errno.EIO)) == RETRY_MIN_S


def test_a_full_drive_waits_the_longest_at_once(tmp_path):
    retries, local = Retries(), _staged(tmp_path)
    assert retries.failed(local, 1, CloudfsError("quota", errno=errno.ENOSPC)) == RETRY_MAX_S


def test_a_drain_retries_soon_and_gives_up_after_some_failures_or_one_lasting_one(tmp_path):
    retries, local = Retries(), _staged(tmp_path)
    retries.start_drain()
    assert not retries.given_up(local, uploading=False)  # no failure yet
    for _ in range(DRAIN_ATTEMPTS):
        assert not retries.given_up(local, uploading=False)
        assert retries.failed(local, 1, CloudfsError("down", errno=errno.EIO)) <= DRAIN_RETRY_S
    assert retries.given_up(local, uploading=False)
    assert not retries.given_up(local, uploading=True)  # one is running: wait for it
    retries.end_drain()
    assert not retries.given_up(local, uploading=False)

    retries.start_drain()
    retries.failed(local, 1, CloudfsError("quota", errno=errno.EDQUOT))
    assert retries.given_up(local, uploading=False)
