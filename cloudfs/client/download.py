"""The download engine: ranged, streamed, resumable reads of one content
version through signed URLs.

* :meth:`Downloader.stream` is one HTTP range, yielded as it arrives.  A
  broken connection resumes from the last byte received (after a backoff,
  bounded in attempts without progress and in total time); a refused URL
  (HTTP 200 + envelope instead of content: no ETag) is signed anew.
* :meth:`Downloader.read` splits a large span into aligned parts fetched in
  parallel (``read_parallelism``) into one buffer.
* Zero-size files and reads past EOF make no request at all.

Every wait is bounded: each network read by the HTTP timeout, the whole
range by ``deadline_s + length / min_transfer_rate``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import trio

from cloudfs.client.bodies import ResponseBody
from cloudfs.client.dialect import Dialect, UrlRefused
from cloudfs.client.http import Http, map_error
from cloudfs.client.models import Entry
from cloudfs.client.plan import ByteRange, clamp_read, plan_ranges
from cloudfs.client.retry import full_jitter, should_retry
from cloudfs.client.tasks import run_all
from cloudfs.client.urlcache import UrlCache
from cloudfs.errors import CloudfsError, ProtocolError, RequestTimeout

log = logging.getLogger(__name__)

#: a refused URL is re-signed at most this often per range
MAX_RESIGN = 3
#: bytes of a non-content answer read to find out what it says
MAX_ERROR_BODY = 64 << 10

_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class Downloader:
    def __init__(self, http: Http, dialect: Dialect) -> None:
        self.http = http
        self.settings = http.settings
        self.dialect = dialect
        self.urls = UrlCache(dialect.sign_url)

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

        await run_all([lambda p=p: fetch(p) for p in parts])  # type: ignore[misc]
        view.release()
        return bytes(buf)

    async def stream(self, entry: Entry, off: int, length: int) -> AsyncIterator[bytes]:
        span = _span(entry, off, length)
        if span is None:
            return  # empty file, past EOF or nothing asked: no request
        pos, end = span.start, span.end
        deadline = trio.current_time() + self.settings.transfer_deadline(span.length)
        failures = 0
        resigns = 0
        last: CloudfsError | None = None
        while pos < end:
            if trio.current_time() >= deadline:
                raise RequestTimeout(f"download of {entry.path}: {end - pos} bytes still missing after the "
                                     f"deadline (last error: {last})")
            url = ""
            try:
                url = await self._url(entry, deadline)
                async with aclosing(self._range(entry, url, ByteRange(pos, end - pos), deadline)) as pieces:
                    async for piece in pieces:
                        pos += len(piece)
                        failures = 0
                        yield piece  # outside any cancel scope: we are a generator
                if pos < end:
                    raise ProtocolError(f"download of {entry.path}: body ended at byte {pos} of {end}")
            except UrlRefused as exc:
                self.urls.invalidate(entry, url)
                resigns += 1
                last = exc
                if resigns > MAX_RESIGN:
                    raise CloudfsError(f"download of {entry.path}: the server keeps refusing fresh URLs ({exc})",
                                       errno=errno.EIO) from None
                log.debug("download URL of %s refused, signing a new one", entry.path)
            except CloudfsError as exc:
                failures += 1
                last = exc
                if not should_retry(exc, idempotent=True) or failures >= self.settings.max_attempts:
                    raise
                delay = full_jitter(failures, self.settings.backoff_base_s, self.settings.backoff_max_s)
                log.info("download of %s failed at byte %d (%s); resuming in %.2f s", entry.path, pos, exc, delay)
                await trio.sleep(min(delay, max(deadline - trio.current_time(), 0.0)))

    async def _url(self, entry: Entry, deadline: float) -> str:
        with trio.move_on_at(deadline):
            return await self.urls.get(entry)
        raise RequestTimeout(f"download of {entry.path}: no signed URL within the deadline")

    async def _range(self, entry: Entry, url: str, want: ByteRange, deadline: float) -> AsyncIterator[bytes]:
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
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if not match or int(match.group(1)) != want.start:
            raise ProtocolError(f"{what}: answer for the wrong range "
                                f"({response.headers.get('content-range')!r}, asked {want.header()})")
        return 0


def _span(entry: Entry, off: int, length: int) -> ByteRange | None:
    if off < 0 or length < 0:
        raise CloudfsError(f"negative offset or length ({off}, {length})", errno=errno.EINVAL)
    if entry.is_dir:
        raise CloudfsError(f"{entry.path} is a folder", errno=errno.EISDIR)
    return clamp_read(off, length, entry.size)
