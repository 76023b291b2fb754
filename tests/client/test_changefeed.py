"""The client's change feed against the real server: what it hears, what it does not,
how it recovers (server restart, a silent stream) and where there is no feed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from cloudfs.client import clientid
from cloudfs.client.api import ClientSettings, CloudreveClient
from cloudfs.client.changefeed import BACKOFF_FIRST_S, Change, ChangeFeed, FeedState, StateChange
from cloudfs.server.testing import RunningServer, start_server

FAST = ClientSettings(request_timeout_s=5.0, deadline_s=15.0, backoff_base_s=0.02, backoff_max_s=0.2)
SERVER_ARGS = ["--events-debounce", "0.2", "--events-keepalive", "1"]


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("feed"), faults=True, extra_args=SERVER_ARGS) as srv:
        yield srv


async def connect(srv: RunningServer) -> CloudreveClient:
    return await CloudreveClient.connect(srv.url, email=srv.email, password=srv.password, settings=FAST)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.states: list[StateChange] = []

    def change(self, change: Change) -> None:
        self.changes.append(change)

    def state(self, state: StateChange) -> None:
        self.states.append(state)

    async def until(self, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.05)


@asynccontextmanager
async def feed_of(srv: RunningServer, **options: Any) -> AsyncIterator[tuple[CloudreveClient, ChangeFeed, Recorder]]:
    """A client of ``srv`` with its change feed running for the block."""
    client = await connect(srv)
    seen = Recorder()
    feed = client.change_feed(on_change=seen.change, on_state=seen.state, **options)
    assert feed is not None
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        yield client, feed, seen
        nursery.cancel_scope.cancel()


@pytest.fixture
async def listening(events_server: RunningServer) -> AsyncIterator[tuple[CloudreveClient, Recorder]]:
    async with feed_of(events_server, silence_limit_s=5.0) as (client, feed, seen):
        await seen.until(lambda: feed.state == FeedState.LIVE)
        yield client, seen


async def test_hears_other_clients_but_not_itself(events_server: RunningServer, listening) -> None:
    client, seen = listening
    base = f"/feed-{uuid.uuid4().hex[:8]}"
    await client.mkdir(base)  # its own change: never echoed
    other = await connect(events_server)
    async with other:
        await other.mkdir(base + "/theirs")
        await other.rename(base + "/theirs", "renamed")
    await seen.until(lambda: len(seen.changes) >= 1)
    await trio.sleep(0.5)
    assert [(c.kind, c.path, c.new_path) for c in seen.changes] == [("create", base + "/renamed", "")]


async def test_every_request_carries_the_client_id_it_was_given(events_server: RunningServer, listening) -> None:
    client, seen = listening
    base = f"/adopt-{uuid.uuid4().hex[:8]}"
    other = await connect(events_server)
    async with other:
        other.use_client_id(client.client_id)  # the same id: as if it were the listener itself
        await other.mkdir(base)
        await other.mkdir(base + "/x")
    await trio.sleep(1.0)
    assert seen.changes == []


async def test_reconnects_after_a_server_restart(tmp_path: Path) -> None:
    with start_server(tmp_path / "srv", faults=False, extra_args=SERVER_ARGS) as srv:
        async with feed_of(srv, silence_limit_s=5.0) as (_, feed, seen):
            await seen.until(lambda: feed.state == FeedState.LIVE)
            await trio.to_thread.run_sync(srv.restart)
            await seen.until(lambda: [s.state for s in seen.states][-2:] == [FeedState.DISCONNECTED,
                                                                             FeedState.LIVE], timeout=20)
            assert not seen.states[-1].resumed  # the restarted server kept nothing for us
            other = await connect(srv)
            async with other:
                await other.mkdir("/after-restart")
            await seen.until(lambda: [c.path for c in seen.changes] == ["/after-restart"])


async def test_a_silent_stream_counts_as_dead(events_server: RunningServer) -> None:
    # a stream that says nothing for longer than the silence limit (here its answer is
    # held back 3 s, the limit is 0.5 s) is given up and opened again
    events_server.faults.set(reply_delay_s=3.0, path_regex="/file/events", count=1)
    try:
        async with feed_of(events_server, silence_limit_s=0.5, keepalive_s=0.0) as (_, feed, seen):
            started = trio.current_time()
            await seen.until(lambda: feed.state == FeedState.LIVE, timeout=20)
            assert seen.states[0].state == FeedState.DISCONNECTED  # the first try timed out
            assert feed.connects >= 2
            # not back before the server's next keep-alive (+5 s) found the old stream gone
            assert trio.current_time() - started >= 5.0
    finally:
        events_server.faults.clear()


@pytest.mark.parametrize("switch,reason", [("disabled", "switched off"), ("absent", "before 4.11")])
async def test_no_feed_on_the_server(tmp_path: Path, switch: str, reason: str) -> None:
    with start_server(tmp_path / "srv", faults=False, extra_args=["--events", switch]) as srv:
        async with feed_of(srv) as (_, feed, seen):
            await seen.until(lambda: feed.state == FeedState.UNAVAILABLE)
            assert reason in seen.states[-1].reason


async def test_cloudreve_3_has_no_feed(tmp_path: Path) -> None:
    with start_server(tmp_path / "srv", faults=False, dialect="v3") as srv:
        client = await connect(srv)
        async with client:
            assert client.change_feed(on_change=print, on_state=print) is None


def test_the_client_id_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "client-id"
    first = clientid.load_or_create(path)
    assert clientid.load_or_create(path) == first == str(uuid.UUID(first))
    path.write_text("garbage")
    assert clientid.load_or_create(path) != first
    assert BACKOFF_FIRST_S >= 1.0  # the server must notice the old stream is gone before we are back
