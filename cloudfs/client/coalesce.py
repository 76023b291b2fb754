"""Fresh answers shared: callers that ask for the same read at about the same
time share one request, and each still gets an answer the server gave after
it asked.

A caller that arrives while no request for its key is in flight sends one;
one that arrives while a request is in flight (sent before it asked, so
perhaps blind to what the caller just did) waits for it to end, then sends
the next one for everybody who arrived meanwhile.  So under load a key costs
at most one request in flight and one waiting, whatever the number of callers.

Used by dialects whose only way to learn an object's state is to list its
folder (Cloudreve 3: every upload that lands needs the new file's id from
its folder's listing, and a ``tar x`` lands several at once in one folder).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

from cloudfs.errors import CloudfsError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class _Round(Generic[T]):
    """One request and everybody waiting for its answer."""

    done: trio.Event = field(default_factory=trio.Event)
    result: T | None = None
    #: the request's failure, shared by those who joined it
    error: CloudfsError | None = None
    #: the request never gave an answer: the others ask again
    abandoned: bool = False


class FreshReads(Generic[K, T]):
    def __init__(self) -> None:
        #: the round whose request is in flight, by key
        self._running: dict[K, _Round[T]] = {}
        #: the round that starts when the running one ends (not sent yet: anyone may join it)
        self._next: dict[K, _Round[T]] = {}

    async def read(self, key: K, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``'s answer, from a call that started after this one did."""
        while True:
            joined = self._next.get(key)
            if joined is None:
                return await self._lead(key, fetch)
            await joined.done.wait()
            if joined.abandoned:
                continue
            if joined.error is not None:
                # a copy: one exception object raised in several tasks would mix their tracebacks
                raise copy.copy(joined.error) from joined.error
            return joined.result  # type: ignore[return-value]

    async def _lead(self, key: K, fetch: Callable[[], Awaitable[T]]) -> T:
        mine: _Round[T] = _Round()
        self._next[key] = mine
        with self._stage(self._next, key, mine, last=False):
            running = self._running.get(key)
            if running is not None:
                await running.done.wait()  # its request went out before we asked
        # from here to the request no checkpoint: nobody joins a round already sent
        self._running[key] = mine
        with self._stage(self._running, key, mine, last=True):
            mine.result = await fetch()
            return mine.result
        raise AssertionError("unreachable")  # pragma: no cover (a context manager may swallow, to mypy)

    @staticmethod
    @contextmanager
    def _stage(table: dict[K, _Round[T]], key: K, mine: _Round[T], *, last: bool) -> Iterator[None]:
        """One stage of ``mine`` (waiting, then its request), listed in
        ``table`` while it lasts; when the round ends (answered, failed or
        abandoned) those who joined it hear of it."""
        try:
            yield
        except CloudfsError as exc:
            mine.error = exc
            raise
        except BaseException:
            mine.abandoned = True  # never answered (its sender was cancelled): the others ask again
            raise
        finally:
            if table.get(key) is mine:
                del table[key]
            if last or mine.abandoned or mine.error is not None:
                mine.done.set()
