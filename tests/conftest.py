"""Shared pytest fixtures for the whole test suite.

Server fixtures (``cloudfs.server.testing``):

* ``server``: one ``cloudfs server`` subprocess per test module, in a temp
  data dir, fault injection enabled; faults are cleared after every test that
  used it (autouse ``_clear_server_faults``).
* ``fresh_server``: a new server per test (for restarts, quotas, state checks).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudfs.server.testing import RunningServer, start_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "v4_only(reason): the test needs a Cloudreve 4 feature; skipped on v3")
    config.addinivalue_line("markers", "koodrive_lacks(feature): the test needs a feature KooDrive lacks; "
                            "skipped there, naming it")
    config.addinivalue_line("markers", "cloudreve_only(reason): the test checks Cloudreve specifics (its wire "
                            "codes, chunk rules); skipped on KooDrive with that reason")
    config.addinivalue_line("markers", "koodrive_slow: the test's KooDrive run is marked slow (make test leaves "
                            "it out; the Cloudreve runs stay in)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(item, "callspec", None)
        if item.get_closest_marker("koodrive_slow") and params and params.params.get("dialect") == "koodrive":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("server"), faults=True) as srv:
        yield srv


@pytest.fixture
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("fresh-server"), faults=True) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clear_server_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    srv = request.getfixturevalue("server") if "server" in request.fixturenames else None
    yield
    if srv is not None:
        srv.faults.clear()
