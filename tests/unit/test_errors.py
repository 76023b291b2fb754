"""THE errno table (cloudfs.errors)."""

import errno

import pytest

from cloudfs.errors import (
    AuthenticationError,
    CloudfsError,
    NameTooLong,
    NotCloudreveError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    TLSFailure,
    TransportError,
    UnsupportedStoragePolicy,
    errno_for,
    errno_for_status,
)
from cloudfs.client.cloudreve_codes import CODE_ERRNO, CloudreveError, errno_for_code


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (40016, errno.ENOENT),
        (404, errno.ENOENT),
        (40078, errno.ENOENT),
        (40004, errno.EEXIST),
        (40051, errno.ENOSPC),
        (40049, errno.EFBIG),
        (40052, errno.EINVAL),
        (40001, errno.EINVAL),
        (401, errno.EACCES),
        (40020, errno.EACCES),
        (40080, errno.EACCES),
        (40082, errno.EACCES),
        (403, errno.EPERM),
        (40073, errno.EBUSY),
        (40076, errno.ESTALE),
        (40077, errno.EISDIR),
        (40006, errno.EOPNOTSUPP),
        (409, errno.EAGAIN),
        (50001, errno.EIO),
        (-1, errno.EIO),
        (12345, errno.EIO),
    ],
)
def test_code_errno(code, expected):
    assert errno_for_code(code) == expected
    assert errno_for(CloudreveError(code, "x")) == expected


def test_table_values_are_errnos():
    known = set(errno.errorcode)
    assert all(v in known for v in CODE_ERRNO.values())


def test_batch_error_takes_first_inner_errno():
    exc = CloudreveError(
        40081,
        "One or more operation failed",
        aggregated={"cloudreve://my/a": CloudreveError(40016, "Path not exist"),
                    "cloudreve://my/b": CloudreveError(40004, "exists")},
        correlation_id="c-1",
    )
    assert exc.errno == errno.ENOENT
    text = str(exc)
    assert "40081" in text and "cloudreve://my/a: 40016 Path not exist" in text and "c-1" in text
    assert errno_for_code(40081) == errno.EIO  # nothing aggregated: unknown


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TransportError("reset"), errno.EIO),
        (TLSFailure("bad cert"), errno.EIO),
        (RequestTimeout("slow"), errno.ETIMEDOUT),
        (ProtocolError("garbage"), errno.EIO),
        (ServerError("502", status=502), errno.EIO),
        (ServerError("504", status=504), errno.ETIMEDOUT),
        (ServerError("507", status=507), errno.ENOSPC),
        (NotCloudreveError("nope"), errno.EPROTONOSUPPORT),
        (AuthenticationError("no"), errno.EACCES),
        (UnsupportedStoragePolicy("s3"), errno.EOPNOTSUPP),
        (NameTooLong("x" * 300), errno.ENAMETOOLONG),
        (CloudfsError("x", errno=errno.ENOTDIR), errno.ENOTDIR),
        (FileNotFoundError(errno.ENOENT, "gone"), errno.ENOENT),
        (OSError(errno.ENOSPC, "full"), errno.ENOSPC),
        (KeyError("bug"), errno.EIO),
    ],
)
def test_errno_for_exceptions(exc, expected):
    assert errno_for(exc) == expected


def test_http_status_table():
    assert errno_for_status(404) == errno.ENOENT
    assert errno_for_status(413) == errno.EFBIG
    assert errno_for_status(500) == errno.EIO


def test_transport_error_delivery_flag():
    assert TransportError("x").maybe_delivered is True
    assert TransportError("x", maybe_delivered=False).maybe_delivered is False
    assert TLSFailure("x").maybe_delivered is False
    assert ServerError("x", status=502).status == 502
