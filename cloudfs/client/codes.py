"""A backend's code table: its wire error codes -> typed error and errno.

Each backend has exactly one table (Cloudreve: :mod:`cloudreve_codes`), so
the layers above see :class:`cloudfs.errors.NotFound` or
:class:`cloudfs.errors.VersionConflict`, never a number.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from dataclasses import dataclass

from cloudfs.errors import BackendRefusal


@dataclass(frozen=True, slots=True)
class Meaning:
    """What one wire code means: the typed error and the errno the kernel gets."""

    kind: type[BackendRefusal]
    errno: int


CodeTable = Mapping[int, Meaning]


def meaning_of(table: CodeTable, code: int) -> Meaning:
    """The code's meaning; an unknown code is a plain refusal (EIO)."""
    return table.get(code) or Meaning(BackendRefusal, _errno.EIO)
