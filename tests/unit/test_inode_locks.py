"""InodeLocks: one lock per inode, taken in order, free ones without a wait."""

import trio

from cloudfs.fs.handles import InodeLocks


async def test_inode_locks_exclude_each_other_and_are_dropped_when_free():
    locks = InodeLocks()
    order: list[str] = []

    async def first(task_status=trio.TASK_STATUS_IGNORED):
        async with locks.hold(3, 1):
            task_status.started()
            order.append("first in")
            await trio.sleep(0.05)
            order.append("first out")

    async def second():
        async with locks.hold(1):
            order.append("second in")

    async with trio.open_nursery() as nursery:
        await nursery.start(first)
        nursery.start_soon(second)
    assert order == ["first in", "first out", "second in"]
    assert not locks._locks and not locks._users
    # a free lock is taken with no checkpoint: nothing else runs meanwhile
    ran: list[int] = []

    async def other() -> None:
        ran.append(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        async with locks.hold(7):
            assert ran == []
