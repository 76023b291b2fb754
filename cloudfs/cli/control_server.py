"""The mount's side of the control socket (see :mod:`cloudfs.cli.control`
for the protocol and the command line's side): a trio server answering
status, drain and the other commands."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from cloudfs.cli.control import socket_path

log = logging.getLogger(__name__)

StatusFn = Callable[[], Awaitable[dict[str, Any]]]
#: uploads everything now (reporting progress); returns the uploads still pending
DrainFn = Callable[[Callable[[], Awaitable[None]]], Awaitable[list[dict[str, Any]]]]
#: a command with arguments (the request object) and one answer object
CommandFn = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    def __init__(self, mountpoint: Path, status: StatusFn, drain: DrainFn,
                 commands: Mapping[str, CommandFn] | None = None, *, progress: StatusFn | None = None) -> None:
        self.path = socket_path(mountpoint)
        self._status = status
        self._drain = drain
        #: what a drain reports every half second (default: the whole status)
        self._progress = progress or status
        self._commands = dict(commands or {})

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.unlink(missing_ok=True)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(8)
        listener = trio.SocketListener(sock)
        try:
            task_status.started()
            await trio.serve_listeners(self._handle, [listener])
        finally:
            self.path.unlink(missing_ok=True)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                request = json.loads(await _read_line(stream))
                cmd = request.get("cmd")

                async def send(obj: dict[str, Any]) -> None:
                    await stream.send_all(json.dumps(obj).encode() + b"\n")

                if cmd == "status":
                    await send(await self._status())
                elif cmd == "drain":

                    async def progress() -> None:
                        await send(await self._progress())

                    left = await self._drain(progress)
                    await send({"done": True, "left": left})
                elif cmd in self._commands:
                    await send(await self._commands[cmd](request))
                else:
                    await send({"error": f"unknown command {cmd!r}"})
            except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError, AttributeError) as exc:
                log.debug("control connection ended: %r", exc)
            except Exception:
                # whatever goes wrong answering a status request, the mount stays up
                log.exception("internal error answering a control request")


async def _read_line(stream: trio.SocketStream, limit: int = 65536) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("request too long")
    return data
