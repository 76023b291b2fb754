"""The one error type of the fs core: an errno for the kernel.

Core, Namespace and Content raise :class:`FsError` (through :func:`fail`);
only :mod:`cloudfs.fs.ops`, the pyfuse3 adapter, turns it into
``pyfuse3.FUSEError``, so the core runs and is tested without pyfuse3's
error machinery.  Deliberately not a :class:`cloudfs.errors.CloudfsError`:
handlers that catch a client's errors must not catch the answer the core
has already decided on.
"""

from __future__ import annotations

import os


class FsError(Exception):
    """The filesystem operation fails with ``errno``."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno, os.strerror(errno))
        self.errno = errno

    def __str__(self) -> str:
        return os.strerror(self.errno)


def fail(code: int) -> FsError:
    return FsError(code)
