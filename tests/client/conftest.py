"""Fixtures for the client tests: connected clients against the real
``cloudfs server``, a unique remote folder per test, and local files with
known content.

Every test that uses a server runs against both dialects: ``dialect`` is a
module-scoped parameter ("v4", "v3") that ``server``, ``fresh_server`` (which
override tests/conftest.py's) and the modules' own servers follow.  A test
marked ``@pytest.mark.v4_only("why")`` is skipped on v3 with that reason."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cloudfs.client.api import ClientSettings, CloudreveClient
from cloudfs.client.auth import TokenStore
from cloudfs.server.testing import RunningServer
from tests.dialects import *  # noqa: F403 (both dialects: dialect, server, fresh_server, v4_only)

#: quick-failing settings: tests that expect failures should not wait 30 s
#: (new files go up by session whatever their size: these tests are about sessions and
#: chunks; test_transfer.py::test_a_small_new_file_goes_up_in_one_request has the other way)
FAST = ClientSettings(request_timeout_s=5.0, deadline_s=15.0, backoff_base_s=0.02, backoff_max_s=0.2,
                      whole_create_max=0)

Connect = Callable[..., Awaitable[CloudreveClient]]


@pytest.fixture
def token_store(tmp_path) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json")


@pytest.fixture
async def connect(server, token_store) -> AsyncIterator[Connect]:
    """Open more clients to the shared server; all are closed at the end."""
    opened: list[CloudreveClient] = []

    async def _connect(url: str | None = None, *, srv=None, settings: ClientSettings = FAST, store=token_store,
                       email: str | None = None, password: str | None = None, **kw) -> CloudreveClient:
        """Connect to ``srv`` (default: the shared server); ``email=""`` /
        ``password=""`` mean "none given"."""
        srv = srv or server
        client = await CloudreveClient.connect(
            url or srv.url,
            email=srv.email if email is None else email or None,
            password=srv.password if password is None else password or None,
            token_store=store,
            settings=settings,
            **kw,
        )
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        await client.aclose()


@pytest.fixture
async def client(connect) -> CloudreveClient:
    return await connect()


@pytest.fixture
async def folder(client) -> str:
    """A fresh remote folder for this test."""
    path = f"/t-{uuid.uuid4().hex[:10]}"
    await client.mkdir(path)
    return path


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; return their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(f"seed-{seed}".encode()).digest() * (1 << 15)  # 1 MiB pattern
    with open(path, "wb") as f:
        written = 0
        n = 0
        while written < size:
            piece = (block[n % 32:] + block[:n % 32])[: min(len(block), size - written)]
            f.write(piece)
            digest.update(piece)
            written += len(piece)
            n += 1
    return digest.hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def remote_sha256(client: CloudreveClient, path: str) -> str:
    entry = await client.stat(path)
    return sha256(await client.read(entry, 0, entry.size))


@pytest.fixture
def local_file(tmp_path) -> Callable[[int, int], tuple[Path, str]]:
    def _make(size: int, seed: int = 0) -> tuple[Path, str]:
        p = tmp_path / f"src-{size}-{seed}-{os.urandom(3).hex()}"
        return p, make_file(p, size, seed)

    return _make
