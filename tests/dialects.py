"""Fixtures that run a test level against both server dialects.

A level's conftest imports them (``from tests.dialects import *``): its
``server`` and ``fresh_server`` then override tests/conftest.py's and follow
the module-scoped ``dialect`` parameter ("v4", "v3", and "koodrive" for
modules that set ``ON_KOODRIVE = True``), so every test that uses a server
runs against a Cloudreve 4 and a Cloudreve 3 server (and KooDrive's).  A test marked
``@pytest.mark.v4_only("why")`` (or a module with ``pytestmark = ...``) is
skipped on v3 with that reason; ``@pytest.mark.koodrive_lacks("feature")`` on
KooDrive, and ``@pytest.mark.cloudreve_only("why")`` (a check of Cloudreve's
own codes or chunk rules, with a KooDrive counterpart elsewhere or none
needed) too (the markers are registered in tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cloudfs.server.testing import RunningServer, start_server

__all__ = ["DIALECTS", "SLOW", "dialect", "pytest_generate_tests", "fresh_server", "keeps_metadata", "server", "_v4_only"]

#: the Cloudreve dialects every module runs on
DIALECTS = ["v4", "v3"]
#: a module that sets ``ON_KOODRIVE = True`` (its tests make sense on KooDrive,
#: with skips naming what KooDrive lacks) runs on the KooDrive emulator too
KOODRIVE = "koodrive"
#: ``CLOUDFS_TEST_DIALECTS=koodrive`` (comma-separated) overrides both, for
#: iterating on one dialect
OVERRIDE = "CLOUDFS_TEST_DIALECTS"


#: ``ON_KOODRIVE = SLOW``: the module's KooDrive runs are marked slow (``make test``
#: leaves them out, ``make test-slow`` runs them): for modules whose time a third
#: dialect would grow too much
SLOW = "slow"


def dialects_of(module: object) -> list[str]:
    if os.environ.get(OVERRIDE):
        return os.environ[OVERRIDE].split(",")
    return DIALECTS + ([KOODRIVE] if getattr(module, "ON_KOODRIVE", False) else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The ``dialect`` of each module (see :func:`dialects_of`)."""
    if "dialect" in metafunc.fixturenames and "dialect" not in getattr(metafunc.module, "__dict__", {}):
        slow = getattr(metafunc.module, "ON_KOODRIVE", False) == SLOW
        values = [pytest.param(d, marks=pytest.mark.slow) if slow and d == KOODRIVE else d
                  for d in dialects_of(metafunc.module)]
        metafunc.parametrize("dialect", values, indirect=True, scope="module")

#: dialects whose objects keep no custom metadata (mode, exact mtime): there
#: a chmod or utime lives in the mount only (capabilities.custom_metadata)
NO_METADATA = frozenset({"v3", "koodrive"})


def keeps_metadata(dialect: str) -> bool:
    return dialect not in NO_METADATA


@pytest.fixture(scope="module")
def dialect(request: pytest.FixtureRequest) -> str:
    """The server dialect this module's tests run against."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp(f"server-{dialect}"), faults=True, dialect=dialect) as srv:
        yield srv


@pytest.fixture
def fresh_server(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp(f"fresh-server-{dialect}"), faults=True, dialect=dialect) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _v4_only(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("v4_only")
    if marker is not None and "dialect" in request.fixturenames and request.getfixturevalue("dialect") == "v3":
        pytest.skip(marker.args[0] if marker.args else "needs Cloudreve 4")
    lacks = request.node.get_closest_marker("koodrive_lacks")
    if lacks is not None and "dialect" in request.fixturenames and request.getfixturevalue("dialect") == "koodrive":
        pytest.skip(f"KooDrive lacks {lacks.args[0]}")
    only = request.node.get_closest_marker("cloudreve_only")
    if only is not None and "dialect" in request.fixturenames and request.getfixturevalue("dialect") == "koodrive":
        pytest.skip(f"Cloudreve only: {only.args[0]}")
