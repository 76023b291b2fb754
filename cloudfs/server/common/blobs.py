"""Blob bytes over HTTP, the same for both dialects: a request body streamed
into a blob file (:func:`write_body`) and byte ranges of a blob streamed out
(:class:`BlobResponse`), with Go's ``Range`` parsing, entity-tag lists,
content-type sniffing and plain-text errors as ``http.ServeContent`` writes them.
"""

from __future__ import annotations

import mimetypes
import os
import time
from typing import Any

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

READ_SIZE = 4 << 20
#: answers up to this size are read whole and sent as one piece (see BlobResponse)
WHOLE_LIMIT = 1 << 20
WRITE_BATCH = 4 << 20  # bytes buffered before one positional write
_BINARY = set(range(0x09)) | {0x0B} | set(range(0x0E, 0x1B)) | set(range(0x1C, 0x20))


async def write_body(request: Request, path: str, offset: int, expected: int) -> int:
    """Stream up to ``expected`` body bytes into ``path`` at ``offset``; bytes written."""
    fd = await trio.to_thread.run_sync(os.open, path, os.O_WRONLY)
    written = 0
    buf = bytearray()
    try:
        try:
            async for piece in request.stream():
                if written + len(buf) >= expected:
                    continue  # drain what exceeds the declared length (LimitReader)
                piece = piece[:expected - written - len(buf)]
                buf += piece
                if len(buf) >= WRITE_BATCH:
                    data = bytes(buf)
                    buf.clear()
                    await trio.to_thread.run_sync(os.pwrite, fd, data, offset + written)
                    written += len(data)
        except ClientDisconnect:
            pass
        if buf:
            data = bytes(buf)
            await trio.to_thread.run_sync(os.pwrite, fd, data, offset + written)
            written += len(data)
    finally:
        await trio.to_thread.run_sync(os.close, fd)
    return written


def http_error(text: str, status: int, headers: dict[str, str]) -> Response:
    headers = dict(headers)
    headers["X-Content-Type-Options"] = "nosniff"
    return Response(text + "\n", status_code=status, headers=headers, media_type="text/plain")


def etag_list(header: str) -> list[str] | None:
    """Entity tags of an If-Match/If-None-Match header; None if malformed early."""
    tags: list[str] = []
    rest = header
    while True:
        rest = rest.strip(" \t")
        if not rest:
            return tags
        if rest[0] == ",":
            rest = rest[1:]
            continue
        if rest[0] == "*":
            tags.append("*")
            return tags
        start = 2 if rest.startswith("W/") else 0
        if len(rest) - start < 2 or rest[start] != '"':
            return tags
        end = rest.find('"', start + 1)
        if end < 0:
            return tags
        tags.append(rest[:end + 1])
        rest = rest[end + 1:]


class RangeError(Exception):
    def __init__(self, msg: str, no_overlap: bool = False) -> None:
        super().__init__(msg)
        self.no_overlap = no_overlap


def parse_range(header: str, size: int) -> list[tuple[int, int]]:
    """Go's parseRange: list of (start, length)."""
    if not header:
        return []
    if not header.startswith("bytes="):
        raise RangeError("invalid range")
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for part in header[6:].split(","):
        part = part.strip(" \t")
        if not part:
            continue
        if "-" not in part:
            raise RangeError("invalid range")
        start_s, end_s = (p.strip(" \t") for p in part.split("-", 1))
        if start_s == "":
            if end_s == "" or end_s[0] == "-" or not end_s.isdigit():
                raise RangeError("invalid range")
            n = min(int(end_s), size)
            ranges.append((size - n, n))
            continue
        if not start_s.isdigit():
            raise RangeError("invalid range")
        start = int(start_s)
        if start >= size:
            no_overlap = True
            continue
        if end_s == "":
            ranges.append((start, size - start))
            continue
        if not end_s.isdigit() or start > int(end_s):
            raise RangeError("invalid range")
        end = min(int(end_s), size - 1)
        ranges.append((start, end - start + 1))
    if no_overlap and not ranges:
        raise RangeError("invalid range: failed to overlap", True)
    return ranges


def content_type(name: str, path: str | None) -> str:
    if name.lower().endswith(".txt"):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(name, strict=True)
    if guessed:
        return guessed
    head = b""
    if path is not None:
        with open(path, "rb") as fh:
            head = fh.read(512)
    for magic, kind in ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"GIF8", "image/gif"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip")):
        if head.startswith(magic):
            return kind
    if any(b in _BINARY for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


class BlobResponse(Response):
    """Byte ranges of a blob.  An answer of at most ``WHOLE_LIMIT`` bytes
    without a speed limit is read in one piece and sent as one body message
    (a small ranged GET is the common request: no tasks, no channel, and no
    worker thread when the bytes are in the page cache).  Anything larger
    streams: a reader task prefetches the next piece (worker thread) while the
    current one is being sent, and a client disconnect cancels both.  Memory
    use is a few pieces, whatever the size."""

    def __init__(self, path: str, parts: list[tuple[bytes, int, int]], tail: bytes, speed: int,
                 status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.path, self.parts, self.tail, self.speed = path, parts, tail, speed

    def _answer_size(self) -> int:
        return sum(len(prefix) + length for prefix, _, length in self.parts) + len(self.tail)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.speed <= 0 and self._answer_size() <= WHOLE_LIMIT:
            await self._send_whole(send)
        else:
            await self._stream(receive, send)

    async def _send_whole(self, send: Any) -> None:
        body = await read_parts(self.path, self.parts, self.tail)
        if len(body) == self._answer_size():
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        # the file shrank under us: what there is, then the end (the server closes
        # the connection on the short body, as when streaming)
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _produce(self, out: trio.MemorySendChannel[bytes]) -> None:
        fd = await trio.to_thread.run_sync(os.open, self.path, os.O_RDONLY)
        try:
            async with out:
                for prefix, start, length in self.parts:
                    if prefix:
                        await out.send(prefix)
                    pos, end = start, start + length
                    while pos < end:
                        data = await trio.to_thread.run_sync(os.pread, fd, min(READ_SIZE, end - pos), pos)
                        if not data:
                            return  # the file shrank under us: the response ends short
                        pos += len(data)
                        await out.send(data)
                if self.tail:
                    await out.send(self.tail)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(os.close, fd)

    async def _stream(self, receive: Any, send: Any) -> None:
        complete = False
        async with trio.open_nursery() as nursery:
            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            out, incoming = trio.open_memory_channel[bytes](1)
            nursery.start_soon(self._produce, out)
            started, sent = time.monotonic(), 0
            async with incoming:
                async for data in incoming:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    sent += len(data)
                    if self.speed > 0:  # the signed URL's speed limit, bytes/s
                        ahead = sent / self.speed - (time.monotonic() - started)
                        if ahead > 0:
                            await trio.sleep(ahead)
            complete = True
            nursery.cancel_scope.cancel()
        if complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_parts(path: str, parts: list[tuple[bytes, int, int]], tail: bytes) -> bytes:
    """The parts' prefixes and byte ranges of ``path``, then the tail, as one
    piece; short if the file ends early.  Bytes in the page cache are read
    right here (``RWF_NOWAIT``: the kernel answers from the cache only, never
    waiting for the disk); the rest in one worker thread.  (The open is
    inline, like the existence check before it: the blob's directory entry
    was just looked up.)"""
    out = bytearray(sum(len(prefix) + length for prefix, _, length in parts) + len(tail))
    view = memoryview(out)
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        for i, (prefix, start, length) in enumerate(parts):
            view[pos:pos + len(prefix)] = prefix
            pos += len(prefix)
            got = _read_cached(fd, start, view[pos:pos + length])
            pos += got
            if got < length:  # not all in the page cache (or the file ended): the rest may wait for the disk
                rest = [(b"", start + got, length - got), *parts[i + 1:]]
                pos += await trio.to_thread.run_sync(_fill, fd, rest, tail, view[pos:])
                return bytes(view[:pos])
        view[pos:] = tail
        return bytes(out)
    finally:
        os.close(fd)


def _read_cached(fd: int, start: int, into: memoryview) -> int:
    """Fill ``into`` from ``start`` on as far as the page cache holds the bytes; how many it did."""
    try:
        return os.preadv(fd, [into], start, os.RWF_NOWAIT)
    except OSError:  # EAGAIN: not in the cache; EOPNOTSUPP: a file system without RWF_NOWAIT
        return 0


def _fill(fd: int, parts: list[tuple[bytes, int, int]], tail: bytes, into: memoryview) -> int:
    """Fill ``into`` with the parts and the tail, blocking; how many bytes (fewer if the file ends early)."""
    pos = 0
    for prefix, start, length in parts:
        into[pos:pos + len(prefix)] = prefix
        pos += len(prefix)
        end = pos + length
        while pos < end:
            got = os.preadv(fd, [into[pos:end]], start + pos - (end - length))
            if got == 0:
                return pos  # the file ends early: the answer is short
            pos += got
    into[pos:pos + len(tail)] = tail
    return pos + len(tail)
