"""One HTTP range written straight into a file, by libcurl (pycurl) in a
worker thread: the bulk data path of downloads.

httpx on trio reads a body in Python, piece by piece (h11's buffers, one
trio checkpoint and a copy per piece), which costs more CPU than the network
gives bytes: a cold read reached 0.3-0.4x of curl.  libcurl receives without
the GIL and :func:`fetch_range` hands each buffer to ``os.pwrite`` at its
place in a sparse cache file, so the event loop only hears "done".  The
metadata calls stay on httpx (one stack for everything that is JSON).

:func:`fetch_range` blocks; run it with ``trio.to_thread.run_sync``.  It
touches nothing but its own handle, the file descriptor it was given and a
stop flag, and never raises for HTTP trouble: it reports what happened
(:class:`RangeResult`) and the async caller decides (retry, re-sign, fail).
A ``Curl`` handle keeps its connection alive, so :class:`CurlHandles` hands
handles out in trio and takes them back for the next range.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import pycurl

#: bytes libcurl receives per read of the socket.  Small enough that the
#: buffer, and the pieces copied out of it, are still in the CPU's cache
#: when they are written to the file: with 1 MiB (and 1 MiB batches) the
#: copy into the cache file's new pages often read its source from memory:
#: the mount spent 1.1-2.2 CPU s per GiB read cold (more, the busier the
#: machine) against 1.1-1.3 with 256 KiB (A/B pair by pair, bench/read_ab.py)
BUFFER_SIZE = 256 << 10
#: received bytes are written to the file in batches of this size: libcurl
#: hands them over 16 KiB at a time (CURL_MAX_WRITE_SIZE, whatever the
#: buffer size), and a pwrite() per 16 KiB into a sparse file (with other
#: ranges writing the same file) cost 49 us each.  The pieces are kept as
#: they came and written with one pwritev() (copying them into one buffer
#: first cost 8 % of the mount's CPU), while they are still cached (see
#: BUFFER_SIZE)
WRITE_BATCH = 256 << 10
#: the bytes in the file are reported (``stored``) each time this many more
#: are there, so a reader waits for 1 MiB, not the range, and the event
#: loop hears of a range once per MiB, not once per write
REPORT_EVERY = 1 << 20
#: pieces written by one pwritev() call (the kernel's limit, IOV_MAX)
MAX_IOV = 1024
#: bytes kept of an answer that is not content (to read its error envelope)
MAX_ERROR_BODY = 64 << 10

#: decides from the status and headers whether an answer is the content
AcceptFn = Callable[[int, list[tuple[str, str]]], bool]


@dataclass
class RangeResult:
    """What one attempt at a range did."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: content bytes written to the file (from the range's first byte on)
    written: int = 0
    #: whether the answer was accepted as content
    content: bool = False
    #: the start of an answer that was not content
    body: bytes = b""
    #: libcurl's error, if the transfer failed (code, message); None if it ended well
    error: tuple[int, str] | None = None
    #: the stop flag ended it
    stopped: bool = False
    #: what went wrong on our side (writing the file, judging the answer)
    failure: Exception | None = None
    #: connections libcurl opened for it (0: it reused a kept-alive one)
    connects: int = 0


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: float
    #: a transfer that moves no byte for this long has failed
    stall_timeout_s: float
    #: the whole attempt, end to end
    total_s: float
    verify_tls: bool = True
    user_agent: str = "cloudfs"


class _Closable(Protocol):
    def close(self) -> None: ...


H = TypeVar("H", bound=_Closable)


class IdleHandles(Generic[H]):
    """Idle handles of one kind (each with its kept-alive connection).
    Plain ``def``, used from trio only: a handle is lent to one task (and
    its thread) at a time."""

    def __init__(self, make: Callable[[], H], keep: int = 8) -> None:
        self._make = make
        self._idle: list[H] = []
        self._keep = keep
        self._closed = False

    def take(self) -> H:
        return self._idle.pop() if self._idle else self._make()

    def give_back(self, handle: H, *, reusable: bool) -> None:
        if reusable and not self._closed and len(self._idle) < self._keep:
            self._idle.append(handle)
        else:
            handle.close()

    def close(self) -> None:
        """Close the idle handles; one still lent out is closed when it comes back."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class CurlHandles(IdleHandles[pycurl.Curl]):
    """libcurl easy handles for transfers in worker threads."""

    def __init__(self, keep: int = 8) -> None:
        super().__init__(pycurl.Curl, keep)


def write_pieces(fd: int, pieces: list[bytes], offset: int) -> None:
    """Write ``pieces`` back to back into ``fd`` from ``offset`` on, with as
    few pwritev() calls as the kernel allows (a short write is resumed where
    it stopped).  ``pieces`` is emptied as they are written: if an error is
    raised, it holds what was not."""
    while pieces:
        done = os.pwritev(fd, pieces[:MAX_IOV], offset)
        if done <= 0:
            raise OSError(errno.EIO, "the cache file took no bytes")
        offset += done
        whole = 0
        while whole < len(pieces) and done >= len(pieces[whole]):
            done -= len(pieces[whole])
            whole += 1
        del pieces[:whole]
        if done:  # the write ended inside this piece
            pieces[0] = pieces[0][done:]


#: how a transfer ended, as libcurl tells it: None, or its error (code, message)
Outcome = tuple[int, str] | None
#: turns how the transfer ended into what it did
Finish = Callable[[Outcome], RangeResult]


def fetch_range(handle: pycurl.Curl, url: str, start: int, length: int, fd: int, file_offset: int,
                accept: AcceptFn, limits: Limits, stop: threading.Event,
                stored: Callable[[int], None] | None = None) -> RangeResult:
    """GET ``url`` asking for ``[start, start+length)`` and write the content
    to ``fd`` at ``file_offset`` onwards (a server that ignores Range and
    sends the whole content is skipped up to ``start``).  Blocking.

    ``stored(written)`` is called (in this thread) after a write to the
    file that brings the content bytes in it past a multiple of
    ``REPORT_EVERY`` or to the range's end, with their number so far."""
    finish = prepare_range(handle, url, start, length, fd, file_offset, accept, limits, stop, stored)
    try:
        handle.perform()
    except pycurl.error as exc:
        return finish(curl_error_of(exc))
    return finish(None)


def curl_error_of(exc: pycurl.error) -> tuple[int, str]:
    raw_code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    return (raw_code if isinstance(raw_code, int) else -1), message  # (the stubs allow a str code)


def prepare_range(handle: pycurl.Curl, url: str, start: int, length: int, fd: int, file_offset: int,
                  accept: AcceptFn, limits: Limits, stop: threading.Event | None,
                  stored: Callable[[int], None] | None = None) -> Finish:
    """Set ``handle`` up for :func:`fetch_range`'s transfer, to be performed
    by the caller (blocking, or in a multi handle); the function returned
    makes its :class:`RangeResult` once it has ended.  Without ``stop``,
    the transfer is stopped by taking it out of its multi handle."""
    result = RangeResult()
    end = start + length
    skip = 0  # bytes still to skip of an answer that ignored Range (200: from byte 0)
    decided = False
    #: the answer is content and nothing is left to skip: pieces go straight to ``pieces``
    streaming = False
    #: received content not yet written, as libcurl handed it over (no copy)
    pieces: list[bytes] = []
    filled = 0  # bytes in ``pieces``
    reported = 0  # content bytes last told to ``stored``

    def on_header(line: bytes) -> None:
        text = line.decode("latin-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            result.headers.clear()  # a new answer (after a 100 Continue, say)
            parts = text.split()
            result.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        elif ":" in text:
            name, _, value = text.partition(":")
            result.headers.append((name.strip().lower(), value.strip()))

    def on_body(data: bytes) -> int | None:
        # the hot path (once per 16 KiB, libcurl's most): keep the piece
        nonlocal filled
        if streaming and filled + len(data) < WRITE_BATCH and result.written + filled + len(data) < length:
            pieces.append(data)
            filled += len(data)
            return None
        try:
            return take(data)
        except Exception as exc:  # an exception would only be printed by pycurl: stop, and say why
            result.failure = exc
            return 0

    def take(data: bytes) -> int | None:
        nonlocal decided, skip, filled, streaming
        if not decided:
            decided = True
            result.content = accept(result.status, result.headers)
            skip = start if result.status == 200 else 0
        if not result.content:
            result.body += data[:MAX_ERROR_BODY - len(result.body)]
            return None if len(result.body) < MAX_ERROR_BODY else 0  # 0: enough, stop
        if skip:
            cut = min(skip, len(data))
            data, skip = data[cut:], skip - cut
        streaming = not skip
        room = length - result.written - filled
        surplus = len(data) > room
        if surplus:
            data = data[:room]  # a body longer than the range (a 200): the rest is not ours
        if data:
            pieces.append(data)
            filled += len(data)
        if filled >= WRITE_BATCH or result.written + filled >= length:
            flush()
        # 0 ends a body longer than the range (which costs the connection);
        # a body that ends with the range is taken to its end, so that
        # libcurl keeps the connection for the next range
        return 0 if surplus else None

    def flush() -> None:
        """Write what was received and not yet written (``written`` counts
        only bytes in the file, so a cut transfer resumes after them)."""
        nonlocal filled, reported
        try:
            write_pieces(fd, pieces, file_offset + result.written)
        finally:
            left = sum(len(piece) for piece in pieces)
            result.written += filled - left
            filled = left
        if stored is not None and (result.written // REPORT_EVERY > reported // REPORT_EVERY
                                   or result.written >= length):
            reported = result.written
            stored(reported)

    handle.reset()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.HTTPHEADER, [f"Range: bytes={start}-{end - 1}", "Accept-Encoding: identity"])
    handle.setopt(pycurl.USERAGENT, limits.user_agent)
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.FOLLOWLOCATION, 0)
    handle.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
    handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(int(limits.connect_timeout_s * 1000), 1))
    handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
    handle.setopt(pycurl.LOW_SPEED_TIME, max(int(limits.stall_timeout_s), 1))
    handle.setopt(pycurl.TIMEOUT_MS, max(int(limits.total_s * 1000), 1))
    handle.setopt(pycurl.SSL_VERIFYPEER, 1 if limits.verify_tls else 0)
    handle.setopt(pycurl.SSL_VERIFYHOST, 2 if limits.verify_tls else 0)
    handle.setopt(pycurl.HEADERFUNCTION, on_header)
    handle.setopt(pycurl.WRITEFUNCTION, on_body)
    if stop is not None:
        def on_progress(_dl_total: int, _dl_now: int, _ul_total: int, _ul_now: int) -> int:
            return 1 if stop.is_set() else 0

        handle.setopt(pycurl.NOPROGRESS, 0)
        handle.setopt(pycurl.XFERINFOFUNCTION, on_progress)

    def finish(outcome: Outcome) -> RangeResult:
        if outcome is not None:
            code, message = outcome
            finished = result.content and result.written + filled >= length
            stopped_by_us = code == pycurl.E_WRITE_ERROR and (finished or len(result.body) >= MAX_ERROR_BODY)
            if code == pycurl.E_ABORTED_BY_CALLBACK and stop is not None and stop.is_set():
                result.stopped = True
            elif result.failure is None and not stopped_by_us:
                result.error = (code, message)
        if filled and result.failure is None:
            try:
                flush()  # what came before the end (or before a cut) is good content
            except OSError as exc:
                result.failure = exc
        if not result.status:
            result.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
        result.connects = int(handle.getinfo(pycurl.NUM_CONNECTS))
        return result

    return finish
