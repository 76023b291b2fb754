"""Request bodies held in memory, sent to a peer that hangs up halfway.

httpx wraps bytes in an async generator; when the write fails, httpcore
drops it suspended, and trio warns when it is garbage collected, in whatever
code runs then (a test failing for another's sake under ``-W error``).
The peer is a bare socket: the point is the broken connection, not HTTP."""

from __future__ import annotations

import gc
import inspect
import socket

import pytest
import trio

from cloudfs.client.http import Http
from cloudfs.client.settings import ClientSettings
from cloudfs.errors import CloudfsError

BODY = 16 << 20  # far beyond the socket buffers: the write itself fails


def suspended_body_generators() -> list[object]:
    gc.collect()
    return [obj for obj in gc.get_objects()
            if inspect.isasyncgen(obj) and obj.ag_frame is not None and obj.ag_frame.f_lasti >= 0
            and "ByteStream" in obj.ag_code.co_qualname]


async def hang_up_after_the_head(listener: trio.SocketListener) -> None:
    stream = await listener.accept()
    received = b""
    while b"\r\n\r\n" not in received:
        received += await stream.receive_some(65536)
    # a reset, not an orderly close: the client's next write fails
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await stream.aclose()


async def test_a_body_cut_off_by_the_peer_leaves_no_generator_behind() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    http = Http(f"http://127.0.0.1:{port}", ClientSettings())
    before = len(suspended_body_generators())
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hang_up_after_the_head, listeners[0])
            with pytest.raises(CloudfsError):
                await http.request_once("PUT", f"http://127.0.0.1:{port}/upload", what="a cut-off upload",
                                        content=bytes(BODY), headers={"Content-Length": str(BODY)})
    finally:
        await http.aclose()
        await listeners[0].aclose()
    assert len(suspended_body_generators()) == before
