"""Running a few transfers side by side in a nursery, and turning the
nursery's exception group back into the one error the caller expects
(the contract promises a single ``CloudfsError``, not a group)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from cloudfs.errors import CloudfsError


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def collapse(group: BaseExceptionGroup) -> BaseException:
    """The most telling error of a group: the first cloudfs error, else the
    first that is not a cancellation; the group itself if it holds only
    cancellations (trio must see those to unwind its cancel scopes)."""
    leaves = _leaves(group)
    for leaf in leaves:
        if isinstance(leaf, CloudfsError):
            return leaf
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return group


async def run_all(jobs: Sequence[Callable[[], Awaitable[object]]]) -> None:
    """Run ``jobs`` concurrently; the first failure cancels the rest and is
    raised on its own."""
    try:
        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(job)
    except BaseExceptionGroup as group:
        error = collapse(group)
        if error is group:
            raise
        raise error from None
