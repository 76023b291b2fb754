"""The download engine: ranged, streamed, resumable reads of one content
version through signed URLs.

* :meth:`Downloader.stream` is one HTTP range, yielded as it arrives.  A
  broken connection resumes from the last byte received (after a backoff,
  bounded in attempts without progress and in total time); a refused URL
  (HTTP 200 + envelope instead of content: no ETag) is signed anew.
* :meth:`Downloader.read` splits a large span into aligned parts fetched in
  parallel (``read_parallelism``) into one buffer.
* :meth:`Downloader.fill` writes one range straight into a file at its own
  offsets (the block cache's sparse file), through libcurl in a worker
  thread (:mod:`cloudfs.client.curl`): the bulk path, with no byte passing
  through Python.  Its answers are judged by the same dialect checks.
* Zero-size files and reads past EOF make no request at all.

Every wait is bounded: each network read by the HTTP timeout, the whole
range by ``deadline_s + length / min_transfer_rate``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import httpx
import pycurl
import trio

from cloudfs.client.bodies import ResponseBody
from cloudfs.client.curl import AcceptFn, CurlHandles, Limits, RangeResult, fetch_range, prepare_range
from cloudfs.client.curl_loop import LoopHandles
from cloudfs.client.dialect import Dialect, UrlRefused
from cloudfs.client.http import Http, map_error
from cloudfs.client.models import Entry
from cloudfs.client.plan import ByteRange, clamp_read, plan_ranges
from cloudfs.client.retry import full_jitter, should_retry
from cloudfs.client.tasks import run_all
from cloudfs.client.urlcache import UrlCache
from cloudfs.errors import CloudfsError, ProtocolError, RequestTimeout, TLSFailure, TransportError

log = logging.getLogger(__name__)

#: a refused URL is re-signed at most this often per range
MAX_RESIGN = 3
#: bytes of a non-content answer read to find out what it says
MAX_ERROR_BODY = 64 << 10
#: a range of at most this many bytes is received by the event loop's own
#: thread (:mod:`cloudfs.client.curl_loop`), a larger one in a worker thread
IN_LOOP_MAX = 256 << 10

_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class _Attempts:
    """The retry policy both download paths share: resume a broken range
    from where it stopped (with backoff, a bounded number of failures in a
    row), sign a refused URL anew (a bounded number of times), and give up
    at the range's deadline."""

    def __init__(self, downloader: "Downloader", entry: Entry, length: int) -> None:
        self.settings = downloader.settings
        self.urls = downloader.urls
        self.entry = entry
        self.deadline = trio.current_time() + self.settings.transfer_deadline(length)
        self.failures = 0
        self.resigns = 0
        self.last: CloudfsError | None = None

    def check_deadline(self, missing: int) -> None:
        if trio.current_time() >= self.deadline:
            raise RequestTimeout(f"download of {self.entry.path}: {missing} bytes still missing after the "
                                 f"deadline (last error: {self.last})")

    def progressed(self) -> None:
        self.failures = 0

    def refused(self, exc: UrlRefused, url: str) -> None:
        self.urls.invalidate(self.entry, url)
        self.resigns += 1
        self.last = exc
        if self.resigns > MAX_RESIGN:
            raise CloudfsError(f"download of {self.entry.path}: the server keeps refusing fresh URLs ({exc})",
                               errno=errno.EIO) from None
        log.debug("download URL of %s refused, signing a new one", self.entry.path)

    async def failed(self, exc: CloudfsError, pos: int) -> None:
        """Back off before resuming at ``pos``, or raise ``exc`` if it is not worth it."""
        self.failures += 1
        self.last = exc
        if not should_retry(exc, idempotent=True) or self.failures >= self.settings.max_attempts:
            raise exc
        delay = full_jitter(self.failures, self.settings.backoff_base_s, self.settings.backoff_max_s)
        log.info("download of %s failed at byte %d (%s); resuming in %.2f s", self.entry.path, pos, exc, delay)
        await trio.sleep(min(delay, max(self.deadline - trio.current_time(), 0.0)))


class Downloader:
    def __init__(self, http: Http, dialect: Dialect) -> None:
        self.http = http
        self.settings = http.settings
        self.dialect = dialect
        self.urls = UrlCache(dialect.sign_url)
        self._curl = CurlHandles()
        self._loop_curl = LoopHandles()
        #: connections libcurl opened for :meth:`fill` (kept alive between ranges)
        self.connections = 0

    def close(self) -> None:
        self._curl.close()
        self._loop_curl.close()

    async def read(self, entry: Entry, off: int, length: int) -> bytes:
        span = _span(entry, off, length)
        if span is None:
            return b""
        parts = plan_ranges(span, self.settings.read_part_size)
        if len(parts) == 1:
            pieces: list[bytes] = []
            async with aclosing(self.stream(entry, span.start, span.length)) as stream:
                async for piece in stream:
                    pieces.append(piece)
            return b"".join(pieces)
        buf = bytearray(span.length)
        view = memoryview(buf)
        limiter = trio.CapacityLimiter(max(1, self.settings.read_parallelism))

        async def fetch(part: ByteRange) -> None:
            async with limiter:
                pos = part.start - span.start
                async with aclosing(self.stream(entry, part.start, part.length)) as stream:
                    async for piece in stream:
                        view[pos:pos + len(piece)] = piece
                        pos += len(piece)

        # mypy cannot infer a lambda's type from its default argument (binding each part)
        await run_all([lambda p=p: fetch(p) for p in parts])  # type: ignore[misc]
        view.release()
        return bytes(buf)

    async def stream(self, entry: Entry, off: int, length: int) -> AsyncGenerator[bytes, None]:
        span = _span(entry, off, length)
        if span is None:
            return  # empty file, past EOF or nothing asked: no request
        pos, end = span.start, span.end
        attempts = _Attempts(self, entry, span.length)
        while pos < end:
            attempts.check_deadline(end - pos)
            url = ""
            try:
                url = await self._url(entry, attempts.deadline)
                async with aclosing(self._range(entry, url, ByteRange(pos, end - pos), attempts.deadline)) as pieces:
                    async for piece in pieces:
                        pos += len(piece)
                        attempts.progressed()
                        yield piece  # outside any cancel scope: we are a generator
                if pos < end:
                    raise ProtocolError(f"download of {entry.path}: body ended at byte {pos} of {end}")
            except UrlRefused as exc:
                attempts.refused(exc, url)
            except CloudfsError as exc:
                await attempts.failed(exc, pos)

    async def fill(self, entry: Entry, off: int, length: int, fd: int,
                   progress: Callable[[int], None] | None = None) -> None:
        """Write bytes ``[off, off+length)`` of ``entry``'s content (clamped
        to its size) into ``fd`` at the same offsets, retried and resumed as
        :meth:`stream` is.  The bytes go from libcurl to the file in a worker
        thread; a cancellation stops the transfer before this returns, so
        nothing writes to ``fd`` afterwards.

        ``progress(upto)`` is called in trio (not in the worker thread) as
        the bytes arrive: every byte from ``off`` to ``upto`` is in the file.
        Every call has been made when this returns."""
        span = _span(entry, off, length)
        if span is None:
            return
        pos, end = span.start, span.end
        attempts = _Attempts(self, entry, span.length)
        while pos < end:
            attempts.check_deadline(end - pos)
            url = ""
            try:
                url = await self._url(entry, attempts.deadline)
                written = await self._fill_range(entry, url, pos, end - pos, fd, attempts.deadline, progress)
                if written:
                    pos += written
                    attempts.progressed()
                if pos < end:
                    raise ProtocolError(f"download of {entry.path}: body ended at byte {pos} of {end}")
            except UrlRefused as exc:
                attempts.refused(exc, url)
            except CloudfsError as exc:
                await attempts.failed(exc, pos)

    async def _fill_range(self, entry: Entry, url: str, pos: int, length: int, fd: int, deadline: float,
                          progress: Callable[[int], None] | None) -> int:
        """One attempt: bytes written (from ``pos`` on), or the error it met."""
        what = f"download of {entry.path}"
        settings = self.settings
        limits = Limits(connect_timeout_s=settings.request_timeout_s, stall_timeout_s=settings.request_timeout_s,
                        total_s=max(deadline - trio.current_time(), 0.001), verify_tls=settings.verify_tls,
                        user_agent=settings.user_agent)

        def accept(status: int, headers: list[tuple[str, str]]) -> bool:
            # the dialect's own checks, on a header-only view of the answer, and
            # the range's start: nothing of another range reaches the file
            answer = httpx.Response(status, headers=headers)
            return (self.dialect.is_content(answer) and self.dialect.content_mismatch(entry, answer) is None
                    and (status != 206 or _range_start(answer) == pos))

        if length <= IN_LOOP_MAX:
            result = await self._fill_in_loop(url, pos, length, fd, accept, limits)
        else:
            result = await self._fill_in_thread(url, pos, length, fd, accept, limits, progress)
        self.connections += result.connects
        if result.failure is not None:
            if isinstance(result.failure, OSError):
                raise result.failure  # the file (a full cache disk): not the server's fault
            raise ProtocolError(f"{what}: {result.failure!r}")
        if result.error is not None and not result.written:
            code, message = result.error
            raise _curl_error(what, code, message)
        if not result.content:
            raise self._not_content(entry, httpx.Response(result.status, headers=result.headers), result.body, pos)
        if result.error is not None:
            log.debug("%s: %d bytes, then %s", what, result.written, result.error[1])
        return result.written

    async def _fill_in_thread(self, url: str, pos: int, length: int, fd: int, accept: AcceptFn, limits: Limits,
                              progress: Callable[[int], None] | None) -> RangeResult:
        stored = None
        if progress is not None:
            token = trio.lowlevel.current_trio_token()

            def stored(written: int) -> None:  # in the worker thread: trio runs progress in order
                if written < length:  # the range's last write is told by its end (one wakeup less)
                    token.run_sync_soon(progress, pos + written)

        stop = threading.Event()
        handle = self._curl.take()
        result: RangeResult | None = None
        try:
            result = await run_stoppable(
                lambda: fetch_range(handle, url, pos, length, fd, pos, accept, limits, stop, stored), stop)
        finally:
            # a handle whose transfer failed may hold a half-read connection
            self._curl.give_back(handle, reusable=result is not None and result.error is None)
        return result

    async def _fill_in_loop(self, url: str, pos: int, length: int, fd: int, accept: AcceptFn,
                            limits: Limits) -> RangeResult:
        """A small range, received by this task (no progress: it lands at once)."""
        handle = self._loop_curl.take()
        result: RangeResult | None = None
        try:
            finish = prepare_range(handle.curl, url, pos, length, fd, pos, accept, limits, None)
            result = finish(await handle.perform())
        finally:
            self._loop_curl.give_back(handle, reusable=result is not None and result.error is None)
        return result

    def _not_content(self, entry: Entry, answer: httpx.Response, body: bytes, pos: int) -> Exception:
        """Why an answer to the range from ``pos`` was not taken as its content."""
        what = f"download of {entry.path}"
        if answer.status_code == 416:
            return CloudfsError(f"{what}: the server's content is shorter than {entry.size} bytes "
                                "(it changed since it was listed)", errno=errno.ESTALE)
        if self.dialect.is_content(answer):
            mismatch = self.dialect.content_mismatch(entry, answer)
            if mismatch is not None:
                return CloudfsError(f"{what}: {mismatch}", errno=errno.ESTALE)
            if _range_start(answer) != pos:
                return ProtocolError(f"{what}: answer for the wrong range ({answer.headers.get('content-range')!r})")
        return self.dialect.content_refused(answer, body) or ProtocolError(
            f"{what}: HTTP {answer.status_code} is not content")

    async def _url(self, entry: Entry, deadline: float) -> str:
        url = self.urls.cached(entry)
        if url is not None:
            return url  # the common case, without a cancel scope (every cold read passes here)
        with trio.move_on_at(deadline):
            return await self.urls.get(entry)
        raise RequestTimeout(f"download of {entry.path}: no signed URL within the deadline")

    async def _range(self, entry: Entry, url: str, want: ByteRange, deadline: float) -> AsyncGenerator[bytes, None]:
        """The bytes of ``want`` from ``url``, as they arrive."""
        what = f"download of {entry.path}"
        headers = {"Range": want.header(), "Accept-Encoding": "identity"}
        with trio.move_on_at(deadline) as scope:
            response = await self.http.open_stream("GET", url, what=what, headers=headers)
        if scope.cancelled_caught:
            raise RequestTimeout(f"{what}: no answer within the deadline")
        body = ResponseBody(response)
        complete = False
        try:
            skip = await self._check(entry, response, body, want, what, deadline)
            remaining = want.length
            while remaining > 0:
                with trio.move_on_at(deadline) as scope:
                    try:
                        piece = await body.next()
                    except httpx.HTTPError as exc:
                        raise map_error(exc, what) from None
                if scope.cancelled_caught:
                    raise RequestTimeout(f"{what}: too slow (deadline passed)")
                if piece is None:
                    return  # short body: the caller resumes from here
                if skip:
                    # a server that ignored Range sent the file from byte 0
                    cut = min(skip, len(piece))
                    piece, skip = piece[cut:], skip - cut
                    if not piece:
                        continue
                if len(piece) > remaining:
                    piece = piece[:remaining]
                remaining -= len(piece)
                yield piece
            with trio.move_on_at(deadline):
                with contextlib.suppress(httpx.HTTPError):
                    complete = await body.finish()  # normally just the end of the message
        finally:
            if not complete:
                await body.abort()
            else:
                with trio.CancelScope(shield=True):
                    await response.aclose()

    async def _check(self, entry: Entry, response: httpx.Response, body: ResponseBody, want: ByteRange,
                     what: str, deadline: float) -> int:
        """Validate a download answer; return how many leading bytes to skip."""
        status = response.status_code
        if status == 416:
            raise CloudfsError(f"{what}: the server's content is shorter than {entry.size} bytes "
                               "(it changed since it was listed)", errno=errno.ESTALE)
        data = b""
        if not self.dialect.is_content(response):
            with trio.move_on_at(deadline):
                try:
                    data = await body.read_at_most(MAX_ERROR_BODY)
                except httpx.HTTPError as exc:
                    raise map_error(exc, what) from None
        refused = self.dialect.content_refused(response, data)
        if refused is not None:
            raise refused
        mismatch = self.dialect.content_mismatch(entry, response)
        if mismatch is not None:
            # the content is some other version: never mix versions in one read
            raise CloudfsError(f"{what}: {mismatch}", errno=errno.ESTALE)
        if status == 200:
            return want.start  # the whole content: skip to our offset
        if _range_start(response) != want.start:
            raise ProtocolError(f"{what}: answer for the wrong range "
                                f"({response.headers.get('content-range')!r}, asked {want.header()})")
        return 0


def _span(entry: Entry, off: int, length: int) -> ByteRange | None:
    if off < 0 or length < 0:
        raise CloudfsError(f"negative offset or length ({off}, {length})", errno=errno.EINVAL)
    if entry.is_dir:
        raise CloudfsError(f"{entry.path} is a folder", errno=errno.EISDIR)
    return clamp_read(off, length, entry.size)


def _range_start(answer: httpx.Response) -> int | None:
    """The first byte of a 206 answer's Content-Range (None if it has none)."""
    match = _CONTENT_RANGE.match(answer.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


async def run_stoppable(work: Callable[[], RangeResult], stop: threading.Event) -> RangeResult:
    """Run blocking ``work`` in a worker thread (``trio.to_thread``, under its
    limit).  If this task is cancelled, set ``stop`` (the transfer checks it
    at least once a second) and wait for the thread to end before the
    cancellation goes on, so nothing the thread holds (a handle, a file
    descriptor) is used after we return."""
    finished = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def in_thread() -> RangeResult:
        try:
            return work()
        finally:
            token.run_sync_soon(finished.set)

    try:
        return await trio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
    except trio.Cancelled:
        stop.set()
        with trio.CancelScope(shield=True):
            await finished.wait()
        raise


def _curl_error(what: str, code: int, message: str) -> CloudfsError:
    """libcurl's failure as the transport error httpx's would have been."""
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return RequestTimeout(f"{what}: {message}")
    if code in (pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CONNECT_ERROR):
        return TLSFailure(f"{what}: {message}")  # as httpx's path: a certificate does not get better
    never_sent = code in (pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST)
    return TransportError(f"{what}: {message}", maybe_delivered=not never_sent)
