"""KooDrive uploads against the emulator (real HTTP): parallel parts with
``hashCtx``, the SHA-256 handed in by the caller, and cancelled uploads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
import trio

from cloudfs.client.api import CloudreveClient
from cloudfs.server.testing import RunningServer, start_server

from .conftest import FAST

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("kdu"), faults=True, dialect="koodrive", capacity=4 << 30)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def kclient(kd, token_store):
    client = await CloudreveClient.connect(kd.url, email=kd.email, password=kd.password, token_store=token_store,
                                           settings=FAST)
    try:
        yield client
    finally:
        httpx.delete(kd.url + "/_cloudfs/koodrive/switches")
        await client.aclose()


async def test_cancelled_upload_leaves_nothing_and_the_name_free(kclient, tmp_path):
    """No cancel endpoint: a cancelled upload's task stays on the server,
    invisible; the next upload to the same path must still succeed."""
    data = os.urandom(12 << 20)
    src = tmp_path / "c"
    src.write_bytes(data)
    await kclient.mkdir("/cx")
    with trio.CancelScope() as scope:
        def progress(n: int) -> None:
            scope.cancel()
        await kclient.upload("/cx/f.bin", src, progress=progress)
    assert scope.cancelled_caught
    _, children = await kclient.list_all("/cx")
    assert children == []
    entry = await kclient.upload("/cx/f.bin", src)
    assert entry.path == "/cx/f.bin" and entry.size == len(data)
    assert hashlib.sha256(await kclient.read(entry, 0, entry.size)).digest() == hashlib.sha256(data).digest()
