"""Streaming HTTP bodies without leaving async generators behind.

httpx and httpcore implement their body streams as chains of async
generators.  Abandoning one half-way (a reader that stops early, a write
that fails mid-body) leaves the chain suspended; when it is garbage
collected trio warns "Async generator ... was garbage collected before it had
been exhausted" (encode/httpx#3686).  Resources are released anyway, but the
warning is noise (and an error under ``-W error``).  So:

* :class:`ResponseBody` reads a response and always finishes httpx's chain:
  at the expected end by reading on to the end of the message (the
  connection stays reusable), when aborting by closing the response first
  and then pumping the chain until the closed connection makes it raise;
* :class:`FileSlice` is a request body for ``httpx.Request.stream`` that is a
  plain iterator object, not a generator: streamed from a local file by
  ``pread`` in a worker thread, re-creatable for every retry;
* :class:`WholeBody` is the same for a body held in memory (httpx's own
  wraps bytes in a generator, abandoned when the server drops the
  connection mid-body: a refused upload, a dropped connection).
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator

import httpx
import trio

from cloudfs.errors import CloudfsError

#: bound on the pieces pumped out of an aborted response (the connection is
#: closed, so only already-buffered data can come)
_MAX_PUMP = 10_000


class ResponseBody:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._pieces: AsyncIterator[bytes] = response.aiter_raw()
        self.done = False

    async def next(self) -> bytes | None:
        """The next piece, or None at the end of the body.  httpx errors
        propagate as they are (the caller maps them)."""
        if self.done:
            return None
        try:
            return await self._pieces.__anext__()
        except StopAsyncIteration:
            self.done = True
            return None
        except BaseException:
            # an exception (cancellation included) raised inside the chain
            # unwound and finished every generator in it
            self.done = True
            raise

    async def finish(self) -> bool:
        """Read to the end of the message; False if more data came (the
        caller then aborts)."""
        while not self.done:
            piece = await self.next()
            if piece:
                return False
        return True

    async def abort(self) -> None:
        """Give up on the rest of the body: close the connection, then let
        httpx's generators run into the closed connection and finish."""
        with trio.CancelScope(shield=True):
            await self.response.aclose()
            for _ in range(_MAX_PUMP):
                if self.done:
                    break
                try:
                    await self.next()
                except Exception:
                    break

    async def read_at_most(self, limit: int) -> bytes:
        """Up to ``limit`` bytes (error bodies: small), then the body is done."""
        data = bytearray()
        while len(data) < limit:
            piece = await self.next()
            if piece is None:
                return bytes(data)
            data += piece
        await self.abort()
        return bytes(data[:limit])


class FileSlice(httpx.AsyncByteStream):
    """``length`` bytes of an open file from ``offset``, read piece by piece."""

    def __init__(self, fd: int, offset: int, length: int, piece_size: int) -> None:
        self.fd = fd
        self.pos = offset
        self.remaining = length
        self.piece_size = piece_size

    def __aiter__(self) -> "FileSlice":
        return self

    async def __anext__(self) -> bytes:
        if self.remaining <= 0:
            raise StopAsyncIteration
        want = min(self.piece_size, self.remaining)
        data = await trio.to_thread.run_sync(os.pread, self.fd, want, self.pos)
        if not data:
            raise CloudfsError("the local file shrank while it was being uploaded", errno=errno.EIO)
        self.pos += len(data)
        self.remaining -= len(data)
        return data

    async def aclose(self) -> None:
        self.remaining = 0


class WholeBody(httpx.AsyncByteStream):
    """A request body held in memory, sent as one piece.  Every iteration
    starts afresh (a retried request sends it again)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __aiter__(self) -> "_OnePiece":
        return _OnePiece(self.data)


class _OnePiece:
    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> "_OnePiece":
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data
