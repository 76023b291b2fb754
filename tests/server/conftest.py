"""Fixtures of the server conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import Api


@pytest.fixture
def api(server) -> Iterator[Api]:
    """A logged-in HTTP session against the module's server."""
    with Api(server) as session:
        yield session


@pytest.fixture
def fresh_api(fresh_server) -> Iterator[Api]:
    with Api(fresh_server) as session:
        yield session
