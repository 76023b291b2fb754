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

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pycurl

#: bytes libcurl receives per read of the socket (its maximum is 10 MiB)
BUFFER_SIZE = 1 << 20
#: received bytes are written to the file in pieces of this size: libcurl
#: hands them over 16 KiB at a time, and a pwrite() per 16 KiB into a sparse
#: file (with other ranges writing the same file) cost 49 us each.  One
#: buffer of this size is reused for the whole range: small enough to stay in
#: the CPU's cache between the copy in and the write out (a 4 MiB batch grown
#: and freed each time cost more in page faults and cache misses), and each
#: write is reported (``stored``), so a reader waits for 1 MiB, not the range
WRITE_BATCH = 1 << 20
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


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: float
    #: a transfer that moves no byte for this long has failed
    stall_timeout_s: float
    #: the whole attempt, end to end
    total_s: float
    verify_tls: bool = True
    user_agent: str = "cloudfs"


class CurlHandles:
    """Idle libcurl handles (each with its kept-alive connection).  Plain
    ``def``, used from trio only: a handle is lent to one thread at a time."""

    def __init__(self, keep: int = 8) -> None:
        self._idle: list[pycurl.Curl] = []
        self._keep = keep
        self._closed = False

    def take(self) -> pycurl.Curl:
        return self._idle.pop() if self._idle else pycurl.Curl()

    def give_back(self, handle: pycurl.Curl, *, reusable: bool) -> None:
        if reusable and not self._closed and len(self._idle) < self._keep:
            self._idle.append(handle)
        else:
            handle.close()

    def close(self) -> None:
        """Close the idle handles; one still lent out is closed when it comes back."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def fetch_range(handle: pycurl.Curl, url: str, start: int, length: int, fd: int, file_offset: int,
                accept: AcceptFn, limits: Limits, stop: threading.Event,
                stored: Callable[[int], None] | None = None) -> RangeResult:
    """GET ``url`` asking for ``[start, start+length)`` and write the content
    to ``fd`` at ``file_offset`` onwards (a server that ignores Range and
    sends the whole content is skipped up to ``start``).  Blocking.

    ``stored(written)`` is called (in this thread) after each write to the
    file, with the number of content bytes in the file so far."""
    result = RangeResult()
    end = start + length
    state = {"skip": 0, "decided": False, "filled": 0}
    batch = bytearray(min(WRITE_BATCH, length))

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
        try:
            return take(data)
        except Exception as exc:  # an exception would only be printed by pycurl: stop, and say why
            result.failure = exc
            return 0

    def take(data: bytes) -> int | None:
        if not state["decided"]:
            state["decided"] = True
            result.content = accept(result.status, result.headers)
            state["skip"] = start if result.status == 200 else 0
        if not result.content:
            result.body += data[:MAX_ERROR_BODY - len(result.body)]
            return None if len(result.body) < MAX_ERROR_BODY else 0  # 0: enough, stop
        view = memoryview(data)
        if state["skip"]:
            cut = min(state["skip"], len(view))
            view, state["skip"] = view[cut:], state["skip"] - cut
        view = view[:length - result.written - state["filled"]]
        while view:
            filled = state["filled"]
            room = min(len(batch) - filled, len(view))
            batch[filled:filled + room] = view[:room]
            view = view[room:]
            state["filled"] = filled + room
            if state["filled"] == len(batch):
                flush()
        return 0 if result.written + state["filled"] >= length else None  # 0 ends a body longer than the range

    def flush() -> None:
        """Write what was received and not yet written (``written`` counts
        only bytes in the file, so a cut transfer resumes after them)."""
        with memoryview(batch) as whole:
            off, filled = 0, state["filled"]
            while off < filled:
                with whole[off:filled] as rest:
                    done = os.pwrite(fd, rest, file_offset + result.written)
                result.written += done
                off += done
        state["filled"] = 0
        if stored is not None:
            stored(result.written)

    def on_progress(_dl_total: int, _dl_now: int, _ul_total: int, _ul_now: int) -> int:
        return 1 if stop.is_set() else 0

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
    handle.setopt(pycurl.NOPROGRESS, 0)
    handle.setopt(pycurl.XFERINFOFUNCTION, on_progress)
    try:
        handle.perform()
    except pycurl.error as exc:
        raw_code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
        code = raw_code if isinstance(raw_code, int) else -1  # libcurl's code (the stubs allow a str)
        finished = result.content and result.written + state["filled"] >= length
        stopped_by_us = code == pycurl.E_WRITE_ERROR and (finished or len(result.body) >= MAX_ERROR_BODY)
        if code == pycurl.E_ABORTED_BY_CALLBACK and stop.is_set():
            result.stopped = True
        elif result.failure is None and not stopped_by_us:
            result.error = (code, message)
    if state["filled"] and result.failure is None:
        try:
            flush()  # what came before the end (or before a cut) is good content
        except OSError as exc:
            result.failure = exc
    if not result.status:
        result.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
    return result
