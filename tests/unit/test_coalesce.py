"""Fresh reads shared by callers that ask at about the same time (client/coalesce.py)."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from cloudfs.client.coalesce import FreshReads
from cloudfs.errors import CloudfsError


class Server:
    """Counts reads; each answers the number of writes made before it was sent."""

    def __init__(self) -> None:
        self.writes = 0
        self.reads = 0
        self.release = trio.Event()
        self.fail: CloudfsError | None = None

    async def read(self) -> int:
        self.reads += 1
        seen = self.writes
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return seen


async def test_callers_arriving_during_a_read_share_the_next_one_which_sees_their_writes():
    reads: FreshReads[str, int] = FreshReads()
    server = Server()
    answers: dict[str, int] = {}

    async def caller(name: str) -> None:
        server.writes += 1  # what the caller did before it asks
        answers[name] = await reads.read("folder", server.read)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller, "first")
        await trio.testing.wait_all_tasks_blocked()
        for name in ("second", "third", "fourth"):
            nursery.start_soon(caller, name)
        await trio.testing.wait_all_tasks_blocked()
        assert server.reads == 1  # the others wait: the read in flight was sent before they wrote
        server.release.set()
    assert server.reads == 2
    assert answers == {"first": 1, "second": 4, "third": 4, "fourth": 4}


async def test_other_keys_are_not_held_up():
    reads: FreshReads[str, int] = FreshReads()
    server = Server()
    server.release.set()
    assert await reads.read("a", server.read) == 0
    assert await reads.read("b", server.read) == 0
    assert server.reads == 2


async def test_a_cancelled_sender_leaves_its_round_to_the_others():
    reads: FreshReads[str, int] = FreshReads()
    server = Server()
    answers: list[int] = []
    async with trio.open_nursery() as nursery:
        leader = trio.CancelScope()

        async def first() -> None:
            with leader:
                await reads.read("k", server.read)

        async def other() -> None:
            answers.append(await reads.read("k", server.read))

        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(other)  # waits for the round after the first's
        await trio.testing.wait_all_tasks_blocked()
        leader.cancel()
        await trio.testing.wait_all_tasks_blocked()
        server.release.set()
    assert answers == [0] and server.reads == 2


async def test_a_failed_read_fails_everybody_who_joined_it_each_with_its_own_error():
    reads: FreshReads[str, int] = FreshReads()
    server = Server()
    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await reads.read("k", server.read)
        except CloudfsError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(caller)
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        server.fail = CloudfsError("gone", errno=errno.ENOENT)
        server.release.set()
    assert len(errors) == 3 and all(e.errno == errno.ENOENT for e in errors)
    assert errors[1] is not errors[2]  # the joiners' copies
    with pytest.raises(CloudfsError):
        await reads.read("k", server.read)  # nothing left behind: a new read, failing again
