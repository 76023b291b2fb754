"""Fixtures of the server conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudfs.server.testing import RunningServer, start_server

from .helpers import Api
from .koohelpers import kapi, kd_fresh, kd_server  # noqa: F401 (the KooDrive emulator's fixtures)
from .v3helpers import Api3


@pytest.fixture
def api(server) -> Iterator[Api]:
    """A logged-in HTTP session against the module's server."""
    with Api(server) as session:
        yield session


@pytest.fixture
def fresh_api(fresh_server) -> Iterator[Api]:
    with Api(fresh_server) as session:
        yield session


# --- v3 dialect (Cloudreve 3.8.3) ---------------------------------------------------------
@pytest.fixture(scope="module")
def v3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One ``cloudfs server --dialect v3`` per test module (faults enabled, cleared after each test)."""
    with start_server(tmp_path_factory.mktemp("v3-server"), faults=True, dialect="v3") as srv:
        yield srv


@pytest.fixture
def v3_fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("v3-fresh"), faults=True, dialect="v3") as srv:
        yield srv


@pytest.fixture
def api3(v3_server: RunningServer) -> Iterator[Api3]:
    """A logged-in cookie session against the module's v3 server."""
    with Api3(v3_server) as session:
        yield session
    v3_server.faults.clear()


@pytest.fixture
def fresh_api3(v3_fresh_server: RunningServer) -> Iterator[Api3]:
    with Api3(v3_fresh_server) as session:
        yield session
