"""Typed errors: a backend's wire codes mean NotFound, VersionConflict...
through its one code table, and the shared layers decide on meanings."""

import errno
import pickle

import pytest

from cloudfs.client.cloudreve_codes import CODES, CloudreveError
from cloudfs.client.retry import should_retry
from cloudfs.errors import (
    AlreadyExists,
    BackendRefusal,
    LockConflict,
    NoSpace,
    NotFound,
    SessionExpired,
    VersionConflict,
)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (40016, NotFound),
        (40004, AlreadyExists),
        (40051, NoSpace),
        (40076, VersionConflict),
        (40011, SessionExpired),
        (40073, LockConflict),
        (409, LockConflict),
    ],
)
def test_a_code_is_its_meaning(code, kind):
    exc = CloudreveError(code, "x")
    assert isinstance(exc, kind) and isinstance(exc, CloudreveError)
    assert exc.code == code and exc.errno == CODES[code].errno


def test_an_unknown_code_is_a_plain_refusal():
    exc = CloudreveError(50001, "db")
    assert type(exc) is CloudreveError and isinstance(exc, BackendRefusal) and exc.errno == errno.EIO


def test_the_table_errno_wins_over_the_class_default():
    assert CloudreveError(409).errno == errno.EAGAIN and CloudreveError(40073).errno == errno.EBUSY


def test_a_batch_failure_means_what_its_first_item_means():
    exc = CloudreveError(40081, "some failed", aggregated={"a": CloudreveError(40076), "b": CloudreveError(40016)})
    assert isinstance(exc, VersionConflict) and not isinstance(exc, NotFound) and exc.errno == errno.ESTALE


def test_typed_errors_survive_pickling():
    exc = pickle.loads(pickle.dumps(CloudreveError(40076, "stale", correlation_id="c")))
    assert isinstance(exc, VersionConflict) and exc.code == 40076 and exc.correlation_id == "c"


def test_retry_decides_on_the_meaning_not_the_number():
    # any backend's LockConflict is refused-before-doing-anything: retried even when not idempotent
    assert should_retry(LockConflict("busy"), idempotent=False)
    assert not should_retry(NotFound("gone"), idempotent=True)
    assert not should_retry(VersionConflict("stale"), idempotent=True)
